"""Denoise dock: self-supervised SRDTrans (Li et al., Nat. Comput. Sci. 2023) on your own stack.

Training needs no clean data: pairs come from neighbouring pixels of the same frame (spatial
redundancy). Train on the noisy layer (a loss curve and a preview frame update meanwhile; Stop
keeps the weights), then Apply, or do both with one click. Models can be saved and loaded.

The training settings follow the chosen device (the paper's on a GPU; small patches, a higher
learning rate and the pretrained network as the start on a CPU). When a result is likely poor
(too few steps, a loss still falling steeply, a flattened output) the dock says so and what
to do, in the line under the status.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)

from napari_restore._widgets import _warmup
from napari_restore._widgets._common import (
    DockContainer,
    DockLifetime,
    JobRunner,
    current_plane_index,
    error_text,
    follow_active_layer,
    image_layer_choices,
    layer_and_model,
    layer_kwargs_like,
    selected_layer_data,
    status_row,
)
from napari_restore._widgets._plot import ImagePreview
from napari_restore._widgets._session import SESSION_MODELS, session_snapshot
from napari_restore._widgets._training import (
    TrainingCurves,
    TrainingDock,
    device_chooser,
    row,
)
from napari_restore._widgets._volume import VolumePanel
from napari_restore.core.progress import Progress
from napari_restore.engine.options import InferenceOptions
from napari_restore.errors import RestoreInputError

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from napari_restore.denoise.train import DenoiseTrainConfig, DenoiseTrainer

TASK = "denoise"
THIS_DOCK = "trained in this dock"
FROM_FILE = "model file…"
PRETRAINED = "pretrained network"
SCRATCH = "scratch (random weights)"
# Default time budget: the CPU benchmarks use 3 minutes (docs/denoise.md); a GPU does far more.
DEFAULT_MINUTES = {"cpu": 3.0, "cuda": 5.0}


def _device_kind(device: str) -> str:
    """ "cuda" for a GPU, "cpu" for anything else (MPS gets the CPU settings too)."""
    from napari_restore.core.device import resolve_device

    return "cuda" if resolve_device(device).type == "cuda" else "cpu"


class DenoiseWidget(TrainingDock, DockContainer):
    """Dock that trains SRDTrans on a noisy stack and denoises it."""

    TASK = TASK

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        from napari_restore.denoise.config import DenoiseTrainConfig, pretrained_model_path

        # CPU settings first: which device "auto" means is known once torch is imported in the
        # background (_engine_ready), so that opening the dock does not wait for torch.
        defaults = DenoiseTrainConfig.for_device("cpu")
        self._device_kind = "cpu"
        self._viewer = napari_viewer
        self.trainer: DenoiseTrainer | None = None
        self._trainer_layer: Image | None = None

        self.image = ComboBox(
            label="noisy image", choices=image_layer_choices(napari_viewer), nullable=False
        )
        self.stack_axis = ComboBox(label="stack axis (T or Z)", choices=self._axis_choices)
        self.stack_info = Label(value="", label="")
        self.stack_info.native.setWordWrap(True)
        self.start = ComboBox(
            label="start from",
            choices=[PRETRAINED, SCRATCH] if pretrained_model_path() is not None else [SCRATCH],
            value=PRETRAINED if defaults.init == "pretrained" else SCRATCH,
            tooltip="Where a new model starts. Either way it is trained on your stack "
            "(self-supervised); the pretrained start needs far fewer steps on a CPU.",
        )
        self.patch_t = SpinBox(
            label="patch frames", value=defaults.patch_t, min=16, max=512, step=16
        )
        self.patch_xy = SpinBox(
            label="patch size (px)", value=defaults.patch_xy, min=16, max=1024, step=16
        )
        self.minutes = FloatSpinBox(
            label="time budget (min)",
            value=DEFAULT_MINUTES[self._device_kind],
            min=0.0,
            max=10_000,
            step=1,
            tooltip="Training stops after this many minutes or the epochs, whichever comes "
            "first; 0 = epochs only.",
        )
        self.epochs = SpinBox(label="epochs", value=defaults.epochs or 10, min=1, max=10_000)
        self.learning_rate = FloatSpinBox(
            label="learning rate", value=defaults.learning_rate, min=1e-7, max=1.0, step=1e-5
        )
        self.learning_rate.native.setDecimals(7)
        self.seed = SpinBox(label="seed", value=defaults.seed, min=0, max=2**31 - 1)
        self.device, self.device_info, device_row = device_chooser()
        self.train_button = PushButton(text="Train")
        self.train_apply_button = PushButton(text="Train && apply")
        self.new_button = PushButton(text="New model")
        train_row = row(self.train_button, self.train_apply_button, self.new_button, label="")
        self.model = ComboBox(label="apply with", choices=self._model_choices)
        self.model_file = FileEdit(label="model file", mode="r", filter="*.safetensors")
        self.output_dtype = ComboBox(label="output dtype", choices=["input", "float32"])
        self.flips = ComboBox(
            label="flip ensemble",
            choices=[("flips: auto", "auto"), ("flips: off", 1), ("flips: 2", 2), ("flips: 4", 4)],
            value="auto",
            tooltip="Denoise mirrored copies of the stack too and average the results: "
            "cleaner, and that many times the time. auto: 4 passes on the CPU for stacks "
            "up to 64 x 256 x 256 voxels, else 1 (a GPU: the paper's single pass).",
        )
        self.apply_button = PushButton(text="Apply")
        files = self._model_file_widgets()
        self.progress, self.status, self.stop_button, status = status_row()
        self.advice = Label(value="", label="")
        self.advice.native.setWordWrap(True)
        self.advice.native.setStyleSheet("color: #f0b400;")
        self.stop_button.text = "Stop / Cancel"
        self.runner = JobRunner(self.progress, self.status, self.stop_button)
        self.volume = VolumePanel(napari_viewer, self, self._start_volume, "denoised")
        # The settings most people leave alone fold away, so the dock with its plots fits a
        # 1000-px screen (unfolded it asked for 1083 px at least).
        advanced = Container(
            widgets=[self.patch_t, self.patch_xy, self.epochs, self.learning_rate, self.seed]
        )
        advanced.margins = (0, 0, 0, 0)
        self.advanced = advanced
        super().__init__(
            widgets=[
                self.image,
                self.stack_axis,
                self.stack_info,
                self.start,
                self.minutes,
                device_row,
                train_row,
                self.model,
                self.model_file,
                row(self.output_dtype, self.flips, label="output dtype"),
                self.apply_button,
                *files,
                status,
                self.advice,
            ]
        )
        from superqt import QCollapsible

        self.advanced_section = QCollapsible("Training settings (patches, rate, epochs, seed)")
        self.advanced_section.addWidget(advanced.native)
        self.rows.layout().insertWidget(5, self.advanced_section)
        self.volume_section = QCollapsible("Whole volume to a file (cluster)")
        self.volume_section.addWidget(self.volume.native)
        self.rows.layout().addWidget(self.volume_section)
        self.curves = TrainingCurves(("total", "l1", "mse"), ())
        self.preview = ImagePreview(("input", "output"))
        self.rows.layout().addWidget(self.curves.plot)
        self.rows.layout().addWidget(self.preview)

        self._life = DockLifetime(self.native)
        follow_active_layer(napari_viewer, self.image, self._life)
        self._life.track(self.runner)
        self._life.track(self.volume.runner)
        self._life.connect(SESSION_MODELS.changed, self._session_models_changed)
        self.image.changed.connect(self._image_changed)
        self.stack_axis.changed.connect(self._update_stack_info)
        self.model.changed.connect(self._update_visibility)
        self.train_button.changed.connect(lambda *_: self.train(apply=False))
        self.train_apply_button.changed.connect(lambda *_: self.train(apply=True))
        self.new_button.changed.connect(self.new_model)
        self.apply_button.changed.connect(self.apply)
        self.device.changed.connect(self._device_changed)
        self.start.changed.connect(self._start_changed)
        self._image_changed()
        self._start_changed()
        _warmup.when_ready(_warmup.TORCH_MODULES, self._engine_ready)
        _warmup.preload(_warmup.TRAINING_MODULES)

    def _engine_ready(self) -> None:
        """Torch is imported: the settings of the device "auto" picks, the pretrained frames."""
        self._device_changed()
        self._start_changed()

    # -- choices ------------------------------------------------------------------------------
    def _axis_choices(self, *_: Any) -> list[tuple[str, int]]:
        layer = self.image.value if hasattr(self, "image") else None
        if layer is None or layer.data.ndim < 3:
            return [("—", 0)]
        labels = self._viewer.dims.axis_labels[-layer.data.ndim :]
        # napari's default labels are just numbers ("-3"): name those by position instead.
        names = [
            f"axis {i}" if label.lstrip("-").isdigit() else f"{i}: {label}"
            for i, label in enumerate(labels)
        ]
        return [(f"{names[i]} ({layer.data.shape[i]})", i) for i in range(layer.data.ndim - 2)]

    def _model_choices(self, *_: Any) -> list[str]:
        return [THIS_DOCK, *SESSION_MODELS.names(TASK), FROM_FILE]

    def _session_models_changed(self, task: str) -> None:
        if task == TASK:
            self.model.reset_choices()

    def _image_changed(self, *_: Any) -> None:
        self.stack_axis.reset_choices()
        self._update_stack_info()
        self._update_visibility()

    def _device_changed(self, *_: Any) -> None:
        """Put the default training settings of a new kind of device (CPU / GPU) in the
        fields; switching between devices of the same kind keeps what was set."""
        from napari_restore.denoise.config import DenoiseTrainConfig

        if not _warmup.imported(_warmup.TORCH_MODULES):
            return  # done once torch is in (_engine_ready)
        try:
            d = DenoiseTrainConfig.for_device(self.device.value)
            kind = _device_kind(self.device.value)
        except (RestoreInputError, ValueError):
            return
        if kind == self._device_kind:
            return
        self._device_kind = kind
        self.patch_xy.value = d.patch_xy
        self.learning_rate.value = d.learning_rate
        self.minutes.value = DEFAULT_MINUTES[kind]
        self.start.value = PRETRAINED if d.init == "pretrained" else SCRATCH
        self.patch_t.value = d.patch_t
        self._start_changed()

    def _start_changed(self, *_: Any) -> None:
        """The pretrained network fixes the patch frames (its temporal position embedding);
        the learning rate is the device's default for the start chosen (lower when a trained
        network is fine-tuned on a CPU). Both wait until torch is in (``_warmup``)."""
        from napari_restore.denoise.config import pretrained_model_path

        pretrained = self.start.value == PRETRAINED
        if _warmup.imported(_warmup.TORCH_MODULES):  # else: once torch is in
            from napari_restore.denoise.config import DenoiseTrainConfig
            from napari_restore.engine.model_files import read_model_metadata

            try:
                d = DenoiseTrainConfig.for_device(
                    self.device.value, init="pretrained" if pretrained else "scratch"
                )
                self.learning_rate.value = d.learning_rate
            except (RestoreInputError, ValueError):
                pass
            if pretrained:
                path = pretrained_model_path()
                if path is not None:
                    kwargs = read_model_metadata(path)["architecture"]["kwargs"]
                    self.patch_t.value = int(kwargs["patch_t"])
        self.patch_t.enabled = not pretrained

    def _update_visibility(self, *_: Any) -> None:
        self.model_file.visible = self.model.value == FROM_FILE

    def _update_stack_info(self, *_: Any) -> None:
        layer = self.image.value
        if layer is None:
            self.stack_info.value = ""
        elif layer.data.ndim == 2:
            self.stack_info.value = (
                "A single 2D image: SRDTrans learns from a stack (time points or z-slices); "
                "on one frame it uses spatial redundancy only."
            )
        elif layer.data.ndim == 3:
            self.stack_info.value = f"{layer.data.shape[0]} frames of {layer.data.shape[1:]}"
        else:
            self.stack_info.value = (
                "Trains on the stack shown now (other axes at the viewer's position, e.g. the "
                "current channel); Apply denoises every channel, each on its own."
            )

    # -- data -----------------------------------------------------------------------------------
    def _training_stack(self, layer: Image, data: Any) -> Any:
        """The (T, Y, X) stack to train on: 4D/5D data at the viewer's other positions."""
        if data.ndim <= 3:
            return data
        axis = int(self.stack_axis.value)
        index = list(current_plane_index(self._viewer, layer))
        index[axis] = slice(None)
        return data[tuple(index)]

    def config(self) -> DenoiseTrainConfig:
        """The training settings as set in the dock."""
        from napari_restore.denoise.config import DenoiseTrainConfig

        return DenoiseTrainConfig.for_device(
            self.device.value,
            patch_t=self.patch_t.value,
            patch_xy=self.patch_xy.value,
            learning_rate=self.learning_rate.value,
            epochs=self.epochs.value,
            minutes=self.minutes.value or None,
            seed=self.seed.value,
            init="pretrained" if self.start.value == PRETRAINED else "scratch",
        )

    # -- training -------------------------------------------------------------------------------
    def new_model(self, *_: Any) -> None:
        """Forget the current network (and the advice about it)."""
        super().new_model()
        if not self.runner.running:
            self.advice.value = ""

    def train(self, apply: bool = False) -> None:
        """Train (new or continued) in a worker; with ``apply``, denoise the layer afterwards."""
        if self.runner.running:
            return
        try:
            layer, data = selected_layer_data(self.image, what="Denoising")
            config = self.config()
            stack = self._training_stack(layer, data)
        except (RestoreInputError, ValueError) as err:
            self.status.value = error_text(err)
            return
        if self.trainer is not None and self._trainer_layer is not layer:
            self.trainer = None  # a model is tied to the stack it learnt (and its mean)
            self.curves.reset()
        trainer = self.trainer
        self.advice.value = ""
        stack_axis = int(self.stack_axis.value) if data.ndim > 3 else 0
        options, flips = self.options(), self.flips.value

        def job() -> Any:
            nonlocal trainer
            # Imported in the worker: torch may still be loading in the background.
            from napari_restore.denoise.infer import output_warnings
            from napari_restore.denoise.train import DenoiseTrainer, training_warnings
            from napari_restore.denoise.workflows import train_then_apply

            if trainer is None:
                yield Progress(0, 0, stage="train", message="preparing data")
                trainer = DenoiseTrainer(stack, config, source=layer.name)
            else:
                trainer.config = config
            if not apply:
                summary = yield from trainer.train(minutes=config.minutes)
                return summary, training_warnings(trainer, summary), session_snapshot(trainer)
            out = yield from train_then_apply(
                trainer, data, options, stack_axis=stack_axis, minutes=config.minutes, flips=flips
            )
            advice = training_warnings(trainer) + output_warnings(data, out)
            return out, advice, session_snapshot(trainer)

        def done(result: Any) -> None:
            value, advice, snapshot = result
            self.trainer, self._trainer_layer = trainer, layer
            self._publish(snapshot)
            if apply:
                self._add_result(layer, value)
            else:
                self._trained(value)
            self.advice.value = "\n".join(f"⚠ {a}" for a in advice)

        def finished() -> None:
            # GUI thread: take the trainer back (also after Cancel or an error).
            if trainer is not None:
                self.trainer, self._trainer_layer = trainer, layer
            self.curves.redraw()

        def stop() -> bool:
            # Stop ends a training after the current step (the worker then copies the network
            # for the other docks); Train & apply is cancelled as a whole.
            if trainer is None or apply:
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
            label="training" + (" and denoising" if apply else ""),
        )

    def _progress(self, p: Progress) -> None:
        if p.stage == "train":
            self.curves.add(p)
            if p.preview is not None:
                self.preview.show_images(p.preview)
            if p.losses:
                units = (
                    " (stack scaled to std 10)"
                    if self.trainer and self.trainer.scale != 1.0
                    else ""
                )
                left = self.curves.time_left(p.step, p.total)
                self.status.value = f"step {p.step}: loss {p.losses['total']:.4g}{units}" + (
                    f", {left}" if left else ""
                )
        elif p.message:
            self.status.value = p.message

    def _trained(self, summary: dict[str, Any]) -> None:
        self.curves.redraw()
        self.status.value = (
            f"trained {summary['steps']} steps ({summary['ms_per_step']:.0f} ms/step, "
            f"stopped by {summary['stopped_by']})"
        )

    def _session_name(self) -> str:
        return f"{self.trainer.source} ({self.trainer.step} steps)"

    # -- applying -------------------------------------------------------------------------------
    def model_spec(self) -> Any:
        """The network or model file chosen under "apply with"."""
        choice = self.model.value
        if choice == THIS_DOCK:
            if self.trainer is None or self.trainer.step == 0:
                raise RestoreInputError(
                    "No model trained in this dock yet: click Train (or Train & apply), load a "
                    "model, or choose a model file."
                )
            return self.trainer.model
        if choice == FROM_FILE:
            path = self.model_file.value
            if path is None or not Path(path).is_file():
                raise RestoreInputError("Choose a .safetensors model file first.")
            return Path(path)
        return SESSION_MODELS.get(TASK, choice)[0]

    def apply(self, *_: Any) -> None:
        """Denoise the chosen layer in a worker; the result becomes a new layer."""
        job = layer_and_model(self, what="Denoising")
        if job is None:
            return
        layer, data, model = job
        options, flips = self.options(), self.flips.value
        stack_axis = int(self.stack_axis.value) if data.ndim > 3 else 0

        def work() -> Any:
            # Imported in the worker: torch may still be loading in the background.
            from napari_restore.denoise.infer import denoise_progress, output_warnings

            out = yield from denoise_progress(
                data, model, options, stack_axis=stack_axis, flips=flips
            )
            return out, output_warnings(data, out)  # the checks read the output: here too

        self.advice.value = ""

        def done(result: Any) -> None:
            out, advice = result
            self._add_result(layer, out)
            self.advice.value = "\n".join(f"⚠ {a}" for a in advice)

        self.runner.start(work(), on_done=done, label="denoising")

    def _start_volume(self, inp: Path, out: Path, model: Any, client: Any, resume: bool) -> Any:
        """The blockwise run of "Process whole volume to a file…" (a (T, Y, X) stack file)."""
        from napari_restore.denoise.distributed import denoise_volume_progress

        return denoise_volume_progress(
            inp, out, model, self.options(), client=client, resume=resume
        )

    def options(self) -> InferenceOptions:
        """The inference settings as set in the dock."""
        return InferenceOptions(device=self.device.value, output_dtype=self.output_dtype.value)

    def _add_result(self, source: Image, data: Any) -> None:
        kwargs = layer_kwargs_like(source, contrast_limits=source.contrast_limits)
        self._viewer.add_image(data, name=f"{source.name} denoised", **kwargs)

    # -- files ----------------------------------------------------------------------------------
    def load(self, path: Any) -> None:
        """Resume a saved model on the chosen layer (train further, or apply it)."""
        from napari_restore.denoise.train import DenoiseTrainer

        if self.runner.running:
            raise RestoreInputError("Stop the training before loading another model.")
        layer, data = selected_layer_data(self.image, what="Denoising")
        self.trainer = DenoiseTrainer.resume(
            path, self._training_stack(layer, data), device=self.device.value
        )
        self._trainer_layer = layer
        self.model.value = THIS_DOCK
        self.curves.reset()
        self.status.value = f"loaded {Path(path).name} at step {self.trainer.step}"
