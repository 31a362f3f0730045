"""Destripe training dock: train the attention residual U-Net on your own clean images.

Training pairs are made on the fly from the chosen layers with fresh synthetic stripes (the
three types in the proportions set here). The loss is MAE + λ·perceptual (VGG-19 features); λ is
the "perceptual weight"; a "level weight" adds a term on the mean of the pixels the stripes left
unchanged. Loss curves, validation PSNR/SSIM and a before/after preview update
while it trains; Stop keeps the weights, Train continues, Save/Load write and resume model files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    PushButton,
    Select,
    SpinBox,
)

from napari_restore._widgets import _warmup
from napari_restore._widgets._common import (
    DockContainer,
    DockLifetime,
    JobRunner,
    error_text,
    follow_active_layer,
    image_layer_choices,
    layer_data,
    status_row,
)
from napari_restore._widgets._plot import ImagePreview
from napari_restore._widgets._session import session_snapshot
from napari_restore._widgets._training import (
    TrainingCurves,
    TrainingDock,
    device_chooser,
    row,
)
from napari_restore.core.progress import Progress
from napari_restore.errors import RestoreInputError
from napari_restore.simulate.stripes import stripe_kinds

if TYPE_CHECKING:
    import napari

    from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer


def _psnr_text(psnr: float, before: float | None) -> str:
    """``"val. PSNR 31.2 dB (input 27.0 dB)"``: a model worse than its input shows at once."""
    text = f"val. PSNR {psnr:.1f} dB"
    if before is not None and math.isfinite(before):
        text += f" (input {before:.1f} dB)"
    return text


def vgg_advice() -> str:
    """What to do in this dock when the perceptual loss's VGG-19 weights are missing."""
    return (
        "A perceptual weight λ > 0 needs the ImageNet VGG-19 weights (548 MB), not found here. "
        "Choose the file under 'VGG-19 weights', tick 'download VGG-19 if missing', or set λ "
        "to 0 (MAE loss alone) in the training settings."
    )


