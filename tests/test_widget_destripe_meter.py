"""Destripe dock: the stripe meter's numbers after each run, computed in the worker."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import napari_restore.stripe_meter as meter_module
from napari_restore._sample_data import load_sample
from napari_restore._widgets.destripe import meter_domain
from napari_restore.destripe.infer import destripe
from napari_restore.simulate import simulate_stripes
from napari_restore.stripe_meter import StripeMeasure, measure_stripes

PLUGIN = "napari-restore"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_meter_numbers_after_a_run(viewer, qtbot, monkeypatch):
    clean = load_sample("maize")[:96, :128]
    striped = simulate_stripes(clean, kind="gaussian", seed=3).image
    viewer.add_image(striped, name="striped")
    # Record the thread the meter runs in: it must not be the GUI thread.
    threads: list[threading.Thread] = []
    original = meter_module.measure_stripes_steps

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return (yield from original(*args, **kwargs))

    monkeypatch.setattr(meter_module, "measure_stripes_steps", spy)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Destripe")
    widget.device.value = "cpu"
    widget.run_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)

    out = viewer.layers["striped destriped"]
    restored = destripe(striped, "builtin", device="cpu")
    # The dock's default direction; the built-in model removes shadows: the log domain.
    expected = measure_stripes(striped, restored, direction="horizontal", domain="log")
    measure = widget.last_measure
    assert isinstance(measure, StripeMeasure)
    assert measure.domain == "log"
    assert measure.stripe_removed == pytest.approx(expected.stripe_removed, abs=1e-9)
    assert widget.meter.value == f"stripe meter (no reference, log domain): {expected.verdict}"
    assert out.metadata["stripe_meter"]["verdict"] == expected.verdict
    assert threads and threads[0] is not threading.main_thread()


def test_meter_failure_keeps_the_result(viewer, qtbot):
    tiny = np.random.default_rng(0).random((2, 12, 40)).astype(np.float32)  # planes < 16 px
    viewer.add_image(tiny, name="tiny")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Destripe")
    widget.device.value = "cpu"
    widget.run_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    assert "tiny destriped" in [layer.name for layer in viewer.layers]
    assert widget.meter.value.startswith("stripe meter: not measured")
    assert "16 x 16" in widget.meter.value


def test_meter_domain_follows_the_stripes_the_model_was_trained_on():
    def meta(modes):
        return {"training": {"config": {"modes": modes}}}

    assert meter_domain(meta(["multiplicative"])) == "log"
    assert meter_domain(meta(["multiplicative", "additive"])) == "log"
    assert meter_domain(meta(["additive"])) == "linear"
    assert meter_domain({}) == "log"  # older model files: trained on shadows
