"""Metrics panel, driven like a user in a real napari viewer."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from qtpy.QtCore import QLocale, Qt

from napari_restore._widgets._plot import elide_middle
from napari_restore.metrics import compute_metrics

PLUGIN = "napari-restore"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def open_panel(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Metrics")
    return widget


def table_rows(widget):
    return widget.table.value["data"]


def compute(qtbot, widget):
    widget.compute_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)


def test_pair_sample_table_plot_and_csv(viewer, qtbot, tmp_path):
    gt, striped = viewer.open_sample(PLUGIN, "stripe_pair")
    widget = open_panel(viewer)
    widget.ground_truth.value = gt
    widget.images.value = [striped]
    compute(qtbot, widget)

    expected = compute_metrics(striped.data, gt.data)
    [row] = table_rows(widget)
    assert row[0] == striped.name
    assert float(row[1]) == pytest.approx(expected.mae, rel=1e-3)  # shown with 4 digits
    assert float(row[2]) == pytest.approx(expected.psnr, abs=5e-3)
    assert float(row[3]) == pytest.approx(expected.ssim, abs=1e-4)
    assert row[4] == f"{float(gt.data.max() - gt.data.min()):g} (GT)"
    assert widget.plot.isVisibleTo(widget.native)  # a stack: per-plane plot shown
    [(_, psnr_line)] = widget.plot.series[0].values()
    np.testing.assert_allclose(psnr_line, expected.per_slice["psnr"])

    out = tmp_path / "metrics.csv"
    widget.csv_path.value = out
    widget.export_button.clicked.emit()
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 + gt.data.shape[0]
    assert rows[0]["plane"] == "all" and rows[0]["ground_truth"] == gt.name
    assert float(rows[3]["ssim"]) == pytest.approx(expected.per_slice["ssim"][2])


def test_user_data_range(viewer, qtbot, rng):
    gt = viewer.add_image(rng.random((40, 40)), name="gt")
    img = viewer.add_image(gt.data + 0.1, name="img")
    widget = open_panel(viewer)
    widget.ground_truth.value = gt
    widget.images.value = [img]
    widget.auto_range.value = False
    widget.data_range.value = 2.0
    compute(qtbot, widget)
    [row] = table_rows(widget)
    assert row[4] == "2 (user)"
    assert float(row[2]) == pytest.approx(10 * np.log10(4 / 0.01), abs=5e-3)
    assert not widget.plot.isVisibleTo(widget.native)  # 2D: no per-plane plot


def test_follows_rename_remove_add_and_data_edits(viewer, qtbot, rng):
    gt = viewer.add_image(rng.random((30, 30)), name="gt")
    a = viewer.add_image(gt.data + 0.05, name="a")
    b = viewer.add_image(gt.data * 0.5, name="b")
    widget = open_panel(viewer)
    widget.ground_truth.value = gt
    assert [c for c in widget.images.choices] == [a, b]  # ground truth not offered
    widget.images.value = [a, b]
    compute(qtbot, widget)
    assert [r[0] for r in table_rows(widget)] == ["a", "b"]

    a.name = "a renamed"
    assert [r[0] for r in table_rows(widget)] == ["a renamed", "b"]
    viewer.layers.remove(b)
    assert [r[0] for r in table_rows(widget)] == ["a renamed"]

    c = viewer.add_image(gt.data, name="c")
    assert c in widget.images.choices
    widget.images.value = [a, c]
    qtbot.waitUntil(lambda: len(table_rows(widget)) == 2, timeout=10_000)  # auto-update
    assert table_rows(widget)[1][2] == "inf"

    old_mae = float(table_rows(widget)[0][1])
    a.data = gt.data + 0.2  # edited data is re-measured
    qtbot.waitUntil(lambda: float(table_rows(widget)[0][1]) > old_mae + 0.1, timeout=10_000)

    viewer.layers.remove(gt)
    assert table_rows(widget) == []
    assert "removed" in widget.status.value


def test_bad_layers_get_a_reason_not_a_crash(viewer, qtbot, rng):
    gt = viewer.add_image(rng.random((30, 30)), name="gt")
    wrong = viewer.add_image(rng.random((30, 31)), name="wrong size")
    colour = viewer.add_image(rng.random((30, 30, 3)), rgb=True, name="colour")
    good = viewer.add_image(gt.data, name="good")
    widget = open_panel(viewer)
    widget.ground_truth.value = gt
    widget.images.value = [wrong, colour, good]
    compute(qtbot, widget)
    rows = {r[0]: r for r in table_rows(widget)}
    assert rows["wrong size"][1:] == ["—"] * 4
    assert "'wrong size' not compared: Shape mismatch" in widget.status.value
    assert "'colour' not compared" in widget.status.value and "RGB" in widget.status.value
    assert rows["good"][1] == "0"

    const = viewer.add_image(np.full((30, 30), 3.0), name="flat")
    widget.ground_truth.value = const
    widget.images.value = [good]
    compute(qtbot, widget)
    assert "constant" in widget.status.value


def test_export_without_results_says_so(viewer, tmp_path):
    widget = open_panel(viewer)
    widget.csv_path.value = tmp_path / "x.csv"
    widget.export_button.clicked.emit()
    assert "no results" in widget.status.value
    assert not (tmp_path / "x.csv").exists()


def test_dask_backed_layers(viewer, qtbot, rng):
    da = pytest.importorskip("dask.array")
    truth = rng.random((3, 24, 24))
    gt = viewer.add_image(da.from_array(truth, chunks=(1, 24, 24)), name="gt")
    img = viewer.add_image(da.from_array(truth + 0.1, chunks=(1, 24, 24)), name="img")
    widget = open_panel(viewer)
    widget.ground_truth.value = gt
    widget.images.value = [img]
    compute(qtbot, widget)
    [row] = table_rows(widget)
    assert float(row[1]) == pytest.approx(0.1, rel=1e-3)
    assert widget.plot.isVisibleTo(widget.native)


def test_table_shows_unpadded_numbers_full_names_and_legend_outside(viewer, qtbot):
    gt, striped = viewer.open_sample(PLUGIN, "stripe_pair")
    striped.name = "a very long layer name that a narrow dock cannot show in full (striped)"
    widget = open_panel(viewer)
    widget.ground_truth.value = gt
    widget.images.value = [striped]
    compute(qtbot, widget)

    table = widget.table.native
    shown = [
        table.itemDelegate().displayText(table.item(0, col).text(), QLocale()) for col in (1, 2)
    ]
    expected = compute_metrics(striped.data, gt.data)
    assert shown == [f"{expected.mae:.4g}", f"{expected.psnr:.2f}"]  # "13.24", not "13.2400"
    assert table.item(0, 0).toolTip() == striped.name  # the full name on hover
    assert table.textElideMode() == Qt.TextElideMode.ElideMiddle

    # The legend sits below the axes: it covers no data point.
    rects, legend = widget.plot.layout_rects()
    assert legend.height() > 0
    assert not any(legend.intersects(rect) for rect in rects)
    assert widget.plot.legend_labels() == [elide_middle(striped.name, 40)]


def test_compute_clicked_during_a_pending_update_computes_once(viewer, qtbot):
    """Picking layers schedules an automatic update (250 ms later); a click on Compute before
    it fires is that update: the table must not be recomputed (and the dock busy) again."""
    gt, striped = viewer.open_sample(PLUGIN, "stripe_pair")
    widget = open_panel(viewer)
    widget.ground_truth.value = gt
    starts = []
    start = widget.runner.start
    widget.runner.start = lambda *a, **k: (starts.append(1), start(*a, **k))[1]
    widget.images.value = []  # the dock picked the selected layer: pick it again, as a user
    qtbot.wait(400)
    starts.clear()
    widget.images.value = [striped]  # schedules the update
    assert widget._timer.isActive()
    compute(qtbot, widget)
    qtbot.wait(600)  # past the scheduled update
    assert not widget.runner.running
    assert len(starts) == 1
    assert table_rows(widget)[0][0] == striped.name
