"""Stripe Simulator dock, driven like a user in a real napari viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore._widgets.simulator import PREVIEW_SUFFIX
from napari_restore.simulate import StripeParams, simulate_stripes

PLUGIN = "napari-restore"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def open_dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Stripe Simulator")
    return widget


def preview_layer(viewer):
    found = [lyr for lyr in viewer.layers if lyr.name.endswith(PREVIEW_SUFFIX)]
    return found[0] if found else None


def wait_idle(qtbot, widget, timeout=20_000):
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=timeout)


def test_live_preview_follows_parameters_and_create_adds_new_layer(viewer, qtbot, rng):
    clean = (rng.random((96, 128)) * 1000 + 500).astype(np.uint16)
    source = viewer.add_image(clean, name="clean")
    widget = open_dock(viewer)
    assert widget.image.value is source

    qtbot.waitUntil(lambda: preview_layer(viewer) is not None, timeout=10_000)
    expected = simulate_stripes(clean, widget.params(), output_dtype="float32").image
    np.testing.assert_allclose(preview_layer(viewer).data, expected, rtol=1e-5)

    # A parameter change re-renders the preview (debounced, in a worker).
    widget.kind.value = "tilted"
    tilted = simulate_stripes(clean, StripeParams(kind="tilted"), output_dtype="float32").image
    qtbot.waitUntil(
        lambda: np.allclose(preview_layer(viewer).data, tilted, rtol=1e-5), timeout=10_000
    )
    assert widget.angle.native.isVisibleTo(widget.native)
    assert not widget.period.native.isVisibleTo(widget.native)

    widget.add_field.value = True
    widget.create_button.clicked.emit()
    wait_idle(qtbot, widget)
    names = [lyr.name for lyr in viewer.layers]
    assert "clean stripes (tilted mult. seed 0)" in names
    assert "clean stripe field (tilted mult. seed 0)" in names
    assert preview_layer(viewer) is None, "the preview goes away once the real layer exists"
    result = viewer.layers["clean stripes (tilted mult. seed 0)"]
    expected = simulate_stripes(clean, StripeParams(kind="tilted"))
    np.testing.assert_array_equal(result.data, expected.image)
    assert result.data.dtype == np.uint16
    np.testing.assert_allclose(viewer.layers[names[-1]].data, expected.field)
    np.testing.assert_array_equal(source.data, clean)  # the source is never changed


def test_stack_preview_shows_current_slice_and_same_pattern_option(viewer, qtbot, rng):
    stack = rng.random((5, 64, 80)).astype(np.float32) + 1
    viewer.add_image(stack, name="stack")
    widget = open_dock(viewer)
    assert widget.per_slice.native.isVisibleTo(widget.native)
    viewer.dims.set_current_step(0, 3)
    full = simulate_stripes(stack, widget.params()).image
    qtbot.waitUntil(
        lambda: (
            preview_layer(viewer) is not None
            and np.allclose(preview_layer(viewer).data, full[3], rtol=1e-6)
        ),
        timeout=10_000,
    )

    widget.per_slice.value = False
    widget.live_preview.value = False
    assert preview_layer(viewer) is None
    widget.output_dtype.value = "float32"
    widget.create_button.clicked.emit()
    wait_idle(qtbot, widget)
    out = viewer.layers[-1].data
    assert out.shape == stack.shape and out.dtype == np.float32
    field = 1 - out / stack
    np.testing.assert_allclose(field[0], field[4], atol=1e-5)  # one pattern through z


def test_dask_backed_layer(viewer, qtbot, rng):
    da = pytest.importorskip("dask.array")
    stack = (rng.random((4, 48, 48)) * 100).astype(np.uint8)
    viewer.add_image(da.from_array(stack, chunks=(1, 48, 48)), name="lazy")
    widget = open_dock(viewer)
    widget.live_preview.value = False
    widget.create_button.clicked.emit()
    wait_idle(qtbot, widget)
    out = viewer.layers[-1]
    assert out.name.startswith("lazy stripes")
    np.testing.assert_array_equal(out.data, simulate_stripes(stack, widget.params()).image)


def test_bad_input_gets_a_message_and_no_layer(viewer, qtbot, rng):
    viewer.add_image(rng.random((32, 32, 3)), rgb=True, name="colour")
    widget = open_dock(viewer)
    widget.live_preview.value = False
    widget.create_button.clicked.emit()
    assert "RGB" in widget.status.value
    assert len(viewer.layers) == 1

    viewer.add_image(rng.random((32, 32)), name="grey")
    widget.image.value = viewer.layers["grey"]
    widget.stripe_width.value = (5.0, 1.0)  # low > high
    assert "width" in widget.status.value
    widget.create_button.clicked.emit()
    assert len(viewer.layers) == 2


def test_cancel_leaves_no_layer(viewer, qtbot, rng):
    stack = rng.random((400, 256, 256)).astype(np.float32)
    viewer.add_image(stack, name="big")
    widget = open_dock(viewer)
    widget.live_preview.value = False
    widget.create_button.clicked.emit()
    worker = widget.runner.worker
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        widget.cancel_button.clicked.emit()
    assert [lyr.name for lyr in viewer.layers] == ["big"]
    assert "stopped" in widget.status.value


def test_a_registered_kind_appears_with_only_its_parameters(viewer):
    from napari_restore.simulate.stripes import (
        StripeKindSpec,
        register_stripe_kind,
        unregister_stripe_kind,
    )
    from test_stripe_registry import draw_single_line, sample_single_line

    register_stripe_kind(
        StripeKindSpec("single_line", ("width",), draw_single_line, sample_single_line)
    )
    try:
        viewer.add_image(np.full((32, 32), 100, dtype=np.uint16), name="clean")
        widget = open_dock(viewer)
        assert "single_line" in widget.kind.choices
        widget.kind.value = "single_line"
        shown = {
            n
            for n in ("stripe_width", "density", "period", "angle", "stripe_length")
            if not getattr(widget, n).native.isHidden()
        }
        assert shown == {"stripe_width"}
        assert widget.params().kind == "single_line"
        widget.kind.value = "tilted"
        assert not widget.angle.native.isHidden()
    finally:
        unregister_stripe_kind("single_line")
