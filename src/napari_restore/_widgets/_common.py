"""Pieces every dock shares: layer choices, result layers, and running engine generators.

Docks only collect parameters, start an engine generator in a napari thread worker and put
results into NEW layers. Nothing here does image math.
"""

from __future__ import annotations

import contextlib
import traceback
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import Container, Label, ProgressBar, PushButton
from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QWidget

from napari_restore._widgets._priority import lower_thread_priority
from napari_restore.core.progress import Progress
from napari_restore.errors import RestoreInputError

if TYPE_CHECKING:
    import napari
    from napari.layers import Image
    from superqt.utils import GeneratorWorker


def image_layer_choices(
    viewer: napari.Viewer, exclude: Callable[[Any], bool] | None = None
) -> Callable[[Any], list[tuple[str, Image]]]:
    """A magicgui ``choices`` callable listing the viewer's image layers (name, layer)."""
    from napari.layers import Image

    def choices(_widget: Any = None) -> list[tuple[str, Image]]:
        return [
            (layer.name, layer)
            for layer in viewer.layers
            if isinstance(layer, Image) and not (exclude and exclude(layer))
        ]

    return choices


def follow_active_layer(viewer: napari.Viewer, widget: Any, life: DockLifetime) -> None:
    """Make a dock's layer choice default to the viewer's selected layer and follow it.

    Until the user picks a layer in ``widget`` themselves, it shows the viewer's active layer
    (all selected layers for a multiple choice) when that is one of its choices and visible;
    otherwise the top-most visible choice, so a hidden layer (say a sample's ground truth) is
    never the default while a visible one exists. A pick of the user's own is kept until that
    layer is removed.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layer selection to follow.
    widget : magicgui ComboBox or Select
        The dock's layer choice (its choices are layers).
    life : DockLifetime
        The dock's lifetime; the viewer connections end with it.
    """
    multiple = isinstance(widget.value, list | tuple)
    state: dict[str, Any] = {"picked": None, "setting": False, "shown": False}

    def user_picked(*_: Any) -> None:
        if not state["setting"]:
            value = widget.value
            state["picked"] = list(value) if multiple else value

    def contains(layers: Any, layer: Any) -> bool:
        return any(layer is other for other in layers)

    def target(options: list[Any]) -> Any:
        selected = viewer.layers.selection
        chosen = [
            lyr
            for lyr in reversed(viewer.layers)
            if lyr.visible and contains(options, lyr) and lyr in selected and id(lyr) not in results
        ]
        active = selected.active
        if active is not None and active.visible and contains(options, active):
            chosen = [active, *(lyr for lyr in chosen if lyr is not active)]
        if not chosen:  # nothing usable selected: keep a visible current choice, else the
            # top-most visible layer, else the top one
            # (a choice once made stays when the layer is hidden later, e.g. to compare)
            current = widget.value if multiple else [widget.value]
            kept = [
                lyr
                for lyr in current
                if lyr is not None and (lyr.visible or state["shown"]) and contains(options, lyr)
            ]
            if kept:
                return kept if multiple else kept[0]
            top = [
                lyr
                for lyr in reversed(viewer.layers)
                if contains(options, lyr) and id(lyr) not in results
            ]
            visible = [lyr for lyr in top if lyr.visible]
            chosen = (visible or top)[:1]
        if multiple:
            return chosen
        return chosen[0] if chosen else None

    # A dock's own result (derived from the layer it shows) becomes the active layer when it
    # is added; the dock keeps its input rather than offering to process its result again.
    results: set[int] = set()
    known = {id(layer) for layer in viewer.layers}

    def note_new_layers() -> None:
        current = widget.value if multiple else [widget.value]
        names = {lyr.name for lyr in current if lyr is not None}
        present = {id(layer) for layer in viewer.layers}
        known.intersection_update(present)  # ids of removed layers are reused by new ones
        results.intersection_update(present)
        for layer in viewer.layers:
            if id(layer) not in known:
                known.add(id(layer))
                if layer.metadata.get("napari_restore_source") in names:
                    results.add(id(layer))

    def follow(*_: Any) -> None:
        note_new_layers()  # before anything else: napari may select a layer before inserting
        if id(viewer.layers.selection.active) in results:
            return
        picked = state["picked"]
        if picked is not None:
            still = picked if multiple else [picked]
            if still and all(contains(viewer.layers, lyr) for lyr in still):
                return  # the user's own choice stands
            state["picked"] = None
        state["setting"] = True
        try:  # the choices may not have caught up with the layer list yet
            widget.reset_choices()
        finally:
            state["setting"] = False
        options = list(widget.choices)
        if not options:
            return
        value = target(options)
        current = widget.value
        same = (
            len(value) == len(current) and all(a is b for a, b in zip(value, current, strict=True))
            if multiple
            else value is current
        )
        if value is None or same:
            return
        state["setting"] = True
        try:
            widget.value = value
        finally:
            state["setting"] = False

    # Only the user's own clicks count as a pick (programmatic changes and resets do not).
    if multiple:
        widget.native.itemPressed.connect(user_picked)
        widget.native.itemActivated.connect(user_picked)
        widget.native.itemSelectionChanged.connect(
            lambda: widget.native.hasFocus() and user_picked()
        )
    else:
        widget.native.activated.connect(user_picked)
    selection = viewer.layers.selection.events
    life.connect(selection.active, follow)
    life.connect(selection.changed, follow)
    layers = viewer.layers.events
    for event in (layers.inserted, layers.removed, layers.reordered):
        life.connect(event, follow)
    follow()
    state["shown"] = True


