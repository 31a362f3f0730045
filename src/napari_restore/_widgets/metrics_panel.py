"""Metrics panel: MAE / PSNR / SSIM of image layers against a ground-truth layer.

Without a ground truth (the ground-truth box left empty) and with two or more layers of the same
shape picked, the panel runs the no-reference stripe meter instead
(:mod:`napari_restore.stripe_meter`): every picked layer is compared with the striped *input*
(the layer the others were made from, else the first in the layer list), giving the share of
stripe energy removed, the structure changed and the intensity change, with a verdict line.

Results follow the layer list: a renamed layer keeps its row under the new name, a removed layer
loses its row, and new or edited data is re-measured automatically (debounced, in a worker).
Stacks get per-plane values in a plot; everything exports to CSV.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    Select,
    Table,
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
from napari_restore._widgets._plot import LinePlot
from napari_restore.core.progress import Progress, each_or_error
from napari_restore.errors import RestoreInputError

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from napari_restore.metrics import Metrics
    from napari_restore.stripe_meter import StripeMeasure

COLUMNS = ["layer", "MAE", "PSNR dB", "SSIM", "range"]
NOREF_COLUMNS = ["layer", "stripes −%", "structure %", "median %", "mean %", "dir."]
#: Width of the layer-name column the table's width is reserved for (names up to 170 px are
#: shown whole, longer ones lose their middle).
NAME_WIDTH = 150
DOMAIN_TIP = (
    "No-reference stripe meter: compare the spectra of the intensities (additive stripes) or "
    "of their logarithm (attenuation stripes, e.g. light-sheet shadows, which multiply the "
    "image; there an exact removal reads as stripes removed, not as structure changed)."
)
NO_GT_TIP = (
    "Leave empty (-----) to compare layers without a ground truth: pick the striped input and "
    "its restored versions below (same shape) for the no-reference stripe meter."
)


def stripe_comparison_progress(
    source: Any, others: list[Any], domain: str = "linear"
) -> Generator[Progress, None, list[StripeMeasure | RestoreInputError]]:
    """Stripe meter of each of ``others`` against ``source``; a bad layer does not stop the rest.

    Yields a :class:`Progress` per plane measured; returns per layer its result or the error.
    ``domain``: the meter's domain (``"linear"`` or ``"log"``, see
    :func:`napari_restore.stripe_meter.measure_stripes`).
    """
    from napari_restore.stripe_meter import measure_stripes_steps

    per = int(np.prod(source.shape[:-2])) if len(source.shape) > 2 else 1
    parts = [measure_stripes_steps(source, data, domain=domain) for data in others]
    return (yield from each_or_error(parts, units=per, step_of=lambda report: report[0]))


def _pct(v: float, digits: int = 1) -> str:
    return "—" if math.isnan(v) else f"{round(100 * v, digits) + 0.0:.{digits}f}"  # no "-0.0"


class MetricsPanel(DockContainer):
    """Dock comparing image layers with a ground-truth layer."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        self._viewer = napari_viewer
        #: (layer, Metrics or StripeMeasure or error) of the last computation, in order.
        self.results: list[tuple[Image, Metrics | StripeMeasure | RestoreInputError]] = []
        self._results_gt: Image | None = None
        #: The striped input of the last no-reference comparison (None in ground-truth mode).
        self._results_input: Image | None = None
        self._dirty = False
        self._watched: set[int] = set()

        self.ground_truth = ComboBox(
            label="ground truth",
            choices=image_layer_choices(napari_viewer),
            nullable=True,
            tooltip=NO_GT_TIP,
        )
        if len(self.ground_truth.choices) > 1:
            self.ground_truth.value = self.ground_truth.choices[1]  # as before: the first layer
        self.images = Select(
            label="compare",
            choices=image_layer_choices(napari_viewer, exclude=self._is_gt),
        )
        self.images.native.setMaximumHeight(110)
        self.auto_range = CheckBox(label="range from ground truth", value=True)
        self.data_range = FloatSpinBox(
            label="data range", value=1.0, min=1e-12, max=1e12, step=1, enabled=False
        )
        self.domain = ComboBox(
            label="stripe spectra",
            choices=[
                ("of intensities (additive stripes)", "linear"),
                ("of log intensities (shadows)", "log"),
            ],
            value="linear",
            tooltip=DOMAIN_TIP,
        )
        self.domain.enabled = self.ground_truth.value is None
        self.compute_button = PushButton(text="Compute")
        self.table = Table(value={"data": [], "index": [], "columns": COLUMNS})
        self.table.read_only = True
        # magicgui's delegate re-renders numbers with four decimals ("13.2400"); the cells
        # already hold the text to show.
        from qtpy.QtWidgets import QStyledItemDelegate

        self.table.native.setItemDelegate(QStyledItemDelegate(self.table.native))
        self.table.native.setMinimumHeight(120)
        self._reserve_table_width()
        self.table.native.verticalHeader().setVisible(False)
        # The plain-language verdicts of the no-reference stripe meter, one line per layer.
        self.verdict = Label(value="", label="")
        self.verdict.native.setWordWrap(True)
        self.verdict.visible = False
        self.csv_path = FileEdit(label="CSV file", mode="w", filter="*.csv")
        self.export_button = PushButton(text="Export CSV")
        self.progress, self.status, self.cancel_button, status = status_row()
        self.runner = JobRunner(self.progress, self.status, self.cancel_button)
        super().__init__(
            widgets=[
                self.ground_truth,
                self.images,
                self.auto_range,
                self.data_range,
                self.domain,
                self.compute_button,
                self.table,
                self.verdict,
                self.csv_path,
                self.export_button,
                status,
            ]
        )
        self.plot = LinePlot(["PSNR per plane (dB)", "SSIM per plane"], "plane")
        self.plot.setVisible(False)
        self.rows.layout().addWidget(self.plot)
        self.noref_plot = LinePlot(
            ["stripe energy removed per plane (%)", "structure changed per plane (%)"], "plane"
        )
        self.noref_plot.setVisible(False)
        self.rows.layout().addWidget(self.noref_plot)

        # scipy and scikit-image load in the background while the user picks layers.
        _warmup.preload(_warmup.PLOT_MODULES)
        self._life = DockLifetime(self.native)
        follow_active_layer(napari_viewer, self.images, self._life)
        self._life.track(self.runner)
        self._timer = self._life.timer(250, self.compute)

        self.ground_truth.changed.connect(self._selection_changed)
        self.images.changed.connect(self._schedule)
        self.auto_range.changed.connect(self._range_mode_changed)
        self.data_range.changed.connect(self._schedule)
        self.domain.changed.connect(self._schedule)
        self.compute_button.changed.connect(self.compute)
        self.export_button.changed.connect(self._export_clicked)
        layers = napari_viewer.layers.events
        self._life.connect(layers.removed, self._layer_removed)
        self._life.connect(layers.inserted, self._watch_layers)
        # napari resets a docked widget's choices on these events; do it here too so the panel
        # also stays right when it is used outside a dock.
        for event in (layers.inserted, layers.removed, layers.reordered, layers.renamed):
            self._life.connect(event, self.reset_choices)
        self._life.connect(layers.renamed, self._render)
        self._watch_layers()

    # -- layer bookkeeping --------------------------------------------------------------------
    def _is_gt(self, layer: Any) -> bool:
        return layer is self.ground_truth.value

    def _watch_layers(self, *_: Any) -> None:
        """Re-measure when the data of a compared layer (or the ground truth) changes."""
        for layer in self._viewer.layers:
            if id(layer) not in self._watched and hasattr(layer.events, "data"):
                self._watched.add(id(layer))
                self._life.connect(layer.events.data, partial(self._data_changed, layer))

    def _data_changed(self, layer: Any, *_: Any) -> None:
        if (
            layer is self._results_gt
            or layer is self._results_input
            or any(layer is lyr for lyr, _ in self.results)
        ):
            self._schedule()

    def _layer_removed(self, event: Any) -> None:
        removed = event.value
        self._watched.discard(id(removed))
        if removed is self._results_gt:
            self.results, self._results_gt = [], None
            self.status.value = "The ground-truth layer was removed; pick another one."
        elif removed is self._results_input:
            self.results, self._results_input = [], None
            self.status.value = "The striped input layer was removed; pick the layers again."
        else:
            self.results = [(lyr, r) for lyr, r in self.results if lyr is not removed]
        self._render()

    def _selection_changed(self, *_: Any) -> None:
        self.domain.enabled = self.ground_truth.value is None  # the stripe meter's setting
        self.images.reset_choices()
        self._schedule()

    def _range_mode_changed(self, auto: bool) -> None:
        self.data_range.enabled = not auto
        self._schedule()

    def _schedule(self, *_: Any) -> None:
        picked = self.images.value
        if picked and (self.ground_truth.value is not None or len(picked) >= 2):
            self._timer.start()

    # -- computing ----------------------------------------------------------------------------
    def compute(self, *_: Any) -> None:
        """Measure the selected layers against the ground truth in a worker."""
        self._timer.stop()  # a pending automatic update is this computation
        if self.runner.running:
            self._dirty = True  # recompute once the running job ends
            return
        gt = self.ground_truth.value
        layers = [lyr for lyr in self.images.value if lyr is not gt]
        if gt is None and len(layers) >= 2:
            self.compute_no_reference(layers)
            return
        if gt is None or not layers:
            self.status.value = (
                "Pick a ground-truth layer and at least one layer to compare, or no ground truth "
                "and two layers of the same shape (a striped input and its restored version)."
            )
            return
        try:
            gt_data = layer_data(gt, what="The metrics panel")
        except RestoreInputError as err:
            self.status.value = error_text(err)
            return
        # RGB and multiscale layers get a row with the reason instead of numbers.
        refused: list[RestoreInputError | None] = []
        arrays: list[Any] = []
        for layer in layers:
            try:
                arrays.append(layer_data(layer, what="The metrics panel"))
                refused.append(None)
            except RestoreInputError as err:
                refused.append(err)
        data_range = None if self.auto_range.value else float(self.data_range.value)

        def gen() -> Generator[Progress, None, list[Metrics | RestoreInputError]]:
            # Imported in the worker (scipy and scikit-image take a while the first time).
            from napari_restore.metrics import compare_progress

            return (yield from compare_progress(arrays, gt_data, data_range=data_range))

        def done(results: list[Metrics | RestoreInputError]) -> None:
            computed = iter(results)
            self.results = [
                (layer, err if err is not None else next(computed))
                for layer, err in zip(layers, refused, strict=True)
            ]
            self._results_gt, self._results_input = gt, None
            self._render()

        self.runner.start(gen(), on_done=done, on_finish=self._after_job, label="measuring")

    @staticmethod
    def striped_input(layers: list[Image]) -> Image:
        """Which picked layer is the striped input: the one the others were made from (their
        ``napari_restore_source`` metadata, set by the docks), else the first in the layer list.
        """
        names = {lyr.metadata.get("napari_restore_source") for lyr in layers}
        for layer in layers:
            if layer.name in names:
                return layer
        return layers[0]

    def compute_no_reference(self, layers: list[Image]) -> None:
        """Stripe meter of every picked layer against the striped input, in a worker."""
        ordered = [lyr for lyr in self._viewer.layers if any(lyr is x for x in layers)]
        source = self.striped_input(ordered)
        others = [lyr for lyr in ordered if lyr is not source]
        try:
            source_data = layer_data(source, what="The stripe meter")
        except RestoreInputError as err:
            self.status.value = error_text(err)
            return
        refused: list[RestoreInputError | None] = []
        arrays: list[Any] = []
        for layer in others:
            try:
                arrays.append(layer_data(layer, what="The stripe meter"))
                refused.append(None)
            except RestoreInputError as err:
                refused.append(err)
        gen = stripe_comparison_progress(source_data, arrays, self.domain.value)

        def done(results: list[StripeMeasure | RestoreInputError]) -> None:
            computed = iter(results)
            self.results = [
                (layer, err if err is not None else next(computed))
                for layer, err in zip(others, refused, strict=True)
            ]
            self._results_gt, self._results_input = None, source
            self._render()

        self.runner.start(gen, on_done=done, on_finish=self._after_job, label="stripe meter")

    def _after_job(self) -> None:
        if self._dirty and self._life.alive:
            self._dirty = False
            self._schedule()

    # -- display ------------------------------------------------------------------------------
    def _render(self, *_: Any) -> None:
        """Fill the table and plot from the results, with the layers' current names."""
        noref = self._results_input is not None
        self.verdict.visible = noref
        self.noref_plot.setVisible(False)
        if noref:
            self._render_no_reference()
            return
        rows = []
        errors: list[str] = []
        psnr_lines: dict[str, Any] = {}
        ssim_lines: dict[str, Any] = {}
        for layer, r in self.results:
            if not isinstance(r, RestoreInputError):
                source = "GT" if r.data_range_source == "ground truth" else "user"
                rows.append(
                    [
                        layer.name,
                        f"{r.mae:.4g}",
                        f"{r.psnr:.2f}",
                        f"{r.ssim:.4f}",
                        f"{r.data_range:g} ({source})",
                    ]
                )
                if r.per_slice:
                    x = list(range(len(r.per_slice["psnr"])))
                    psnr_lines[layer.name] = (x, r.per_slice["psnr"])
                    ssim_lines[layer.name] = (x, r.per_slice["ssim"])
            else:
                rows.append([layer.name, "—", "—", "—", "—"])
                errors.append(f"'{layer.name}' not compared: {r}")
        # magicgui reads a dict with data/index/columns as one table ("split" orientation).
        self.table.value = {"data": rows, "index": list(range(len(rows))), "columns": COLUMNS}
        self._fit_columns()
        self.plot.setVisible(bool(psnr_lines))
        self.plot.set_lines([psnr_lines, ssim_lines])
        gt = self._results_gt
        if errors:
            self.status.value = "\n".join(errors)
        elif gt is not None and self.results:
            self.status.value = f"ground truth: {gt.name}"

    def _render_no_reference(self) -> None:
        rows, errors, verdicts = [], [], []
        removed: dict[str, Any] = {}
        changed: dict[str, Any] = {}
        for layer, r in self.results:
            if not isinstance(r, RestoreInputError):
                angle = "" if math.isnan(r.angle) else f" {r.angle:+.1f}°"
                short = {"horizontal": "horiz.", "vertical": "vert."}[r.direction]
                rows.append(
                    [
                        layer.name,
                        _pct(r.stripe_removed),
                        _pct(r.structure_changed, 2),
                        _pct(r.median_change, 2),
                        _pct(r.mean_change, 2),
                        f"{short}{angle}",
                    ]
                )
                verdicts.append(f"{layer.name}: {r.verdict}")
                if r.per_plane:
                    x = list(range(len(r.per_plane["stripe_removed"])))
                    removed[layer.name] = (x, 100 * r.per_plane["stripe_removed"])
                    changed[layer.name] = (x, 100 * r.per_plane["structure_changed"])
            else:
                rows.append([layer.name, "—", "—", "—", "—", "—"])
                errors.append(f"'{layer.name}' not compared: {r}")
        self.table.value = {
            "data": rows,
            "index": list(range(len(rows))),
            "columns": NOREF_COLUMNS,
        }
        self._fit_columns()
        self.verdict.value = "\n".join(verdicts)
        self.plot.setVisible(False)
        self.noref_plot.setVisible(bool(removed))
        self.noref_plot.set_lines([removed, changed])
        source = self._results_input
        if errors:
            self.status.value = "\n".join(errors)
        elif source is not None and self.results:
            self.status.value = f"no ground truth: compared with the striped input '{source.name}'"

    def _reserve_table_width(self) -> None:
        """Fix the table's width once, for the wider of its two layouts with typical values
        and a layer name of :data:`NAME_WIDTH`: results that arrive never widen the dock (napari's
        canvas would be resized and redrawn in full, a 100-300 ms stall with software OpenGL);
        a wider value scrolls inside the table."""
        table = self.table.native
        fm = table.horizontalHeader().fontMetrics()
        typical = {
            "MAE": "13.24",
            "PSNR dB": "23.37",
            "SSIM": "0.8174",
            "range": "65535 (GT)",
            "stripes −%": "100.0",
            "structure %": "0.18",
            "median %": "-0.00",
            "mean %": "-0.22",
            "dir.": "horiz. +0.5°",
        }

        def width(columns: list[str]) -> int:
            return sum(
                max(fm.horizontalAdvance(c), fm.horizontalAdvance(typical[c])) + 18
                for c in columns[1:]
            )

        frame = 2 * table.frameWidth() + table.verticalScrollBar().sizeHint().width()
        most = max(width(COLUMNS), width(NOREF_COLUMNS)) + NAME_WIDTH + frame
        table.setMinimumWidth(min(most, 600))

    def _fit_columns(self) -> None:
        """Numbers and headers sized to their contents (never squeezed), the layer name to its
        own (at most 170 px, elided in the middle beyond)."""
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QHeaderView

        table = self.table.native
        header = table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        # Long layer names lose their middle, not the end that tells them apart; the full
        # name is the cell's tooltip.
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        for row in range(table.rowCount()):
            item = table.item(row, 0)
            if item is not None:
                item.setToolTip(item.text())
        name = min(max(table.sizeHintForColumn(0), header.sectionSizeHint(0)) + 8, 170)
        header.resizeSection(0, name)

    def csv_rows(self) -> list[dict[str, Any]]:
        """Rows for CSV export (whole image and per plane), with current layer names."""
        from napari_restore.metrics import metrics_rows
        from napari_restore.stripe_meter import stripe_rows

        if self._results_input is not None:
            source = self._results_input.name
            return [
                row
                for layer, r in self.results
                if not isinstance(r, RestoreInputError)
                for row in stripe_rows(source, layer.name, r)
            ]
        gt_name = self._results_gt.name if self._results_gt is not None else ""
        rows: list[dict[str, Any]] = []
        for layer, r in self.results:
            if not isinstance(r, RestoreInputError):
                rows += metrics_rows(layer.name, gt_name, r)
        return rows

    def export_csv(self, path: Any, *, overwrite: bool = False) -> None:
        """Write the current results to ``path`` (CSV, written atomically); an existing file
        is replaced only with ``overwrite=True``."""
        from napari_restore.metrics import write_metrics_csv
        from napari_restore.stripe_meter import write_stripe_csv

        rows = self.csv_rows()
        if not rows:
            raise RestoreInputError("There are no results to export yet; click Compute first.")
        if self._results_input is not None:
            write_stripe_csv(path, rows, overwrite=overwrite)
        else:
            write_metrics_csv(path, rows, overwrite=overwrite)
        self.status.value = f"wrote {path}"

    def _confirm_replace(self, path: Path) -> bool:
        """Ask before replacing an existing file (a typed name skips the save dialog's own
        question)."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.native,
            "Replace file?",
            f"{path} exists. Replace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _export_clicked(self, *_: Any) -> None:
        path = self.csv_path.value
        if path is None or str(path) in ("", "."):
            self.status.value = "Choose a CSV file name first."
            return
        path = Path(path)
        overwrite = path.exists() and not path.is_dir()
        if overwrite and not self._confirm_replace(path):
            self.status.value = f"Not exported: {path} was kept."
            return
        try:
            self.export_csv(path, overwrite=overwrite)
        except (RestoreInputError, OSError) as err:
            self.status.value = f"Error: {error_text(err)}"
