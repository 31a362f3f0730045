"""Small plots for docks (per-plane metrics, loss curves, image previews), painted with Qt.

The docks used to draw these with matplotlib in a background thread. matplotlib is Python code
that holds the GIL for most of the 0.1-1 s a small figure with a legend takes, and while it ran
the viewer's thread waited for the GIL at every step of its own work: the largest event-loop
stalls during training (220-540 ms on a 2-core machine; 37 ms with the drawing switched off,
issue 12). A few hundred points, ticks and a legend painted by ``QPainter`` take about a
millisecond on the GUI thread, in C++, and need no thread, no import and no GIL hand-over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QPointF, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

_FG = "#d6d8dc"
_BG = "#262930"  # napari's dark theme background
_FRAME = "#5a626c"
#: matplotlib's "tab10" colours: one per curve label across all axes of a plot.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: Series shorter than this get markers: sparse ones (validation every N steps) are dots.
MARKERS_BELOW = 25
#: Pixels per height unit of the plots (the docks size them in these units).
PX_PER_UNIT = 80
#: The share of its height a plot gives up when its dock is short of room.
MIN_SHARE = 0.55


def elide_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis in the middle (keeps both ends)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def nice_ticks(lo: float, hi: float, max_ticks: int) -> np.ndarray:
    """Round tick values inside ``[lo, hi]``: the finest step of 1, 2 or 5 times a power of
    ten that gives at most ``max_ticks`` of them."""
    if not hi > lo:
        return np.array([lo])
    magnitude = 10.0 ** math.floor(math.log10((hi - lo) / max(1, max_ticks)))
    for step in (m * magnitude for m in (1, 2, 5, 10, 20, 50)):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first + 1 <= max(1, max_ticks):
            break
    ticks = np.arange(first, last + 1) * step
    return np.where(np.abs(ticks) < step * 1e-9, 0.0, ticks)


def log_ticks(lo: float, hi: float, max_ticks: int) -> np.ndarray:
    """Ticks for a log axis over ``[lo, hi]`` (both > 0): decades, then 2 and 5 between them
    when fewer than two decades fit, then round linear ticks for a very short range."""
    e_lo, e_hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1.0,), (1.0, 2.0, 5.0)):
        ticks = np.array(
            [m * 10.0**e for e in range(e_lo, e_hi + 1) for m in mantissas], dtype=float
        )
        ticks = ticks[(ticks >= lo * (1 - 1e-9)) & (ticks <= hi * (1 + 1e-9))]
        if len(ticks) >= 2:
            while len(ticks) > max_ticks:
                ticks = ticks[::2]
            return ticks
    return nice_ticks(lo, hi, max_ticks)


def tick_text(value: float, step: float) -> str:
    """A tick label with as many decimals as the tick step needs: "0.25", "30", "1e-05"."""
    if value == 0:
        return "0"
    if 1e-4 <= abs(value) < 1e6:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
        return f"{value:.{min(decimals, 6)}f}"
    return f"{value:.2g}"


def _range(values: list[np.ndarray], log: bool) -> tuple[float, float] | None:
    """(lo, hi) of the finite values (positive ones on a log axis), padded by 5 %."""
    finite = [v[np.isfinite(v) & (v > 0 if log else True)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return None
    lo, hi = min(float(v.min()) for v in finite), max(float(v.max()) for v in finite)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi <= lo:
        half = abs(lo) * 0.1 if lo else (0.5 if log else 1.0)
        lo, hi = lo - half, hi + half
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    return (10.0**lo, 10.0**hi) if log else (lo, hi)


def _y_pixels(y: np.ndarray, rect: QRectF, lim: tuple[float, float], log: bool) -> np.ndarray:
    """Widget rows of the values ``y`` on an axes spanning ``lim`` (NaN where not drawable)."""
    lo, hi = (math.log10(lim[0]), math.log10(lim[1])) if log else lim
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.log10(np.where(y > 0, y, np.nan)) if log else y
    return rect.bottom() - (v - lo) / (hi - lo) * rect.height()


class _Panel(QWidget):
    """A fixed-height plot widget that never asks for more width than the dock gives it
    (a child that asks for width resizes the dock, and so napari's canvas)."""

    def __init__(self, height: float) -> None:
        super().__init__()
        self._height_px = int(height * PX_PER_UNIT)
        # Up to its height, and down to MIN_SHARE of it when the dock runs out of room: a dock
        # taller than the window makes napari's window grow, resizing and redrawing the canvas
        # (a long status message while training did that).
        self._min_height_px = int(self._height_px * MIN_SHARE)
        self.setMinimumHeight(self._min_height_px)
        self.setMaximumHeight(self._height_px)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def sizeHint(self) -> QSize:
        return QSize(200, self._height_px)

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self._min_height_px)

    def _font(self, points: float) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(points)
        return font

    def render_image(self, width: int = 400) -> QImage:
        """The plot as painted at ``width`` x its height (tests, scripts, screenshots)."""
        if (self.width(), self.height()) != (width, self._height_px):
            self.resize(width, self._height_px)
        image = QImage(self.width(), self.height(), QImage.Format.Format_RGB32)
        self.render(image)
        return image