def layer_data(layer: Image, *, min_ndim: int = 2, what: str = "This dock") -> Any:
    """The array behind an image layer, refusing data the engine cannot take (clear message).

    Dask and zarr arrays are returned as they are, so the engine reads them plane by plane.
    """
    if layer.multiscale:
        raise RestoreInputError(
            f"'{layer.name}' is a multiscale (pyramid) layer; {what} works on single-scale "
            "layers. Use the command line for pyramids, or add the full-resolution level alone."
        )
    if layer.rgb:
        raise RestoreInputError(
            f"'{layer.name}' is an RGB layer; {what} works on greyscale channels. Split the "
            "channels (right-click the layer > Split RGB) and pick one."
        )
    data = layer.data
    if np.dtype(data.dtype).kind == "c":
        raise RestoreInputError(f"'{layer.name}' holds complex numbers; pick a real-valued image.")
    if data.ndim < min_ndim:
        raise RestoreInputError(
            f"'{layer.name}' has {data.ndim} dimension(s); {what} needs at least {min_ndim}."
        )
    return data


def selected_layer_data(combo: Any, *, what: str, min_ndim: int = 2) -> tuple[Image, Any]:
    """The layer chosen in a layer combo box and its data (see :func:`layer_data`).

    Raises
    ------
    RestoreInputError
        If no layer is chosen, or its data cannot be processed (with the reason).
    """
    layer = combo.value
    if layer is None:
        raise RestoreInputError("Add or pick an image layer first.")
    return layer, layer_data(layer, min_ndim=min_ndim, what=what)


def layer_and_model(dock: Any, *, what: str) -> tuple[Image, Any, Any] | None:
    """``(layer, data, model)`` for a dock's Apply, or None after showing why in its status.

    None also while the dock's worker is running. The dock has ``runner``, ``image`` (a layer
    combo box), ``status`` and ``model_spec()``.
    """
    if dock.runner.running:
        return None
    try:
        layer, data = selected_layer_data(dock.image, what=what)
        model = dock.model_spec()
    except RestoreInputError as err:
        dock.status.value = error_text(err)
        return None
    return layer, data, model


def layer_kwargs_like(source: Image, **overrides: Any) -> dict[str, Any]:
    """Spatial placement and display settings of ``source`` for a derived layer."""
    kwargs: dict[str, Any] = {
        "scale": tuple(source.scale),
        "translate": tuple(source.translate),
        "rotate": source.rotate,
        "shear": source.shear,
        "colormap": source.colormap.name,
        "blending": source.blending,
        "metadata": {**dict(source.metadata), "napari_restore_source": source.name},
    }
    kwargs.update(overrides)
    return kwargs


def current_plane_index(viewer: napari.Viewer, layer: Image) -> tuple[int, ...]:
    """Index of the 2D (Y, X) plane of ``layer`` shown at the viewer's current position."""
    lead = layer.data.ndim - 2
    if lead <= 0:
        return ()
    coords = layer.world_to_data(viewer.dims.point)
    coords = list(coords)[-layer.data.ndim :]
    return tuple(
        int(np.clip(np.round(c), 0, n - 1))
        for c, n in zip(coords[:lead], layer.data.shape[:lead], strict=True)
    )


def error_text(err: BaseException) -> str:
    """Message for the status line: user errors as they are, bugs with their type."""
    if isinstance(err, RestoreInputError):
        return str(err)
    return f"{type(err).__name__}: {err}"


