"""A small matplotlib canvas for docks: per-slice metrics, loss curves (napari's dark theme)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

_FG = "#d6d8dc"
_BG = "#262930"  # napari's dark theme background


class LinePlot(FigureCanvasQTAgg):
    """One or more stacked axes of labelled line series.

    Parameters
    ----------
    titles : sequence of str
        One title per axes (stacked vertically, sharing x).
    xlabel : str
        Label of the shared x axis.
    height : float
        Figure height in inches.
    """

    def __init__(self, titles: Sequence[str], xlabel: str, height: float = 2.6) -> None:
        fig = Figure(figsize=(4, height), facecolor=_BG, layout="constrained")
        super().__init__(fig)
        self.axes = fig.subplots(len(titles), 1, sharex=True, squeeze=False)[:, 0]
        self._titles = list(titles)
        self._xlabel = xlabel
        self.setMinimumHeight(int(height * 70))
        self.clear()

    def clear(self) -> None:
        """Empty all axes (titles and styling kept)."""
        for ax, title in zip(self.axes, self._titles, strict=True):
            ax.clear()
            ax.set_facecolor(_BG)
            ax.set_title(title, color=_FG, fontsize=9)
            ax.tick_params(colors=_FG, labelsize=8)
            for spine in ax.spines.values():
                spine.set_color("#5a626c")
        self.axes[-1].set_xlabel(self._xlabel, color=_FG, fontsize=8)
        for legend in list(self.figure.legends):
            legend.remove()
        self.draw_idle()

    def set_lines(
        self,
        series: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]],
        *,
        log_y: Sequence[bool] | None = None,
    ) -> None:
        """Replace the plotted lines: ``series[i]`` maps a label to ``(x, y)`` on axes ``i``."""
        self.clear()
        # One colour per label across all axes, so the one legend below reads unambiguously.
        palette = [f"C{i % 10}" for i in range(10)]
        colours: dict[str, str] = {}
        for lines in series:
            for label in lines:
                colours.setdefault(label, palette[len(colours) % len(palette)])
        for i, (ax, lines) in enumerate(zip(self.axes, series, strict=True)):
            for label, (x, y) in lines.items():
                y = np.asarray(y, dtype=float)
                # Sparse series (validation every N steps) need markers to be seen at all.
                marker = "o" if len(y) < 25 else None
                ax.plot(
                    np.asarray(x),
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
        for ax in self.axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        if handles:
            legend = self.figure.legend(
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
        self.draw_idle()


def elide_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis in the middle (keeps both ends)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
