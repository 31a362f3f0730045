"""Small matplotlib figures for docks (per-plane metrics, loss curves, previews), drawn off the
GUI thread, in napari's dark theme.

On a busy 2-core machine matplotlib needs 0.1-1 s to draw a small figure with a legend; on the
GUI thread that stalls the viewer at every update (issue 12). Each plot widget here owns an Agg
figure that one background thread draws, and shows the finished picture as a pixmap: the GUI
thread only hands over the data and paints an image. Requests made while a drawing runs replace
each other (the newest wins). matplotlib itself is imported in that thread, so opening a dock
never waits for it.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from napari_restore._widgets._priority import lower_thread_priority

_FG = "#d6d8dc"
_BG = "#262930"  # napari's dark theme background
_DPI = 100

_executor: ThreadPoolExecutor | None = None


def _plot_thread() -> ThreadPoolExecutor:
    """The one thread that draws every dock's figures (matplotlib draws one at a time)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="napari-restore-plots",
            initializer=lower_thread_priority,
        )
    return _executor


class ThreadedFigure(QWidget):
    """A widget showing a matplotlib figure drawn in the plot thread.

    Subclasses build their figure in :meth:`_setup` and hand drawing functions to
    :meth:`_request`; both run in the plot thread. :attr:`figure` (waiting for the drawing in
    progress) is for tests and scripts.
    """

    _rendered = Signal(object)

    def __init__(self, height: float) -> None:
        super().__init__()
        self._height_px = int(height * 80)
        self.setFixedHeight(self._height_px)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._label = QLabel(self)
        # The picture is drawn at the widget's width; a label sized by its pixmap would ask for
        # that width plus its frame, so the dock grew by 2 px at every redraw and napari
        # redrew its resized canvas each time (a 100-400 ms stall per training update).
        self._label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self._label.setMinimumSize(1, 1)
        self._label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._label.setStyleSheet(f"background: {_BG};")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._label)
        self._fig: Any = None
        self._lock = threading.Lock()
        self._pending: tuple[Callable[[Any], None], tuple[int, int, float]] | None = None
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()
        self._last: Callable[[Any], None] | None = None
        self._drawn_width = 0
        self._rendered.connect(self._show)
        # After a resize, draw again at the new width (once the resizing has settled).
        self._resize_timer = QTimer(self)
        self._resize_timer.setSingleShot(True)
        self._resize_timer.setInterval(200)
        self._resize_timer.timeout.connect(self._redraw_last)
        from napari_restore._widgets import _warmup

        _warmup.preload(("matplotlib.figure", "matplotlib.backends.backend_agg"))

    # -- GUI thread -----------------------------------------------------------------------------
    def _request(self, draw: Callable[[Any], None]) -> None:
        """Draw with ``draw(figure)`` in the plot thread, then show the picture."""
        width = self.width() if self.isVisible() else 400
        size = (max(width, 200), self._height_px, self.devicePixelRatioF())
        with self._lock:
            self._pending = (draw, size)
            self._last = draw
            if self._busy:
                return  # the running drawing picks this one up when it ends
            self._busy = True
            self._idle.clear()
        _plot_thread().submit(self._work)

    def _show(self, picture: tuple[bytes, int, int, float]) -> None:
        data, w, h, ratio = picture
        image = QImage(data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(ratio)
        self._label.setPixmap(pixmap)
        self._drawn_width = int(w / ratio)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self._last is not None and abs(self.width() - self._drawn_width) > 8:
            self._resize_timer.start()

    def _redraw_last(self) -> None:
        if self._last is not None:
            self._request(self._last)

    def wait(self, timeout: float = 30.0) -> None:
        """Block until the plot thread has drawn every request (tests, scripts)."""
        self._idle.wait(timeout)

    @property
    def figure(self) -> Any:
        """The matplotlib figure, once drawn (waits for a drawing in progress)."""
        self.wait()
        if self._fig is None:  # nothing drawn yet: set it up here (idle plot thread)
            self._fig = self._new_figure(400, self._height_px, 1.0)
        return self._fig

    # -- plot thread ----------------------------------------------------------------------------
    def _new_figure(self, width: int, height: int, ratio: float) -> Any:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(
            figsize=(width / _DPI, height / _DPI),
            dpi=_DPI * ratio,
            facecolor=_BG,
            layout="constrained",
        )
        FigureCanvasAgg(fig)
        self._setup(fig)
        return fig

    def _setup(self, fig: Any) -> None:
        """Create the axes of a new figure."""

    def _work(self) -> None:
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self._busy = False
                    self._idle.set()
                    return
            draw, (width, height, ratio) = job
            try:
                if self._fig is None:
                    self._fig = self._new_figure(width, height, ratio)
                fig = self._fig
                fig.set_dpi(_DPI * ratio)
                fig.set_size_inches(width / _DPI, height / _DPI)
                draw(fig)
                fig.canvas.draw()
                w, h = fig.canvas.get_width_height(physical=True)
                picture = (bytes(fig.canvas.buffer_rgba()), w, h, ratio)
            except Exception:  # a bad drawing must not end the plot thread
                traceback.print_exc()
                continue
            try:
                self._rendered.emit(picture)
            except RuntimeError:  # the widget is gone (dock closed)
                with self._lock:
                    self._pending, self._busy = None, False
                    self._idle.set()
                return


def _style(ax: Any, title: str) -> None:
    ax.set_facecolor(_BG)
    ax.set_title(title, color=_FG, fontsize=9)
    ax.tick_params(colors=_FG, labelsize=8)
    for spine in ax.spines.values():
        spine.set_color("#5a626c")


class LinePlot(ThreadedFigure):
    """One or more stacked axes of labelled line series.

    Parameters
    ----------
    titles : sequence of str
        One title per axes (stacked vertically, sharing x).
    xlabel : str
        Label of the shared x axis.
    height : float
        Figure height in inches (80 px each).
    """

    def __init__(self, titles: Sequence[str], xlabel: str, height: float = 2.6) -> None:
        self._titles = list(titles)
        self._xlabel = xlabel
        super().__init__(height)

    @property
    def n_axes(self) -> int:
        """How many axes the figure has (known at once, unlike :attr:`axes`)."""
        return len(self._titles)

    @property
    def axes(self) -> list[Any]:
        """The matplotlib axes, top to bottom (waits for a drawing in progress: tests and
        scripts only, never the GUI thread)."""
        return list(self.figure.axes[: len(self._titles)])

    def _setup(self, fig: Any) -> None:
        fig.subplots(len(self._titles), 1, sharex=True, squeeze=False)
        self._clear(fig)

    def _clear(self, fig: Any) -> None:
        axes = fig.axes[: len(self._titles)]
        for ax, title in zip(axes, self._titles, strict=True):
            ax.clear()
            _style(ax, title)
        axes[-1].set_xlabel(self._xlabel, color=_FG, fontsize=8)
        for legend in list(fig.legends):
            legend.remove()

    def clear(self) -> None:
        """Empty all axes (titles and styling kept)."""
        if self._fig is not None or self._busy:
            self._request(self._clear)

    def set_lines(
        self,
        series: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]],
        *,
        log_y: Sequence[bool] | None = None,
    ) -> None:
        """Replace the plotted lines: ``series[i]`` maps a label to ``(x, y)`` on axes ``i``.

        The data are copied now; the drawing happens in the plot thread.
        """
        frozen = [
            {label: (np.array(x, dtype=float), np.array(y, dtype=float)) for label, (x, y) in s}
            for s in (lines.items() for lines in series)
        ]
        log = list(log_y) if log_y is not None else None
        self._request(lambda fig: self._draw_lines(fig, frozen, log))

    def _draw_lines(
        self,
        fig: Any,
        series: list[dict[str, tuple[np.ndarray, np.ndarray]]],
        log_y: list[bool] | None,
    ) -> None:
        from matplotlib.ticker import NullFormatter

        self._clear(fig)
        axes = fig.axes[: len(self._titles)]
        # One colour per label across all axes, so the one legend below reads unambiguously.
        palette = [f"C{i % 10}" for i in range(10)]
        colours: dict[str, str] = {}
        for lines in series:
            for label in lines:
                colours.setdefault(label, palette[len(colours) % len(palette)])
        for i, (ax, lines) in enumerate(zip(axes, series, strict=True)):
            for label, (x, y) in lines.items():
                # Sparse series (validation every N steps) need markers to be seen at all.
                marker = "o" if len(y) < 25 else None
                ax.plot(
                    x,
                    np.where(np.isfinite(y), y, np.nan),
                    label=label,
                    color=colours[label],
                    lw=1.2,
                    marker=marker,
                    ms=3,
                )
            if log_y and log_y[i] and any(len(v[1]) for v in lines.values()):
                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(NullFormatter())  # minor labels crowd a small plot
        # One legend for the figure, below the axes, so it never covers a data point; the
        # same label on several axes (one layer's PSNR and SSIM) is listed once.
        handles: dict[str, Any] = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        if handles:
            legend = fig.legend(
                list(handles.values()),
                [elide_middle(label, 40) for label in handles],
                loc="outside lower center",
                ncols=1 if len(handles) > 2 or max(map(len, handles)) > 20 else len(handles),
                fontsize=7,
                facecolor=_BG,
                edgecolor="#5a626c",
            )
            for text in legend.get_texts():
                text.set_color(_FG)