class JobRunner:
    """Runs one engine generator at a time in a napari thread worker for a dock.

    Wires a magicgui progress bar, a status label and a Cancel/Stop button; the engine
    generator yields :class:`Progress` (where a stop request takes effect) and returns the
    result, which goes to ``on_done`` on the GUI thread. On cancel nothing is delivered.
    """

    def __init__(self, progress: ProgressBar, status: Label, stop_button: PushButton) -> None:
        self.progress = progress
        self.status = status
        self.stop_button = stop_button
        self.worker: GeneratorWorker | None = None
        self._on_stop: Callable[[], bool] | None = None
        self._detached = False
        self.stop_button.enabled = False
        self.stop_button.changed.connect(self.stop)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(
        self,
        gen: Generator[Progress, None, Any],
        *,
        on_done: Callable[[Any], None],
        on_progress: Callable[[Progress], None] | None = None,
        on_finish: Callable[[], None] | None = None,
        on_stop: Callable[[], bool] | None = None,
        label: str = "working",
    ) -> GeneratorWorker:
        """Start ``gen`` in a thread worker (the caller checks :attr:`running` first).

        ``on_stop``, if given, is tried first when the user clicks Stop: it returns True when it
        asked the job to end by itself (e.g. a trainer that then returns its summary), False to
        have the job cancelled at its next progress report.
        """
        from napari.qt.threading import create_worker

        def job() -> Generator[Progress, None, Any]:
            lower_thread_priority()
            return (yield from gen)

        def yielded(p: Progress) -> None:
            if self._detached:
                return
            if p.total:
                self.progress.max = p.total
                self.progress.value = min(p.step, p.total)
            if on_progress is not None:
                on_progress(p)

        def returned(result: Any) -> None:
            if self._detached:
                return
            self.status.value = f"{label}: done"
            on_done(result)

        def errored(err: BaseException) -> None:
            if not isinstance(err, RestoreInputError):
                traceback.print_exception(err)
            if not self._detached:
                self.status.value = f"Error: {error_text(err)}"

        def aborted() -> None:
            if not self._detached:
                self.status.value = f"{label}: stopped"

        def finished() -> None:
            self.worker = None
            if self._detached:
                return
            self.stop_button.enabled = False
            self.stop_button.visible = False
            self.progress.visible = False
            if on_finish is not None:
                on_finish()

        # Handlers go in at creation: superqt re-raises errors of workers created without an
        # "errored" handler in the GUI thread, which would crash instead of reporting.
        worker = create_worker(
            job,
            _start_thread=False,
            _connect={
                "yielded": yielded,
                "returned": returned,
                "errored": errored,
                "aborted": aborted,
                "finished": finished,
            },
        )
        self.worker = worker
        self._on_stop = on_stop
        self.progress.value = 0
        self.progress.visible = True
        self.stop_button.visible = True
        self.stop_button.enabled = True
        self.status.value = f"{label}…"
        worker.start()
        return worker

    def stop(self, *_: Any) -> None:
        """Ask the running job to stop at its next progress report."""
        if self.worker is not None:
            self.status.value = "stopping…"
            if self._on_stop is None or not self._on_stop():
                self.worker.quit()

    def detach(self) -> None:
        """The dock is gone: stop the job and deliver nothing more to its widgets."""
        self._detached = True
        if self.worker is not None:
            self.worker.quit()


#: The least height of a dock before it scrolls: three docks still fit a 1000 px window.
MIN_DOCK_HEIGHT = 280


