"""Stripe Simulator dock: add synthetic stripes to an image layer, with a live preview.

The preview shows the plane currently on screen and follows parameter changes: edits restart a
short timer (debounce), and the plane is computed in a thread worker, so dragging a spin box on
a large image never freezes the viewer. "Create" runs the whole layer in a worker and adds new
layers; the source layer is never changed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    PushButton,
    SpinBox,
)

from napari_restore._widgets._common import (
    DockContainer,
    DockLifetime,
    JobRunner,
    current_plane_index,
    error_text,
    follow_active_layer,
    image_layer_choices,
    layer_data,
    layer_kwargs_like,
    selected_layer_data,
    status_row,
)
from napari_restore.core.arrays import robust_range
from napari_restore.simulate.stripes import (
    POLARITIES,
    STRIPE_MODES,
    StripeParams,
    get_stripe_kind,
    simulate_stripes_progress,
    stripe_kinds,
    striped_plane_at,
)

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

PREVIEW_SUFFIX = " [stripe preview]"
_PREVIEW_MARK = "napari_restore_preview"
_DEFAULTS = StripeParams()


class FloatRange(Container):
    """Two spin boxes side by side holding a ``(low, high)`` range."""

    def __init__(self, value: tuple[float, float], *, label: str, **spin: Any) -> None:
        self.low = FloatSpinBox(value=value[0], label="", **spin)
        self.high = FloatSpinBox(value=value[1], label="", **spin)
        super().__init__(widgets=[self.low, self.high], layout="horizontal", labels=False)
        self.label = label
        self.margins = (0, 0, 0, 0)

    @property
    def value(self) -> tuple[float, float]:  # type: ignore[override]
        return (float(self.low.value), float(self.high.value))

    @value.setter
    def value(self, v: tuple[float, float]) -> None:
        self.low.value, self.high.value = v


class StripeSimulatorWidget(DockContainer):
    """Dock that degrades an image layer with the stripe model of Wei et al. (2022)."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        self._viewer = napari_viewer
        self._preview_layer: Image | None = None
        self._preview_job: Any = None
        self._preview_pending = False
        self._range_cache: dict[int, float] = {}

        self.image = ComboBox(
            label="image",
            choices=image_layer_choices(napari_viewer, exclude=self._is_preview),
            nullable=False,
        )
        self.kind = ComboBox(
            label="stripe type", choices=lambda _w: stripe_kinds(), value=_DEFAULTS.kind
        )
        self.mode = ComboBox(label="mode", choices=STRIPE_MODES, value=_DEFAULTS.mode)
        self.density = FloatSpinBox(
            label="density (per 100 px)", value=_DEFAULTS.density, min=0, max=100, step=0.5
        )
        self.stripe_count = SpinBox(label="count (0 = density)", value=0, min=0, max=100_000)
        self.stripe_width = FloatRange(
            _DEFAULTS.width, label="width σ (px)", min=0.1, max=500, step=0.1
        )
        self.full_length = CheckBox(label="full length", value=True)
        self.stripe_length = FloatRange(
            (200.0, 1000.0), label="length σ (px)", min=1, max=100_000, step=10
        )
        self.amplitude = FloatRange(
            _DEFAULTS.amplitude, label="amplitude", min=0, max=10, step=0.05
        )
        self.polarity = ComboBox(label="polarity", choices=POLARITIES, value=_DEFAULTS.polarity)
        self.period = FloatSpinBox(
            label="period (px)", value=_DEFAULTS.period, min=1, max=10_000, step=1
        )
        self.angle = FloatRange(_DEFAULTS.angle, label="angle (°)", min=-79, max=79, step=1)
        self.baseline = FloatSpinBox(
            label="camera offset",
            value=0,
            min=-1e9,
            max=1e9,
            step=1,
            tooltip="Signal below this is not attenuated by shadows (the camera baseline).",
        )
        self.per_slice = CheckBox(label="new stripes per slice", value=True)
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.new_seed = PushButton(text="New seed")
        self.output_dtype = ComboBox(label="output dtype", choices=["input", "float32"])
        self.add_field = CheckBox(label="also add stripe field", value=False)
        self.live_preview = CheckBox(label="live preview", value=True)
        self.create_button = PushButton(text="Create")
        self.progress, self.status, self.cancel_button, status = status_row()
        self.runner = JobRunner(self.progress, self.status, self.cancel_button)

        # Every widget that shapes the stripes re-renders the preview when it changes.
        stripe_widgets = (
            self.kind,
            self.mode,
            self.density,
            self.stripe_count,
            self.stripe_width,
            self.full_length,
            self.stripe_length,
            self.amplitude,
            self.polarity,
            self.period,
            self.angle,
            self.baseline,
            self.per_slice,
            self.seed,
        )
        super().__init__(
            widgets=[
                self.image,
                *stripe_widgets,
                self.new_seed,
                self.output_dtype,
                self.add_field,
                self.live_preview,
                self.create_button,
                status,
            ],
        )
        self._life = DockLifetime(self.native)
        follow_active_layer(napari_viewer, self.image, self._life)
        self._life.track(self.runner)
        self._timer = self._life.timer(150, self._start_preview)
        for w in stripe_widgets:
            w.changed.connect(self._params_changed)
        self.image.changed.connect(self._image_changed)
        self.live_preview.changed.connect(self._live_preview_toggled)
        self.new_seed.changed.connect(self._draw_new_seed)
        self.create_button.changed.connect(self.create)
        self._life.connect(napari_viewer.dims.events.current_step, self._params_changed)
        self._life.connect(napari_viewer.layers.events.removed, self._layer_removed)
        self._update_visibility()
        self._params_changed()

    # -- parameters -------------------------------------------------------------------------
    def params(self) -> StripeParams:
        """The stripe model as set in the dock (raises RestoreInputError if inconsistent)."""
        return StripeParams(
            kind=self.kind.value,
            mode=self.mode.value,
            density=self.density.value,
            count=self.stripe_count.value or None,
            width=self.stripe_width.value,
            length=None if self.full_length.value else self.stripe_length.value,
            amplitude=self.amplitude.value,
            polarity=self.polarity.value,
            period=self.period.value,
            angle=self.angle.value,
            per_slice=self.per_slice.value,
            seed=self.seed.value,
        )

    def _update_visibility(self) -> None:
        additive = self.mode.value == "additive"
        # Only the parameters the kind declares in the registry are shown.
        used = set(get_stripe_kind(self.kind.value).parameters)
        self.density.visible = "density" in used
        self.stripe_count.visible = "count" in used
        self.stripe_width.visible = "width" in used
        self.full_length.visible = "length" in used
        self.stripe_length.visible = "length" in used and not self.full_length.value
        self.angle.visible = "angle" in used
        self.period.visible = "period" in used
        self.polarity.visible = additive
        self.baseline.visible = not additive
        layer = self.image.value
        self.per_slice.visible = layer is not None and layer.data.ndim > 2

    def _is_preview(self, layer: Any) -> bool:
        # The metadata mark holds while the layer is being inserted, before add_image returns.
        return layer is self._preview_layer or bool(layer.metadata.get(_PREVIEW_MARK))

    def _draw_new_seed(self, *_: Any) -> None:
        self.seed.value = int(np.random.default_rng().integers(0, 2**31 - 1))

    # -- live preview -----------------------------------------------------------------------
    def _params_changed(self, *_: Any) -> None:
        self._update_visibility()
        try:
            self.params()
        except ValueError as err:
            self.status.value = error_text(err)
            return
        if not self.runner.running:
            self.status.value = ""
        if self.live_preview.value and self.image.value is not None:
            self._timer.start()

    def _image_changed(self, *_: Any) -> None:
        self._remove_preview()
        self._params_changed()

    def _live_preview_toggled(self, on: bool) -> None:
        if on:
            self._params_changed()
        else:
            self._timer.stop()
            self._remove_preview()

    def _layer_removed(self, event: Any) -> None:
        if event.value is self._preview_layer:
            self._preview_layer = None

    def _remove_preview(self, *_: Any) -> None:
        layer, self._preview_layer = self._preview_layer, None
        if layer is not None and layer in self._viewer.layers:
            self._viewer.layers.remove(layer)

    def _intensity_range(self, layer: Image, data: Any) -> float:
        key = id(data)
        if key not in self._range_cache:
            self._range_cache = {key: robust_range(data)}
        return self._range_cache[key]

    def _start_preview(self) -> None:
        """Compute the on-screen plane in a worker; coalesce requests made meanwhile."""
        if self._preview_job is not None:
            self._preview_pending = True
            return
        layer = self.image.value
        if layer is None or not self.live_preview.value:
            return
        try:
            params = self.params()
            data = layer_data(layer, what="The stripe simulator")
        except ValueError as err:
            self.status.value = error_text(err)
            return
        index = current_plane_index(self._viewer, layer)
        baseline = self.baseline.value

        from napari.qt.threading import create_worker

        def job() -> tuple[np.ndarray, Image]:
            scale = self._intensity_range(layer, data) if params.mode == "additive" else 1.0
            plane, _ = striped_plane_at(data, params, index, scale=scale, baseline=baseline)
            return plane.astype(np.float32), layer

        worker = create_worker(
            job,
            _start_thread=False,
            _connect={
                "returned": self._show_preview,
                "errored": self._preview_failed,
                "finished": self._preview_finished,
            },
        )
        self._preview_job = worker
        worker.start()

    def _preview_failed(self, err: BaseException) -> None:
        if self._life.alive:
            self.status.value = error_text(err)

    def _preview_finished(self) -> None:
        self._preview_job = None
        if self._preview_pending and self._life.alive:
            self._preview_pending = False
            self._start_preview()

    def _show_preview(self, result: tuple[np.ndarray, Image]) -> None:
        plane, source = result
        if not self._life.alive or source is not self.image.value or not self.live_preview.value:
            return
        if self._preview_layer is not None and self._preview_layer in self._viewer.layers:
            self._preview_layer.data = plane
            return
        kwargs = layer_kwargs_like(source, contrast_limits=source.contrast_limits)
        for key in ("scale", "translate"):
            kwargs[key] = kwargs[key][-2:]
        for key in ("rotate", "shear", "metadata"):
            kwargs.pop(key)
        self._preview_layer = self._viewer.add_image(
            plane, name=source.name + PREVIEW_SUFFIX, metadata={_PREVIEW_MARK: True}, **kwargs
        )
        self.image.reset_choices()

    # -- create -----------------------------------------------------------------------------
    def create(self, *_: Any) -> None:
        """Simulate the whole layer in a worker and add the result as new layer(s)."""
        if self.runner.running:
            return
        try:
            params = self.params()
            layer, data = selected_layer_data(self.image, what="The stripe simulator")
        except ValueError as err:
            self.status.value = error_text(err)
            return
        dtype = self.output_dtype.value
        add_field = self.add_field.value
        baseline = self.baseline.value
        gen = simulate_stripes_progress(data, params, output_dtype=dtype, baseline=baseline)

        def done(result: Any) -> None:
            self._add_results(layer, params, result, add_field)

        self.runner.start(gen, on_done=done, label="simulating stripes")

    def _add_results(self, source: Image, params: StripeParams, result: Any, field: bool) -> None:
        self._remove_preview()
        tag = params.describe()
        meta = {"stripe_params": dataclasses.asdict(params)}
        kwargs = layer_kwargs_like(source, contrast_limits=source.contrast_limits)
        kwargs["metadata"] = {**kwargs["metadata"], **meta}
        # The word that tells the two apart comes first: long names are cut at the end.
        self._viewer.add_image(result.image, name=f"striped {source.name} ({tag})", **kwargs)
        if field:
            fkw = layer_kwargs_like(source, colormap="magma", blending="additive", visible=False)
            fkw["metadata"] = {**fkw["metadata"], **meta}
            self._viewer.add_image(result.field, name=f"stripe field {source.name} ({tag})", **fkw)
