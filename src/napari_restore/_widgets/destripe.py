"""Destripe dock: one click removes stripes from an image layer with a trained network.

The built-in model ships with the package; a model file or a model trained in this session
(training dock) can be picked instead. The work runs in a worker over blended tiles, plane by
plane for stacks; Cancel leaves no layer behind. After each run the worker also runs the
no-reference stripe meter on the result (at most :data:`METER_PLANES` planes of a stack), and the
dock shows its three numbers: stripe energy removed, structure changed, intensity change.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    Label,
    PushButton,
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
    layer_and_model,
    layer_kwargs_like,
    status_row,
)
from napari_restore._widgets._session import SESSION_MODELS
from napari_restore._widgets._training import device_chooser
from napari_restore._widgets._volume import VolumePanel
from napari_restore.core.progress import Progress, ProgressGenerator
from napari_restore.destripe.config import DEFAULT_ADAPT_STEPS
from napari_restore.engine.options import InferenceOptions
from napari_restore.errors import RestoreInputError

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

BUILTIN = "built-in"
FROM_FILE = "model file…"
TASK = "destripe"
METER_PLANES = 8  # planes of a stack the stripe meter reads after a run


def meter_domain(meta: dict[str, Any]) -> str:
    """The stripe meter's domain for a model's results: ``"log"`` (stripes that multiply the
    image, such as light-sheet shadows, read right there; docs/metrics.md) unless the model
    was trained on additive stripes only."""
    modes = meta.get("training", {}).get("config", {}).get("modes", ("multiplicative",))
    return "linear" if tuple(modes) == ("additive",) else "log"


def with_stripe_meter(
    gen: ProgressGenerator[Any], image: Any, direction: str, domain: str = "linear"
) -> ProgressGenerator[tuple[Any, Any]]:
    """Run a destripe generator, then the stripe meter on its result (in the same worker).

    Returns ``(result, StripeMeasure or RestoreInputError)``: a meter that cannot measure
    (e.g. planes under 16 px) never costs the user the destriped result.
    """
    from napari_restore.stripe_meter import measure_stripes_steps

    out = yield from gen
    meter = measure_stripes_steps(
        image, out, direction=direction, max_planes=METER_PLANES, domain=domain
    )
    try:
        while True:
            step, total = next(meter)
            yield Progress(step, total, stage="stripe meter")
    except StopIteration as stop:
        return out, stop.value
    except RestoreInputError as err:
        return out, err
    finally:
        meter.close()


def meter_text(measure: Any) -> str:
    """The dock's line about a run: the meter's three numbers, or why there are none."""
    if isinstance(measure, RestoreInputError):
        return f"stripe meter: not measured ({measure})"
    planes = f", {len(measure.planes)} planes" if measure.planes else ""
    return f"stripe meter (no reference, {measure.domain} domain{planes}): {measure.verdict}"


def describe_model(meta: dict[str, Any]) -> str:
    """One line about a destripe model: network size, steps, validation PSNR."""
    kwargs = meta.get("architecture", {}).get("kwargs", {})
    parts = [f"{meta.get('architecture', {}).get('name', '?')}"]
    if kwargs:
        parts.append(f"{kwargs.get('base_channels', '?')} ch × {kwargs.get('depth', '?')} levels")
    if "steps" in meta:
        parts.append(f"{meta['steps']} steps")
    val = meta.get("validation") or {}
    if "val_psnr" in val:
        parts.append(f"val. PSNR {val['val_psnr']:.1f} dB")
    return ", ".join(parts)


class DestripeWidget(DockContainer):
    """Dock that removes stripe artifacts from an image layer."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        self._viewer = napari_viewer
        self.image = ComboBox(
            label="image", choices=image_layer_choices(napari_viewer), nullable=False
        )
        self.model = ComboBox(label="model", choices=self._model_choices)
        self.model_file = FileEdit(label="model file", mode="r", filter="*.safetensors")
        self.model_info = Label(value="", label="")
        self.model_info.native.setWordWrap(True)
        self.direction = ComboBox(
            label="stripes run",
            choices=[
                ("horizontally (along x)", "horizontal"),
                ("vertically (along y)", "vertical"),
                ("auto-detect per image", "auto"),
            ],
            value="horizontal",
            tooltip="The direction the stripes run in the image; auto-detect measures it.",
        )
        self.device, self.device_info, device_row = device_chooser()
        self.output_dtype = ComboBox(label="output dtype", choices=["input", "float32"])
        self.tile = SpinBox(label="tile (0 = auto)", value=0, min=0, max=8192, step=64)
        self.only_striped = CheckBox(
            text="leave planes without stripes unchanged",
            value=True,
            tooltip="Planes whose spectrum shows no stripes, and whose correction by the network "
            "is no stripe pattern either, are returned as they are (the network would otherwise "
            "'correct' structures it mistakes for shadows). Untick to keep the network's output "
            "on every plane.",
        )
        self.cleanup = CheckBox(
            text="spectral clean-up of fine stripes",
            value=True,
            tooltip="After the network, keep only the stripe-shaped part of its correction "
            "(what it changed along other directions is dropped), then bring the stripe "
            "direction of the spectrum down to the level of the neighbouring directions where "
            "the input shows stripes: removes fine, long stripes the network leaves. Last, "
            "the plane's unstriped majority gets its input intensity back (the network's own "
            "level drift is divided out).",
        )
        self.adapt = CheckBox(
            text="adapt the model to this image first",
            value=False,
            tooltip="Before destriping, fine-tune a copy of the model for a few steps on this "
            "image's own destriped planes with fresh random stripes, so that it learns what "
            "this image's structures look like and leaves them alone (no ground truth needed; "
            "about a minute for 40 steps on two CPU cores, seconds on a GPU). The model itself "
            "is not changed.",
        )
        self.adapt_steps = SpinBox(
            label="adaptation steps",
            value=DEFAULT_ADAPT_STEPS,
            min=1,
            max=5000,
            step=10,
            tooltip="Fine-tuning steps of the adaptation (4 patches of 128 px each).",
        )
        self.adapt_steps.visible = False
        self.run_button = PushButton(text="Destripe")
        self.meter = Label(value="", label="")
        self.meter.native.setWordWrap(True)
        self.meter.tooltip = (
            "After each run: the share of the input's stripe energy removed, the share of its "
            "other content changed, and the change of its median intensity over the foreground "
            "(no ground truth needed; see docs/metrics.md)."
        )
        #: The stripe meter's result for the last run (StripeMeasure, or the error).
        self.last_measure: Any = None
        self.progress, self.status, self.cancel_button, status = status_row()
        self.runner = JobRunner(self.progress, self.status, self.cancel_button)
        self.volume = VolumePanel(napari_viewer, self, self._start_volume, "destriped")
        super().__init__(
            widgets=[
                self.image,
                self.model,
                self.model_file,
                self.model_info,
                self.direction,
                device_row,
                self.output_dtype,
                self.tile,
                self.only_striped,
                self.cleanup,
                self.adapt,
                self.adapt_steps,
                self.run_button,
                self.meter,
                status,
                self.volume,
            ]
        )
        self._life = DockLifetime(self.native)
        follow_active_layer(napari_viewer, self.image, self._life)
        self._life.track(self.runner)
        self._life.track(self.volume.runner)
        self._life.connect(SESSION_MODELS.changed, self._session_models_changed)
        self.model.changed.connect(self._model_changed)
        self.model_file.changed.connect(self._model_changed)
        self.run_button.changed.connect(self.run)
        self.adapt.changed.connect(self._adapt_toggled)
        # The model's description and the default tile need torch: shown once it is imported
        # in the background, so that opening the dock does not wait for it.
        self.model_info.value = "…"
        _warmup.when_ready(_warmup.TORCH_MODULES, self._engine_ready)

    def _engine_ready(self) -> None:
        from napari_restore.destripe.infer import DEFAULT_TILE

        self.tile.tooltip = (
            f"Tile edge in pixels; tiles overlap and are blended. Auto: {DEFAULT_TILE} px on "
            "every device (the network's attention pools over a tile, so the tile size changes "
            "the result; a GPU runs more tiles at once instead)."
        )
        self._model_changed()

    def _adapt_toggled(self, on: bool) -> None:
        self.adapt_steps.visible = bool(on)

    # -- model choice -------------------------------------------------------------------------
    def _model_choices(self, *_: Any) -> list[str]:
        return [BUILTIN, *SESSION_MODELS.names(TASK), FROM_FILE]

    def _session_models_changed(self, task: str) -> None:
        if task == TASK:
            self.model.reset_choices()

    def _model_changed(self, *_: Any) -> None:
        choice = self.model.value
        self.model_file.visible = choice == FROM_FILE
        if not _warmup.imported(_warmup.TORCH_MODULES):
            return  # described once torch is in (_engine_ready)
        try:
            self.model_info.value = describe_model(self._metadata(choice))
        except (RestoreInputError, KeyError, OSError) as err:
            self.model_info.value = error_text(err)

    def _metadata(self, choice: str) -> dict[str, Any]:
        from napari_restore.destripe.infer import builtin_model_path
        from napari_restore.engine.model_files import read_model_metadata

        if choice == BUILTIN:
            return read_model_metadata(builtin_model_path())
        if choice == FROM_FILE:
            path = self.model_file.value
            if path is None or not Path(path).is_file():
                raise RestoreInputError("Choose a .safetensors model file.")
            return read_model_metadata(path)
        return SESSION_MODELS.get(TASK, choice)[1]

    def model_spec(self) -> Any:
        """What to pass as ``model`` to the engine for the current choice."""
        choice = self.model.value
        if choice == BUILTIN:
            return "builtin"
        if choice == FROM_FILE:
            path = self.model_file.value
            if path is None or not Path(path).is_file():
                raise RestoreInputError("Choose a .safetensors model file first.")
            return Path(path)
        return SESSION_MODELS.get(TASK, choice)

    # -- run ----------------------------------------------------------------------------------
    def run(self, *_: Any) -> None:
        """Destripe the chosen layer in a worker; the result becomes a new layer."""
        job = layer_and_model(self, what="Destripe")
        if job is None:
            return
        layer, data, model = job
        options = InferenceOptions(
            device=self.device.value,
            tile=self.tile.value or None,
            output_dtype=self.output_dtype.value,
        )
        direction = self.direction.value
        only_striped, cleanup = self.only_striped.value, self.cleanup.value
        adapt_steps = self.adapt_steps.value if self.adapt.value else 0
        try:
            domain = meter_domain(self._metadata(self.model.value))
        except (RestoreInputError, KeyError, OSError):
            domain = "log"  # the built-in kind of model: attenuation stripes

        def work() -> ProgressGenerator[tuple[Any, Any]]:
            # Imported in the worker: torch may still be loading in the background.
            from napari_restore.destripe.infer import destripe_progress

            gen = destripe_progress(
                data,
                model,
                options,
                direction=direction,
                only_striped=only_striped,
                cleanup=cleanup,
                adapt_steps=adapt_steps,
            )
            return (yield from with_stripe_meter(gen, data, direction, domain))

        self.meter.value = ""
        self.runner.start(
            work(),
            on_done=lambda res: self._add_result(layer, *res, adapt_steps=adapt_steps),
            on_progress=self._show_stage,
            label="destriping",
        )

    def _show_stage(self, p: Progress) -> None:
        """The engine's line about what runs (adaptation steps, planes) in the status row."""
        if p.message and self.status.value != p.message:
            self.status.value = p.message

    def check_volume_settings(self) -> None:
        """Refuse a whole-volume run with adaptation ticked (blocks go through the network
        alone; adapting needs whole planes on one machine)."""
        if self.adapt.value:
            raise RestoreInputError(
                "Adaptation works on the layer in memory (Destripe); untick 'adapt the model "
                "to this image first' to process the whole volume block by block."
            )

    def _start_volume(self, inp: Path, out: Path, model: Any, client: Any, resume: bool) -> Any:
        """The blockwise run of "Process whole volume to a file…" (same settings as Destripe)."""
        from napari_restore.destripe.distributed import destripe_volume_progress

        options = InferenceOptions(
            device=self.device.value,
            tile=self.tile.value or None,
            output_dtype=self.output_dtype.value,
        )
        return destripe_volume_progress(
            inp,
            out,
            model,
            options,
            client=client,
            direction=self.direction.value,
            resume=resume,
        )

    def _add_result(
        self, source: Image, data: Any, measure: Any = None, *, adapt_steps: int = 0
    ) -> None:
        kwargs = layer_kwargs_like(source, contrast_limits=source.contrast_limits)
        kwargs["metadata"] = {**kwargs["metadata"], "destripe_model": str(self.model.value)}
        if adapt_steps:
            kwargs["metadata"]["destripe_adapt_steps"] = adapt_steps
        if measure is not None and not isinstance(measure, RestoreInputError):
            kwargs["metadata"]["stripe_meter"] = measure.as_dict(per_plane=False)
        self.last_measure = measure
        self.meter.value = meter_text(measure) if measure is not None else ""
        self._viewer.add_image(data, name=f"{source.name} destriped", **kwargs)