class ImagePreview(ThreadedFigure):
    """Small side-by-side greyscale panels (e.g. input / output / target) with one contrast."""

    def __init__(self, titles: tuple[str, ...], height: float = 1.9) -> None:
        self.titles = titles
        super().__init__(height)

    def _setup(self, fig: Any) -> None:
        axes = fig.subplots(1, len(self.titles), squeeze=False)[0]
        self._images: dict[str, Any] = {}
        for ax, title in zip(axes, self.titles, strict=True):
            ax.set_axis_off()
            ax.set_title(title, color=_FG, fontsize=8)

    def show_images(self, images: Mapping[str, np.ndarray]) -> None:
        """Show the arrays whose keys match the titles (contrast from the first one)."""
        shown = {t: images[t] for t in self.titles if t in images}
        if shown:
            self._request(lambda fig: self._draw_images(fig, shown))

    def _draw_images(self, fig: Any, images: dict[str, np.ndarray]) -> None:
        first = np.asarray(next(iter(images.values())))
        lo, hi = np.percentile(first, [0.5, 99.5])
        hi = hi if hi > lo else lo + 1
        for ax, title in zip(fig.axes, self.titles, strict=True):
            if title not in images:
                continue
            img = np.asarray(images[title], dtype=np.float32)
            if title in self._images and self._images[title].get_array().shape == img.shape:
                self._images[title].set_data(img)
                self._images[title].set_clim(lo, hi)
            else:
                ax.clear()
                ax.set_axis_off()
                ax.set_title(title, color=_FG, fontsize=8)
                self._images[title] = ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)


def elide_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis in the middle (keeps both ends)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