class _DockScroll(QScrollArea):
    """The scroll area around a dock's rows (see :class:`DockContainer`).

    Qt caps a scroll area's size hint at 24 lines; napari shares a side's height between its
    docks by their hints, so a dock asks for all of its rows. Its width is the rows' (they never
    scroll sideways); its height may shrink to :data:`MIN_DOCK_HEIGHT`.
    """

    def __init__(self, rows: QWidget, on_docked: Callable[[], None]) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(rows)  # which also makes this scroll area filter the rows' events
        self._on_docked = on_docked

    def _bar(self) -> int:
        return self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def sizeHint(self) -> QSize:
        rows = self.widget()
        if rows is None:
            return super().sizeHint()
        hint = rows.sizeHint()
        return QSize(hint.width() + self._bar(), hint.height() + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        rows = self.widget()
        if rows is None:
            return super().minimumSizeHint()
        least = rows.minimumSizeHint()
        return QSize(least.width() + self._bar(), min(least.height(), MIN_DOCK_HEIGHT))

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the rows' hints changed: so did the dock's
        return super().eventFilter(obj, event)

    def event(self, event: Any) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            self._on_docked()  # napari put the scroll area in its dock
        return super().event(event)


class DockContainer(Container):
    """A dock's rows in a scroll area: a dock taller than the window scrolls.

    Without it, a dock whose rows need more height than the window has (two docks stacked on
    one side, a status message that wraps to more lines while a job runs) makes napari's
    window grow, and the canvas is resized and redrawn in full (100-300 ms with software
    OpenGL, issue 12). napari docks a magicgui widget's ``native``: here that is the scroll
    area, and :attr:`rows` is the widget holding the rows' layout.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stretched = False
        # A weak callback: the scroll area (owned by Qt) must not keep the dock alive.
        docked = weakref.WeakMethod(self._docked)
        self._scroll = _DockScroll(self.rows, lambda: (docked() or (lambda: None))())

    @property
    def native(self) -> Any:  # type: ignore[override]
        """The scroll area: what napari puts in the dock (the rows while it is being built)."""
        scroll = self.__dict__.get("_scroll")
        return scroll if scroll is not None else self._widget._mgui_get_native_widget()

    @property
    def rows(self) -> Any:
        """The widget holding the rows' layout (add raw Qt rows to ``rows.layout()``)."""
        return self._widget._mgui_get_native_widget()

    def _docked(self) -> None:
        if not self._stretched:  # spare height goes below the rows, not between them
            self._stretched = True
            self.rows.layout().addStretch(1)
        self.native_parent_changed.emit(self._scroll.parent())


class DockLifetime:
    """Ties viewer-event connections, timers and workers to a dock's Qt lifetime.

    When the dock's native widget is destroyed (the dock or the viewer closed), every viewer
    event connection made through :meth:`connect` is undone, timers stop and running jobs are
    asked to stop, so no callback ever touches a deleted widget.
    """

    def __init__(self, native: Any) -> None:
        self.alive = True
        self._connections: list[tuple[Any, Callable[..., Any]]] = []
        self._timers: list[Any] = []
        self._runners: list[JobRunner] = []
        self._native = native
        native.destroyed.connect(self.close)

    def connect(self, emitter: Any, callback: Callable[..., Any]) -> None:
        """Connect a viewer/layer event to a dock method for as long as the dock lives."""
        emitter.connect(callback)
        self._connections.append((emitter, callback))

    def timer(self, interval_ms: int, callback: Callable[[], None]) -> Any:
        """A single-shot QTimer owned by the dock (restart it to debounce)."""
        from qtpy.QtCore import QTimer

        timer = QTimer(self._native)
        timer.setSingleShot(True)
        timer.setInterval(interval_ms)
        timer.timeout.connect(lambda: self.alive and callback())
        self._timers.append(timer)
        return timer

    def track(self, runner: JobRunner) -> JobRunner:
        """Stop this runner's job when the dock goes away."""
        self._runners.append(runner)
        return runner

    def close(self, *_: Any) -> None:
        if not self.alive:
            return
        self.alive = False
        for emitter, callback in self._connections:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                emitter.disconnect(callback)
        self._connections.clear()
        for timer in self._timers:
            with contextlib.suppress(RuntimeError):  # already deleted with the dock
                timer.stop()
        for runner in self._runners:
            runner.detach()


def status_row() -> tuple[ProgressBar, Label, PushButton, Container]:
    """Progress bar, Cancel button and status line for the bottom of a dock.

    The bar and the button show only while a job runs; the status line wraps long messages.
    """
    from qtpy.QtWidgets import QSizePolicy

    progress = ProgressBar(value=0, min=0, max=1, visible=False, label="")
    stop = PushButton(text="Cancel", visible=False)
    status = Label(value="", label="")
    status.native.setWordWrap(True)
    # No width hint (the text's) may reach the dock: a wider dock resizes napari's canvas,
    # which is then redrawn in full (100-300 ms with software OpenGL, issue 12).
    for widget, vertical in (
        (progress, QSizePolicy.Policy.Fixed),
        (stop, QSizePolicy.Policy.Fixed),
        (status, QSizePolicy.Policy.Minimum),
    ):
        widget.native.setSizePolicy(QSizePolicy(QSizePolicy.Policy.Ignored, vertical))
    row = Container(widgets=[progress, stop, status], labels=False)
    row.margins = (0, 0, 0, 0)
    return progress, status, stop, row