class TrainDestripeWidget(TrainingDock, DockContainer):
    """Dock that trains a destriping network on clean image layers."""

    TASK = "destripe"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        from napari_restore.destripe.config import DestripeTrainConfig

        defaults = DestripeTrainConfig()
        self._viewer = napari_viewer
        self.trainer: DestripeTrainer | None = None
        self._trained_on: list[Any] = []

        self.images = Select(label="clean images", choices=image_layer_choices(napari_viewer))
        self.images.native.setMaximumHeight(90)
        # One weight per registered stripe kind (a kind registered later appears in new docks).
        self.mix = {
            kind: FloatSpinBox(
                value=defaults.stripe_mix.get(kind, 0.0),
                min=0,
                max=100,
                step=0.5,
                tooltip=f"relative frequency of {kind} stripes",
            )
            for kind in stripe_kinds()
        }
        mix = row(*self.mix.values(), label="mix " + "/".join(k[:4] for k in self.mix))
        self.additive = CheckBox(text="additive", value="additive" in defaults.modes)
        self.multiplicative = CheckBox(
            text="multiplicative", value="multiplicative" in defaults.modes
        )
        modes = row(self.additive, self.multiplicative, label="stripe modes")
        self.clean_fraction = FloatSpinBox(
            label="stripe-free patches",
            value=defaults.clean_fraction,
            min=0,
            max=0.9,
            step=0.05,
            tooltip="Share of training patches left without stripes: the network learns to leave "
            "clean structures alone (0.2-0.3 helps on sparse bright objects).",
        )
        self.bright_fraction = FloatSpinBox(
            label="brightening stripes",
            value=defaults.bright_fraction,
            min=0,
            max=0.9,
            step=0.05,
            tooltip="Share of multiplicative stripe fields that brighten instead of darkening: "
            "a network trained on shadows only learns that every correction brightens, and "
            "lifts real light-sheet images (the built-in model used 0.5).",
        )
        self.shadow_fraction = FloatSpinBox(
            label="absorber shadows",
            value=defaults.shadow_fraction,
            min=0,
            max=0.9,
            step=0.05,
            tooltip="Share of stripe fields drawn as the shadows of absorbers in the sheet: "
            "stripes that start sharply, trail off, fan out and bend, as real light-sheet "
            "shadows do (the simulator's stripes run through or fade symmetrically).",
        )
        self.shadow_profiles = ComboBox(
            label="shadow profiles",
            choices=["classic", "varied"],
            value=defaults.shadow_profiles,
            tooltip="Cross-sections of the absorber shadows: Gaussian or flat-topped (classic), "
            "or also generalised-Gaussian, lopsided and with a scattering halo (varied).",
        )
        self.perceptual_weight = FloatSpinBox(
            label="perceptual weight λ",
            value=defaults.perceptual_weight,
            min=0,
            max=1000,
            step=0.01,
            tooltip="Loss = MAE + λ·perceptual (VGG-19 relu4_3 features). λ > 0 needs the "
            "ImageNet VGG-19 weights (torch hub cache, a file, or a download).",
        )
        self.level_weight = FloatSpinBox(
            label="level weight",
            value=defaults.level_weight,
            min=0,
            max=100,
            step=0.5,
            tooltip="Adds level weight × the change of the mean of the pixels the stripes left "
            "unchanged, per patch: small changes of one sign cost the MAE little per pixel "
            "but add up to a brightened or darkened image. 0: MAE (and λ·perceptual) only.",
        )
        self.vgg_weights = FileEdit(label="VGG-19 weights", mode="r", filter="*.pth *.safetensors")
        self.download_vgg = CheckBox(label="download VGG-19 if missing", value=False)
        self.steps = SpinBox(label="steps", value=defaults.steps, min=1, max=10_000_000, step=100)
        self.learning_rate = FloatSpinBox(
            label="learning rate", value=defaults.learning_rate, min=1e-6, max=1.0, step=1e-4
        )
        self.learning_rate.native.setDecimals(6)
        self.patch_size = SpinBox(
            label="patch size", value=defaults.patch_size, min=32, max=1024, step=16
        )
        self.batch_size = SpinBox(label="batch size", value=defaults.batch_size, min=1, max=256)
        self.base_channels = SpinBox(
            label="base channels", value=defaults.base_channels, min=2, max=256
        )
        self.depth = SpinBox(label="depth", value=defaults.depth, min=1, max=6)
        self.seed = SpinBox(label="seed", value=defaults.seed, min=0, max=2**31 - 1)
        self.device, self.device_info, device_row = device_chooser()
        self.train_button = PushButton(text="Train")
        self.new_button = PushButton(text="New model")
        buttons = row(self.train_button, self.new_button, label="")
        files = self._model_file_widgets()
        self.progress, self.status, self.stop_button, status = status_row()
        self.stop_button.text = "Stop (keeps the weights)"
        self.runner = JobRunner(self.progress, self.status, self.stop_button)
        # The settings most people leave alone fold away, so the dock fits a 1000-px screen
        # with its plots.
        advanced = Container(
            widgets=[
                mix,
                modes,
                self.clean_fraction,
                self.bright_fraction,
                self.shadow_fraction,
                self.shadow_profiles,
                self.perceptual_weight,
                self.level_weight,
                self.vgg_weights,
                self.download_vgg,
                self.learning_rate,
                self.patch_size,
                self.batch_size,
                self.base_channels,
                self.depth,
                self.seed,
            ]
        )
        advanced.margins = (0, 0, 0, 0)
        self.advanced = advanced
        super().__init__(
            widgets=[self.images, self.steps, device_row, buttons, *files, status],
        )
        from superqt import QCollapsible

        self.advanced_section = QCollapsible("Training settings (stripes, loss, network)")
        self.advanced_section.addWidget(advanced.native)
        self.rows.layout().insertWidget(2, self.advanced_section)
        self.curves = TrainingCurves(
            ("total", "mae", "perceptual", "level"), ("val_psnr", "val_input_psnr"), height=3.2
        )
        self.preview = ImagePreview(("input", "output", "target"), height=1.5)
        self.rows.layout().addWidget(self.curves.plot)
        self.rows.layout().addWidget(self.preview)

        self._life = DockLifetime(self.native)
        follow_active_layer(napari_viewer, self.images, self._life)
        _warmup.preload(_warmup.TRAINING_MODULES)
        self._life.track(self.runner)
        self.perceptual_weight.changed.connect(self._update_visibility)
        self.train_button.changed.connect(self.train)
        self.new_button.changed.connect(self.new_model)
        self._update_visibility()

    # -- settings -----------------------------------------------------------------------------
    def _update_visibility(self, *_: Any) -> None:
        vgg = self.perceptual_weight.value > 0
        self.vgg_weights.visible = vgg
        self.download_vgg.visible = vgg

    def config(self) -> DestripeTrainConfig:
        """The training settings as set in the dock."""
        from napari_restore.destripe.config import DestripeTrainConfig

        modes = tuple(
            m
            for m, on in (("additive", self.additive), ("multiplicative", self.multiplicative))
            if on.value
        )
        vgg = self.vgg_weights.value
        return DestripeTrainConfig(
            steps=self.steps.value,
            learning_rate=self.learning_rate.value,
            batch_size=self.batch_size.value,
            patch_size=self.patch_size.value,
            perceptual_weight=self.perceptual_weight.value,
            level_weight=self.level_weight.value,
            stripe_mix={kind: spin.value for kind, spin in self.mix.items()},
            modes=modes,
            clean_fraction=self.clean_fraction.value,
            bright_fraction=self.bright_fraction.value,
            shadow_fraction=self.shadow_fraction.value,
            shadow_profiles=self.shadow_profiles.value,
            base_channels=self.base_channels.value,
            depth=self.depth.value,
            seed=self.seed.value,
            device=self.device.value,
            vgg_weights=str(vgg) if vgg is not None and Path(vgg).is_file() else None,
            download_vgg=self.download_vgg.value,
        )

    def _clean_layers(self) -> tuple[list[Any], list[str]]:
        layers = list(self.images.value)
        if not layers:
            raise RestoreInputError("Pick at least one clean image layer to train on.")
        return [layer_data(lyr, what="Training") for lyr in layers], [lyr.name for lyr in layers]

    # -- training -----------------------------------------------------------------------------
    def train(self, *_: Any) -> None:
        """Train (a new model, or continue the current one) in a worker."""
        if self.runner.running:
            return
        try:
            config = self.config()
            images, names = self._clean_layers()
        except (RestoreInputError, ValueError) as err:
            self.status.value = error_text(err)
            return
        trainer = self.trainer
        if trainer is None and config.perceptual_weight > 0 and config.vgg_weights is None:
            from napari_restore.models.vgg import hub_checkpoint_path

            if not config.download_vgg and not hub_checkpoint_path().is_file():
                self.status.value = vgg_advice()
                return
        if trainer is not None and trainer.step >= config.steps:
            self.status.value = (
                f"Already trained {trainer.step} steps: raise 'steps' to continue, or click "
                "New model."
            )
            return

        def job() -> Any:
            nonlocal trainer
            if trainer is None:
                yield Progress(0, config.steps, stage="train", message="preparing data")
                # Imported in the worker: torch may still be loading in the background.
                from napari_restore.destripe.train import DestripeTrainer

                try:
                    trainer = DestripeTrainer(images, config, names=names)
                except RestoreInputError as err:
                    # The engine's advice names the command line's flags too: the dock's own.
                    reason, advice, _ = str(err).partition("The perceptual loss needs")
                    if advice:
                        raise RestoreInputError(f"{reason}{vgg_advice()}") from err
                    raise
            else:
                trainer.config = trainer.config.replace(
                    steps=config.steps,
                    learning_rate=config.learning_rate,
                    level_weight=config.level_weight,
                )
            summary = yield from trainer.train()
            return summary, session_snapshot(trainer)

        def done(result: Any) -> None:
            summary, snapshot = result
            self.trainer = trainer
            self._publish(snapshot)
            self._trained(summary)

        def finished() -> None:
            # GUI thread: take the trainer back (also after an error).
            self.trainer = trainer
            self.curves.redraw()

        def stop() -> bool:
            # Stop ends the training after the current step: the worker then copies the
            # network for the apply docks (never the GUI thread).
            if trainer is None:
                return False
            trainer.stop()
            return True

        self.curves.new_run()
        self.runner.start(
            job(),
            on_done=done,
            on_progress=self._progress,
            on_finish=finished,
            on_stop=stop,
            label="training",
        )

    def _progress(self, p: Progress) -> None:
        self.curves.add(p)
        if p.preview is not None:
            self.preview.show_images(p.preview)
        if p.losses:
            parts = [f"step {p.step}/{p.total}: loss {p.losses['total']:.4g}"]
            val = self.curves.metrics.get("val_psnr")
            before = self.curves.metrics.get("val_input_psnr")
            if val:
                # Beside the input's PSNR, a model that makes images worse shows at once.
                parts.append(
                    f"val. PSNR {val[1][-1]:.1f} dB"
                    + (
                        f" (input {before[1][-1]:.1f} dB)"
                        if before and math.isfinite(before[1][-1])
                        else ""
                    )
                )
            left = self.curves.time_left(p.step, p.total)
            self.status.value = ", ".join([*parts, left] if left else parts)

    def _trained(self, summary: dict[str, Any]) -> None:
        self.curves.redraw()
        ms = summary.get("ms_per_step", float("nan"))
        psnr = summary["metrics"].get("val_psnr")
        before = summary["metrics"].get("val_input_psnr")
        done = "stopped after" if summary.get("stopped_by") == "stop" else "trained"
        self.status.value = f"{done} {summary['steps']} steps ({ms:.0f} ms/step)" + (
            f", {_psnr_text(psnr, before)}" if psnr is not None else ""
        )

    def _session_name(self) -> str:
        return f"trained here ({self.trainer.step} steps)"

    # -- files --------------------------------------------------------------------------------
    def load(self, path: Any) -> None:
        """Resume a saved model: training continues on the chosen layers."""
        from napari_restore.destripe.train import DestripeTrainer

        if self.runner.running:
            raise RestoreInputError("Stop the training before loading another model.")
        images, names = self._clean_layers()
        cfg = self.config()
        self.trainer = DestripeTrainer.resume(
            path,
            images,
            names=names,
            steps=cfg.steps,
            device=cfg.device,
            learning_rate=cfg.learning_rate,
        )
        kwargs = self.trainer.config
        self.base_channels.value, self.depth.value = kwargs.base_channels, kwargs.depth
        self.perceptual_weight.value = kwargs.perceptual_weight
        self.level_weight.value = kwargs.level_weight
        self.curves.reset()
        self.status.value = f"loaded {Path(path).name} at step {self.trainer.step}"
