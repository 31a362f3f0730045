"""Denoise dock: train on the layer, stop, save/load, apply, train & apply — in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_restore._widgets._session import SESSION_MODELS
from napari_restore._widgets.denoise import PRETRAINED, SCRATCH
from napari_restore.simulate.timelapse import simulate_timelapse

PLUGIN = "napari-restore"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture(scope="module")
def stack():
    return simulate_timelapse((16, 48, 48), photons=2.0, seed=3, output_dtype="uint16")


def open_dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise (SRDTrans)")
    return configure(widget)


def configure(widget):
    widget.device.value = "cpu"  # first: a change of device kind resets the settings
    widget.start.value = SCRATCH  # a network from scratch has a free patch_t
    widget.patch_t.value = 16
    widget.patch_xy.value = 32
    widget.minutes.value = 0.04  # ~2.4 s of training
    return widget


def wait_idle(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=timeout)


def steps_shown(dock) -> int:
    """The last training step the dock has plotted (on the GUI thread)."""
    xs = dock.curves.losses.get("total", ([], []))[0]
    return xs[-1] if xs else 0


def test_train_then_apply_save_and_load(viewer, qtbot, stack, tmp_path):
    layer = viewer.add_image(stack.noisy, name="noisy")
    widget = open_dock(viewer)
    assert "16 frames" in widget.stack_info.value
    widget.train_button.clicked.emit()
    wait_idle(qtbot, widget)
    trainer = widget.trainer
    assert trainer is not None and trainer.step > 0
    assert "trained" in widget.status.value and "ms/step" in widget.status.value
    assert widget.curves.losses["total"][0], "the loss curve received points"
    assert any("noisy" in n for n in SESSION_MODELS.names("denoise"))

    widget.apply_button.clicked.emit()
    wait_idle(qtbot, widget)
    out = viewer.layers["noisy denoised"]
    assert out.data.shape == stack.noisy.shape and out.data.dtype == np.uint16
    np.testing.assert_array_equal(layer.data, stack.noisy)  # the input is never changed
    # The flip-ensemble choice reaches the engine ("auto": 4 passes for a small CPU stack).
    from napari_restore.denoise.infer import denoise

    def applied(flips):
        widget.flips.value = flips
        widget.apply_button.clicked.emit()
        wait_idle(qtbot, widget)
        return viewer.layers[-1].data

    widget.output_dtype.value = "float32"
    kw = dict(device="cpu", output_dtype="float32")
    auto, single = applied("auto"), applied(1)
    np.testing.assert_allclose(auto, denoise(stack.noisy, trainer.model, flips=4, **kw))
    np.testing.assert_allclose(single, denoise(stack.noisy, trainer.model, flips=1, **kw))
    assert not np.allclose(single, auto)

    path = tmp_path / "srd.safetensors"
    widget.save_path.value = path
    widget.save_button.clicked.emit()
    assert path.exists() and path.with_suffix(".json").exists()
    steps = trainer.step
    widget.new_button.clicked.emit()
    assert widget.trainer is None
    widget.load_path.value = path
    widget.load_button.clicked.emit()
    assert widget.trainer.step == steps
    assert "loaded" in widget.status.value


def test_stop_keeps_the_weights_and_train_and_apply_in_one_click(viewer, qtbot, stack):
    viewer.add_image(stack.noisy, name="cells")
    widget = open_dock(viewer)
    widget.minutes.value = 30.0
    widget.train_button.clicked.emit()
    qtbot.waitUntil(lambda: steps_shown(widget) >= 2, timeout=60_000)
    assert widget.trainer is None, "the worker hands the trainer over only when done"
    widget.stop_button.clicked.emit()
    wait_idle(qtbot, widget)
    assert "stopped" in widget.status.value
    steps = widget.trainer.step
    assert steps >= 2
    weights = {k: v.clone() for k, v in widget.trainer.model.state_dict().items()}

    widget.minutes.value = 0.03
    widget.output_dtype.value = "float32"
    widget.train_apply_button.clicked.emit()
    wait_idle(qtbot, widget)
    assert widget.trainer.step > steps, "training continued from the stopped model"
    changed = any(
        not torch.equal(weights[k], v) for k, v in widget.trainer.model.state_dict().items()
    )
    assert changed
    out = viewer.layers["cells denoised"]
    assert out.data.dtype == np.float32 and out.data.shape == stack.noisy.shape


def test_cancel_apply_leaves_no_layer(viewer, qtbot, stack):
    viewer.add_image(np.tile(stack.noisy, (4, 1, 1)), name="long")
    widget = open_dock(viewer)
    widget.train_button.clicked.emit()
    wait_idle(qtbot, widget)
    widget.apply_button.clicked.emit()
    worker = widget.runner.worker
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        widget.stop_button.clicked.emit()
    assert [lyr.name for lyr in viewer.layers] == ["long"]


def test_messages_for_bad_choices(viewer, qtbot, rng):
    viewer.add_image(rng.random((40, 40)), name="single")
    widget = open_dock(viewer)
    assert "single 2D image" in widget.stack_info.value
    widget.apply_button.clicked.emit()
    assert "No model trained" in widget.status.value
    viewer.add_image(rng.random((20, 20, 3)), rgb=True, name="colour")
    widget.image.value = viewer.layers["colour"]
    widget.train_button.clicked.emit()
    assert "RGB" in widget.status.value
    assert len(viewer.layers) == 2


def test_4d_stack_axis_choices(viewer, rng):
    viewer.add_image(rng.random((2, 16, 24, 24)).astype(np.float32), name="tc")
    widget = open_dock(viewer)
    assert list(widget.stack_axis.choices) == [0, 1]
    assert widget.stack_axis.native.itemText(0) == "axis 0 (2)"  # not napari's "-4"
    widget.stack_axis.value = 1
    layer = viewer.layers["tc"]
    assert widget._training_stack(layer, layer.data).shape == (16, 24, 24)


def test_cpu_defaults_and_advice_after_a_short_training(viewer, qtbot, stack, monkeypatch):
    from napari_restore.denoise import config as denoise_train
    from napari_restore.denoise.config import CPU_DEFAULTS

    monkeypatch.setattr(denoise_train, "pretrained_model_path", lambda: None)
    viewer.add_image(stack.noisy, name="noisy")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise (SRDTrans)")
    if widget.device.value == "auto" and not torch.cuda.is_available():
        assert widget.patch_t.value == CPU_DEFAULTS["patch_t"]
        assert widget.patch_xy.value == CPU_DEFAULTS["patch_xy"]
        assert widget.learning_rate.value == pytest.approx(CPU_DEFAULTS["learning_rate"])
        assert widget.minutes.value == 3.0
    assert list(widget.start.choices) == [SCRATCH]  # no pretrained network installed here
    configure(widget)
    widget.train_button.clicked.emit()
    wait_idle(qtbot, widget)
    assert "trained" in widget.status.value
    assert "training steps from scratch" in widget.advice.value
    assert "Train longer" in widget.advice.value
    widget.new_button.clicked.emit()
    assert widget.advice.value == ""


def test_the_learning_rate_follows_the_start(viewer):
    from napari_restore.denoise.config import (
        CPU_DEFAULTS,
        CPU_FINETUNE_LR,
        pretrained_model_path,
    )

    if pretrained_model_path() is None:
        pytest.skip("this installation ships no pretrained denoising network")
    widget = open_dock(viewer)  # on the CPU, from scratch
    assert widget.learning_rate.value == pytest.approx(CPU_DEFAULTS["learning_rate"])
    widget.start.value = PRETRAINED  # fine-tuning a trained network: a lower rate on a CPU
    assert widget.learning_rate.value == pytest.approx(CPU_FINETUNE_LR)
    widget.start.value = SCRATCH
    assert widget.learning_rate.value == pytest.approx(CPU_DEFAULTS["learning_rate"])


def test_denoise_dock_fits_a_1000_px_screen(make_napari_viewer):
    """With its loss plot and previews, the dock leaves room for the viewer's title and menus;
    the settings most people leave alone are folded away but still set the training."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-restore", "Denoise (SRDTrans)")
    native = widget.native
    assert native.sizeHint().height() <= 900
    assert native.minimumSizeHint().height() <= 900
    assert not widget.advanced_section.isExpanded()
    widget.learning_rate.value = 1e-4
    widget.seed.value = 3
    assert widget.config().learning_rate == 1e-4 and widget.config().seed == 3
