"""Destripe and Train Destripe Model docks, driven like a user in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore._sample_data import load_sample
from napari_restore._widgets.destripe import BUILTIN, FROM_FILE
from napari_restore.core.progress import run_to_end
from napari_restore.destripe.infer import builtin_model_path, destripe
from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer
from napari_restore.simulate import simulate_stripes

PLUGIN = "napari-restore"
TINY = {"base_channels": 4, "depth": 2, "patch_size": 32, "batch_size": 2, "val_patches": 2}


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture(scope="module")
def clean():
    return load_sample("maize")[:96, :128]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, clean):
    trainer = DestripeTrainer([clean], DestripeTrainConfig(steps=3, device="cpu", **TINY))
    run_to_end(trainer.train(), progress_bar=False)
    return trainer.save(tmp_path_factory.mktemp("models") / "tiny")


def wait_idle(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=timeout)


def open_destripe(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Destripe")
    widget.device.value = "cpu"
    return widget


def open_training(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Train Destripe Model")
    for key, value in TINY.items():
        if hasattr(widget, key):
            getattr(widget, key).value = value
    widget.device.value = "cpu"
    return widget


def steps_shown(dock) -> int:
    """The last training step the dock has plotted (on the GUI thread)."""
    xs = dock.curves.losses.get("total", ([], []))[0]
    return xs[-1] if xs else 0


def test_destripe_with_a_model_file(viewer, qtbot, clean, tiny_model):
    striped = simulate_stripes(clean, kind="gaussian", seed=1).image
    layer = viewer.add_image(striped, name="striped")
    widget = open_destripe(viewer)
    widget.model.value = FROM_FILE
    assert widget.model_file.native.isVisibleTo(widget.native)
    widget.model_file.value = tiny_model
    assert "ResCBAMUNet" in widget.model_info.value and "3 steps" in widget.model_info.value
    widget.run_button.clicked.emit()
    wait_idle(qtbot, widget)
    out = viewer.layers["striped destriped"]
    assert out.data.dtype == striped.dtype and out.data.shape == striped.shape
    np.testing.assert_array_equal(out.data, destripe(striped, tiny_model, device="cpu"))
    np.testing.assert_array_equal(layer.data, striped)  # never changed in place


def test_destripe_stack_vertical_and_float_output(viewer, qtbot, clean, tiny_model):
    stack = np.stack([clean, clean[::-1]]).transpose(0, 2, 1)  # vertical stripes below
    striped = simulate_stripes(stack.transpose(0, 2, 1), seed=2).image.transpose(0, 2, 1)
    viewer.add_image(striped, name="stack")
    widget = open_destripe(viewer)
    widget.model.value = FROM_FILE
    widget.model_file.value = tiny_model
    widget.direction.value = "vertical"
    widget.output_dtype.value = "float32"
    widget.run_button.clicked.emit()
    wait_idle(qtbot, widget)
    out = viewer.layers["stack destriped"].data
    assert out.shape == striped.shape and out.dtype == np.float32
    expected = destripe(
        striped, tiny_model, device="cpu", direction="vertical", output_dtype="float32"
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)


def test_builtin_model_is_the_default_and_works(viewer, qtbot, clean):
    assert builtin_model_path().is_file(), "the pretrained model ships with the package"
    striped = simulate_stripes(clean, kind="tilted", seed=5).image
    viewer.add_image(striped, name="tilted")
    widget = open_destripe(viewer)
    assert widget.model.value == BUILTIN
    assert "ResCBAMUNet" in widget.model_info.value
    widget.run_button.clicked.emit()
    wait_idle(qtbot, widget)
    out = viewer.layers["tilted destriped"].data
    err_before = np.abs(striped.astype(float) - clean).mean()
    err_after = np.abs(out.astype(float) - clean).mean()
    assert err_after < err_before, "the shipped model removes stripes"


def test_adapt_to_the_image_first(viewer, qtbot, clean, tiny_model):
    """Ticking adaptation shows its step count; the run fine-tunes a copy on the image."""
    striped = simulate_stripes(np.tile(clean, (2, 1)), kind="regular", seed=6).image
    layer = viewer.add_image(striped, name="striped")
    widget = open_destripe(viewer)
    widget.model.value = FROM_FILE
    widget.model_file.value = tiny_model
    assert not widget.adapt.value and not widget.adapt_steps.native.isVisibleTo(widget.native)
    widget.adapt.value = True
    assert widget.adapt_steps.native.isVisibleTo(widget.native)
    widget.adapt_steps.value = 2
    shown = []  # the status line after each progress report the dock received
    show_stage = widget._show_stage
    widget._show_stage = lambda p: (show_stage(p), shown.append(widget.status.value))
    widget.run_button.clicked.emit()
    wait_idle(qtbot, widget)
    out = viewer.layers["striped destriped"]
    assert out.metadata["destripe_adapt_steps"] == 2
    np.testing.assert_array_equal(
        out.data, destripe(striped, tiny_model, device="cpu", adapt_steps=2)
    )
    assert not np.array_equal(out.data, destripe(striped, tiny_model, device="cpu"))
    np.testing.assert_array_equal(layer.data, striped)
    assert "adapting to the image: step 2 of 2" in shown


def test_stripe_free_layers_come_back_unchanged_unless_unticked(viewer, qtbot, rng):
    from scipy import ndimage

    spots = np.zeros((128, 160), np.float32)
    spots[rng.integers(0, 128, 40), rng.integers(0, 160, 40)] = 1.0
    clean = (ndimage.gaussian_filter(spots, 3.0) * 4000 + 100).astype(np.uint16)
    viewer.add_image(clean, name="clean")
    widget = open_destripe(viewer)
    assert widget.only_striped.value and widget.cleanup.value  # the defaults
    widget.run_button.clicked.emit()
    wait_idle(qtbot, widget)
    np.testing.assert_array_equal(viewer.layers["clean destriped"].data, clean)
    viewer.layers.selection.active = viewer.layers["clean"]
    widget.image.value = viewer.layers["clean"]
    widget.only_striped.value = False
    widget.cleanup.value = False
    widget.run_button.clicked.emit()
    wait_idle(qtbot, widget)
    out = viewer.layers[-1].data
    np.testing.assert_array_equal(
        out, destripe(clean, device="cpu", only_striped=False, cleanup=False)
    )
    assert not np.array_equal(out, clean)


def test_cancel_and_bad_input(viewer, qtbot, tiny_model, rng):
    viewer.add_image(rng.random((40, 512, 512)).astype(np.float32), name="big")
    widget = open_destripe(viewer)
    widget.model.value = FROM_FILE
    widget.model_file.value = tiny_model
    widget.run_button.clicked.emit()
    worker = widget.runner.worker
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        widget.cancel_button.clicked.emit()
    assert [lyr.name for lyr in viewer.layers] == ["big"]

    viewer.add_image(rng.random((32, 32, 3)), rgb=True, name="colour")
    widget.image.value = viewer.layers["colour"]
    widget.run_button.clicked.emit()
    assert "RGB" in widget.status.value
    widget.image.value = viewer.layers["big"]
    widget.model_file.value = tiny_model.with_name("missing.safetensors")
    widget.run_button.clicked.emit()
    assert "Choose a .safetensors model file" in widget.status.value
    assert len(viewer.layers) == 2


def test_train_stop_continue_save_load_and_use_in_destripe(viewer, qtbot, clean, tmp_path):
    viewer.add_image(clean, name="clean")
    trainer_dock = open_training(viewer)
    trainer_dock.images.value = [viewer.layers["clean"]]
    trainer_dock.steps.value = 100_000
    trainer_dock.clean_fraction.value = 0.25
    trainer_dock.bright_fraction.value = 0.3
    trainer_dock.shadow_fraction.value = 0.4
    trainer_dock.shadow_profiles.value = "varied"
    trainer_dock.level_weight.value = 1.5
    trainer_dock.train_button.clicked.emit()
    qtbot.waitUntil(lambda: steps_shown(trainer_dock) >= 3, timeout=60_000)
    assert trainer_dock.trainer is None, "the worker hands the trainer over only when done"
    trainer_dock.stop_button.clicked.emit()
    wait_idle(qtbot, trainer_dock)
    assert "stopped" in trainer_dock.status.value
    stopped_at = trainer_dock.trainer.step
    assert trainer_dock.trainer.config.clean_fraction == 0.25
    assert trainer_dock.trainer.config.bright_fraction == 0.3
    assert trainer_dock.trainer.config.shadow_fraction == 0.4
    assert trainer_dock.trainer.config.shadow_profiles == "varied"
    assert trainer_dock.curves.losses["total"][1], "losses were plotted"
    assert trainer_dock.trainer.config.level_weight == 1.5
    assert set(trainer_dock.curves.losses) == {"total", "mae", "perceptual", "level"}
    assert any(trainer_dock.curves.losses["level"][1]), "the level term was plotted"

    trainer_dock.steps.value = stopped_at + 4
    trainer_dock.level_weight.value = 0.5
    trainer_dock.train_button.clicked.emit()
    wait_idle(qtbot, trainer_dock)
    assert trainer_dock.trainer.step == stopped_at + 4, "Train continues the same model"
    assert trainer_dock.trainer.config.level_weight == 0.5, "with the level weight set now"
    assert "val_psnr" in trainer_dock.curves.metrics
    # The status puts the validation PSNR beside the input's; the legend speaks in words.
    assert " dB (input " in trainer_dock.status.value
    trainer_dock.curves.redraw()
    words = set(trainer_dock.curves.plot.legend_labels())
    assert {"total loss", "model output PSNR (dB)", "striped input PSNR (dB)"} <= words
    assert trainer_dock.preview.titles == ("input", "output", "target")

    path = tmp_path / "mine.safetensors"
    trainer_dock.save_path.value = path
    trainer_dock.save_button.clicked.emit()
    assert path.exists() and "saved" in trainer_dock.status.value
    trainer_dock.new_button.clicked.emit()
    assert trainer_dock.trainer is None
    trainer_dock.level_weight.value = 0.0
    trainer_dock.load_path.value = path
    trainer_dock.load_button.clicked.emit()
    assert trainer_dock.trainer.step == stopped_at + 4
    assert trainer_dock.level_weight.value == 0.5, "the loaded model's setting is shown"

    destripe_dock = open_destripe(viewer)
    session = [c for c in destripe_dock.model.choices if c.startswith("trained here")]
    assert session, "the model trained in the dock is offered for destriping"
    destripe_dock.model.value = session[-1]
    destripe_dock.image.value = viewer.layers["clean"]
    destripe_dock.run_button.clicked.emit()
    wait_idle(qtbot, destripe_dock)
    assert "clean destriped" in [lyr.name for lyr in viewer.layers]


def test_perceptual_weight_without_vgg_weights_says_how_to_fix(
    viewer, qtbot, clean, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    viewer.add_image(clean, name="clean")
    widget = open_training(viewer)
    widget.images.value = [viewer.layers["clean"]]
    widget.advanced_section.expand(animate=False)  # λ is among the folded settings
    widget.perceptual_weight.value = 0.1
    assert widget.vgg_weights.native.isVisibleTo(widget.native)
    widget.train_button.clicked.emit()
    wait_idle(qtbot, widget)
    assert "VGG-19" in widget.status.value and "perceptual weight" in widget.status.value
    assert "--" not in widget.status.value, "dock advice, no command-line flags"
    assert widget.trainer is None


def test_training_dock_fits_a_1000_px_screen(viewer):
    widget = open_training(viewer)
    native = widget.native
    # The dock's own wish and its least: both leave room for the viewer's title and menus.
    assert native.sizeHint().height() <= 900
    assert native.minimumSizeHint().height() <= 900
    assert not widget.advanced_section.isExpanded()


def test_training_needs_images(viewer):
    widget = open_training(viewer)
    widget.train_button.clicked.emit()
    assert "Pick at least one clean image" in widget.status.value