class LinePlot(_Panel):
    """One or more stacked axes of labelled line series with one legend below them.

    Parameters
    ----------
    titles : sequence of str
        One title per axes (stacked vertically, sharing x).
    xlabel : str
        Label of the shared x axis.
    height : float
        Height in units of 80 px.
    """

    def __init__(self, titles: Sequence[str], xlabel: str, height: float = 2.6) -> None:
        super().__init__(height)
        self.titles = list(titles)
        self.xlabel = xlabel
        self.series: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in self.titles]
        self.log_y: list[bool] = [False] * len(self.titles)

    @property
    def n_axes(self) -> int:
        """How many axes the plot has."""
        return len(self.titles)

    def clear(self) -> None:
        """Empty all axes (titles kept)."""
        self.series = [{} for _ in self.titles]
        self.update()

    def set_lines(
        self,
        series: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]],
        log_y: Sequence[bool] | None = None,
    ) -> None:
        """Show ``series[i]`` (label -> (x, y)) on axes ``i``; ``log_y[i]`` for a log y axis.

        Non-finite values leave gaps in their line.
        """
        self.series = [
            {
                label: (np.asarray(x, dtype=float), np.asarray(y, dtype=float))
                for label, (x, y) in lines.items()
            }
            for lines in list(series)[: self.n_axes]
        ]
        self.series += [{} for _ in range(self.n_axes - len(self.series))]
        flags = list(log_y) if log_y is not None else []
        self.log_y = [bool(flags[i]) if i < len(flags) else False for i in range(self.n_axes)]
        self.update()

    def colours(self) -> dict[str, str]:
        """Label -> colour: one colour per label across all axes, in order of appearance."""
        colours: dict[str, str] = {}
        for lines in self.series:
            for label in lines:
                colours.setdefault(label, PALETTE[len(colours) % len(PALETTE)])
        return colours

    def legend_labels(self) -> list[str]:
        """The legend's entries as shown (long names elided in the middle)."""
        return [elide_middle(label, 40) for label in self.colours()]

    # -- layout -------------------------------------------------------------------------------
    def _legend_columns(self) -> int:
        labels = list(self.colours())
        if not labels:
            return 0
        return 1 if len(labels) > 2 or max(map(len, labels)) > 20 else len(labels)

    def layout_rects(self) -> tuple[list[QRectF], QRectF]:
        """The axes' plot areas (top to bottom) and the legend's box, in widget pixels."""
        width, height = float(self.width()), float(self.height())
        tick = legend = QFontMetricsF(self._font(7.5))
        title = QFontMetricsF(self._font(8.5))
        n_labels, columns = len(self.colours()), self._legend_columns()
        rows = math.ceil(n_labels / columns) if columns else 0
        legend_h = rows * (legend.height() + 2) + 6 if rows else 0.0
        bottom = tick.height() + 3 + tick.height() + 2  # x tick labels and the x label
        gap = 4.0
        free = height - 4 - legend_h - bottom - self.n_axes * (title.height() + 2)
        axes_h = max(10.0, (free - gap * (self.n_axes - 1)) / max(1, self.n_axes))
        left = 6 + max(
            (
                tick.horizontalAdvance(text)
                for i in range(self.n_axes)
                for _, text in self._y_ticks(i, axes_h)
            ),
            default=tick.horizontalAdvance("0"),
        )
        rects, y = [], 4.0
        for _ in range(self.n_axes):
            y += title.height() + 2
            rects.append(QRectF(left + 4, y, max(10.0, width - left - 14), axes_h))
            y += axes_h + gap
        legend_box = QRectF(0, height - legend_h, width, legend_h)
        return rects, legend_box

    def _x_range(self) -> tuple[float, float]:
        # x spans its data exactly (the padding of _range is for y), but never zero width.
        xs = [x[np.isfinite(x)] for lines in self.series for x, _ in lines.values()]
        finite = np.concatenate(xs) if xs else np.empty(0)
        if not finite.size:
            return 0.0, 1.0
        lo, hi = float(finite.min()), float(finite.max())
        return (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)

    def _y_range(self, i: int) -> tuple[float, float]:
        found = _range([y for _, y in self.series[i].values()], self.log_y[i])
        return found if found is not None else ((1.0, 10.0) if self.log_y[i] else (0.0, 1.0))

    def _y_ticks(self, i: int, axes_h: float) -> list[tuple[float, str]]:
        lo, hi = self._y_range(i)
        most = max(2, int(axes_h // 16))
        ticks = log_ticks(lo, hi, most) if self.log_y[i] else nice_ticks(lo, hi, most)
        step = float(np.min(np.diff(ticks))) if len(ticks) > 1 else abs(float(ticks[0])) or 1.0
        return [(float(t), tick_text(float(t), t if self.log_y[i] else step)) for t in ticks]

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.fillRect(self.rect(), QColor(_BG))
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, painter: QPainter) -> None:
        rects, legend_box = self.layout_rects()
        colours = self.colours()
        x_lo, x_hi = self._x_range()
        tick_font, title_font = self._font(7.5), self._font(8.5)
        tick = QFontMetricsF(tick_font)
        frame, text = QPen(QColor(_FRAME)), QPen(QColor(_FG))

        def px(x: np.ndarray, rect: QRectF) -> np.ndarray:
            return rect.left() + (x - x_lo) / (x_hi - x_lo) * rect.width()

        for i, rect in enumerate(rects):
            painter.setFont(title_font)
            painter.setPen(text)
            title_h = QFontMetricsF(title_font).height()
            painter.drawText(
                QRectF(rect.left(), rect.top() - title_h - 2, rect.width(), title_h),
                int(Qt.AlignmentFlag.AlignCenter),
                self.titles[i],
            )
            y_range, log = self._y_range(i), self.log_y[i]

            def py(y: np.ndarray, rect: QRectF = rect, lim: Any = y_range, log: bool = log):
                return _y_pixels(y, rect, lim, log)

            painter.setFont(tick_font)
            for value, label in self._y_ticks(i, rect.height()):
                y = float(py(np.array([value]))[0])
                painter.setPen(frame)
                painter.drawLine(QPointF(rect.left() - 3, y), QPointF(rect.left(), y))
                painter.setPen(text)
                painter.drawText(
                    QRectF(0, y - tick.height() / 2, rect.left() - 5, tick.height()),
                    int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                    label,
                )
            painter.setPen(frame)
            painter.drawRect(rect)
            painter.save()
            painter.setClipRect(rect.adjusted(-3, -3, 3, 3))
            for label, (x, y) in self.series[i].items():
                colour = QColor(colours[label])
                pen = QPen(colour, 1.4)
                painter.setPen(pen)
                xs, ys = px(x, rect), py(y)
                ok = np.isfinite(xs) & np.isfinite(ys)
                path = QPainterPath()
                drawing = False
                for j in range(len(xs)):
                    if not ok[j]:
                        drawing = False
                        continue
                    point = QPointF(float(xs[j]), float(ys[j]))
                    if drawing:
                        path.lineTo(point)
                    else:
                        path.moveTo(point)
                        drawing = True
                painter.drawPath(path)
                if len(y) < MARKERS_BELOW:
                    painter.setBrush(colour)
                    for j in np.flatnonzero(ok):
                        painter.drawEllipse(QPointF(float(xs[j]), float(ys[j])), 2.2, 2.2)
                    painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.restore()

        # The shared x axis, under the last axes.
        last = rects[-1]
        most = max(2, int(last.width() // 60))
        ticks = nice_ticks(x_lo, x_hi, most)
        step = float(np.min(np.diff(ticks))) if len(ticks) > 1 else 1.0
        painter.setFont(tick_font)
        for value in ticks:
            x = float(px(np.array([value]), last)[0])
            painter.setPen(frame)
            painter.drawLine(QPointF(x, last.bottom()), QPointF(x, last.bottom() + 3))
            painter.setPen(text)
            painter.drawText(
                QRectF(x - 40, last.bottom() + 3, 80, tick.height()),
                int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop),
                tick_text(float(value), step),
            )
        painter.drawText(
            QRectF(last.left(), last.bottom() + 3 + tick.height(), last.width(), tick.height()),
            int(Qt.AlignmentFlag.AlignCenter),
            self.xlabel,
        )
        self._paint_legend(painter, legend_box, colours)

    def _paint_legend(self, painter: QPainter, box: QRectF, colours: dict[str, str]) -> None:
        columns = self._legend_columns()
        if not columns or box.height() <= 0:
            return
        font = self._font(7.5)
        metrics = QFontMetricsF(font)
        painter.setFont(font)
        labels = self.legend_labels()
        row_h = metrics.height() + 2
        width = max(metrics.horizontalAdvance(label) for label in labels) + 26
        left = box.center().x() - columns * width / 2
        frame = QRectF(left - 4, box.top() + 1, columns * width + 8, box.height() - 2)
        painter.setPen(QPen(QColor(_FRAME)))
        painter.drawRect(frame)
        for k, (label, colour) in enumerate(zip(labels, colours.values(), strict=True)):
            x = left + (k % columns) * width
            y = box.top() + 3 + (k // columns) * row_h
            painter.setPen(QPen(QColor(colour), 2.0))
            painter.drawLine(QPointF(x + 2, y + row_h / 2), QPointF(x + 18, y + row_h / 2))
            painter.setPen(QPen(QColor(_FG)))
            painter.drawText(
                QRectF(x + 22, y, width - 22, row_h),
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                label,
            )


class ImagePreview(_Panel):
    """Small side-by-side greyscale panels (e.g. input / output / target) with one contrast.

    Parameters
    ----------
    titles : tuple of str
        One title per panel, left to right.
    height : float
        Height in units of 80 px.
    """

    def __init__(self, titles: tuple[str, ...], height: float = 1.9) -> None:
        super().__init__(height)
        self.titles = titles
        #: The 8-bit pictures shown, by title (tests and scripts read them).
        self.pictures: dict[str, np.ndarray] = {}
        self._images: dict[str, QImage] = {}

    def show_images(self, images: Mapping[str, np.ndarray]) -> None:
        """Show the 2D arrays whose keys match the titles (contrast from the first one)."""
        shown = {t: np.asarray(images[t], dtype=np.float32) for t in self.titles if t in images}
        if not shown:
            return
        first = next(iter(shown.values()))
        stride = max(1, int(math.sqrt(first.size / 65536)))  # a preview: a sample is enough
        sample = first[::stride, ::stride]
        sample = sample[np.isfinite(sample)]
        lo, hi = np.percentile(sample, [0.5, 99.5]) if sample.size else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1
        for title, image in shown.items():
            scaled = np.clip((np.nan_to_num(image, nan=lo) - lo) / (hi - lo), 0, 1)
            pixels = np.ascontiguousarray((scaled * 255 + 0.5).astype(np.uint8))
            self.pictures[title] = pixels
            h, w = pixels.shape
            self._images[title] = QImage(
                pixels.data, w, h, w, QImage.Format.Format_Grayscale8
            ).copy()
        self.update()

    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.fillRect(self.rect(), QColor(_BG))
            font = self._font(8.0)
            painter.setFont(font)
            title_h = QFontMetricsF(font).height() + 2
            slot = self.width() / max(1, len(self.titles))
            for k, title in enumerate(self.titles):
                painter.setPen(QPen(QColor(_FG)))
                painter.drawText(
                    QRectF(k * slot, 1, slot, title_h),
                    int(Qt.AlignmentFlag.AlignCenter),
                    title,
                )
                image = self._images.get(title)
                if image is None:
                    continue
                room = QRectF(k * slot + 3, title_h + 2, slot - 6, self.height() - title_h - 4)
                scale = min(room.width() / image.width(), room.height() / image.height())
                w, h = image.width() * scale, image.height() * scale
                target = QRectF(room.center().x() - w / 2, room.top(), w, h)
                painter.drawImage(target, image)
        finally:
            painter.end()
