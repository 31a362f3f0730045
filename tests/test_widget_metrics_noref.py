"""Metrics panel without a ground truth: the stripe meter, driven in a real napari viewer."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import ndimage

from napari_restore.stripe_meter import measure_stripes

PLUGIN = "napari-restore"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def open_panel(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Metrics")
    return widget


def compute(qtbot, widget):
    widget.compute_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)


def striped_pair(rng, shape=(128, 144)):
    img = np.zeros(shape)
    img[rng.integers(0, shape[0], 40), rng.integers(0, shape[1], 40)] = 5000
    clean = ndimage.gaussian_filter(img, 3) * 40 + 200 + rng.normal(0, 5, shape)
    profile = 120 * ndimage.gaussian_filter1d(rng.normal(0, 1, shape[0]), 1.0)
    return clean + profile[:, None], clean


def test_two_layers_without_ground_truth_get_the_stripe_meter(viewer, qtbot, tmp_path, rng):
    striped, clean = striped_pair(rng)
    raw = viewer.add_image(striped, name="raw")
    # A restored layer made by a dock names its source; listed first here on purpose.
    restored = viewer.add_image(clean, name="restored", metadata={"napari_restore_source": "raw"})
    blurred = viewer.add_image(ndimage.gaussian_filter(striped, 2), name="blurred")
    viewer.layers.move(1, 0)
    widget = open_panel(viewer)
    widget.ground_truth.value = None
    widget.images.value = [restored, raw, blurred]
    compute(qtbot, widget)

    assert widget.table.value["columns"][1] == "stripes −%"
    rows = {r[0]: r for r in widget.table.value["data"]}
    assert set(rows) == {"restored", "blurred"}  # both against the input 'raw'
    expected = measure_stripes(striped, clean)
    assert float(rows["restored"][1]) == pytest.approx(100 * expected.stripe_removed, abs=0.05)
    assert float(rows["blurred"][2]) > 1.0  # the blur changed structure
    assert rows["restored"][5].startswith("horiz.")
    assert widget.verdict.native.isVisibleTo(widget.native)
    assert f"restored: {expected.verdict}" in widget.verdict.value
    assert "striped input 'raw'" in widget.status.value

    # Six columns: no header or number is squeezed, names get their width, the table shows all.
    table = widget.table.native
    header = table.horizontalHeader()
    for col in range(1, table.columnCount()):
        needed = max(header.sectionSizeHint(col), table.sizeHintForColumn(col))
        assert header.sectionSize(col) >= needed
    assert header.sectionSize(0) >= min(170, table.sizeHintForColumn(0))
    columns = sum(header.sectionSize(c) for c in range(6))
    qtbot.waitUntil(lambda: table.viewport().width() >= columns - 2)  # after the relayout
    assert not widget.noref_plot.isVisibleTo(widget.native)  # 2D: no per-plane plot

    out = tmp_path / "meter.csv"
    widget.csv_path.value = out
    widget.export_button.clicked.emit()
    with open(out, newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [(r["input"], r["restored"]) for r in written] == [
        ("raw", "restored"),
        ("raw", "blurred"),
    ]
    assert written[0]["verdict"] == expected.verdict

    # Picking a ground truth again brings back the MAE / PSNR / SSIM table.
    widget.ground_truth.value = restored
    widget.images.value = [raw]
    compute(qtbot, widget)
    assert widget.table.value["columns"][1] == "MAE"
    assert not widget.verdict.native.isVisibleTo(widget.native)


def test_stacks_plot_per_plane_and_follow_the_layers(viewer, qtbot, rng):
    striped, clean = striped_pair(rng)
    half = clean + 0.5 * (striped - clean)
    raw = viewer.add_image(np.stack([striped, striped, striped]), name="raw")
    out = viewer.add_image(np.stack([clean, striped, half]), name="out")
    widget = open_panel(viewer)
    widget.ground_truth.value = None
    widget.images.value = [raw, out]
    compute(qtbot, widget)
    assert widget.noref_plot.isVisibleTo(widget.native)
    [(_, y)] = widget.noref_plot.series[0].values()
    assert y[0] > 75 and y[1] == 0 and 40 < y[2] < y[0]  # perfect, identity, half removed

    out.name = "out renamed"
    assert widget.table.value["data"][0][0] == "out renamed"
    widget.images.value = [raw, out]
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=15_000)
    before = float(widget.table.value["data"][0][1])
    out.data = np.stack([clean, clean, clean])  # edited data is re-measured
    qtbot.waitUntil(lambda: float(widget.table.value["data"][0][1]) > before + 20, timeout=15_000)
    viewer.layers.remove(raw)
    assert widget.table.value["data"] == []
    assert "input layer was removed" in widget.status.value


def test_mismatched_or_single_layers_say_why(viewer, qtbot, rng):
    striped, _ = striped_pair(rng)
    raw = viewer.add_image(striped, name="raw")
    other = viewer.add_image(striped[:100], name="cropped")
    widget = open_panel(viewer)
    widget.ground_truth.value = None
    widget.images.value = [raw]
    compute(qtbot, widget)
    assert "no ground truth and two layers" in widget.status.value
    widget.images.value = [raw, other]
    compute(qtbot, widget)
    assert widget.table.value["data"] == [["cropped", "—", "—", "—", "—", "—"]]
    assert "'cropped' not compared: Shape mismatch" in widget.status.value


def test_log_spectra_for_shadows(viewer, qtbot, tmp_path, rng):
    """The stripe-spectra setting measures attenuation stripes in the log domain; it is only
    offered without a ground truth, and the CSV says which domain was used."""
    img = np.zeros((128, 144))
    img[rng.integers(0, 128, 40), rng.integers(0, 144, 40)] = 5000
    clean = ndimage.gaussian_filter(img, 3) * 40 + 200 + rng.normal(0, 5, img.shape)
    profile = ndimage.gaussian_filter1d(rng.normal(0, 1, 128), 1.0)
    shadowed = clean * (1 - np.clip(0.3 + 0.2 * profile / profile.std(), 0, 0.8))[:, None]
    viewer.add_image(shadowed, name="raw")
    restored = viewer.add_image(clean, name="restored", metadata={"napari_restore_source": "raw"})
    widget = open_panel(viewer)
    assert widget.domain.enabled is False  # a ground truth is picked: PSNR/SSIM mode
    widget.ground_truth.value = None
    assert widget.domain.enabled and widget.domain.value == "linear"
    widget.images.value = [viewer.layers["raw"], restored]
    compute(qtbot, widget)
    linear = float(widget.table.value["data"][0][2])
    widget.domain.value = "log"
    compute(qtbot, widget)
    [row] = widget.table.value["data"]
    expected = measure_stripes(shadowed, clean, domain="log")
    assert float(row[2]) == pytest.approx(100 * expected.structure_changed, abs=0.01)
    assert float(row[2]) < 0.5 < linear  # exact removal of shadows: no structure change
    out = tmp_path / "log.csv"
    widget.csv_path.value = out
    widget.export_button.clicked.emit()
    with open(out, newline="") as fh:
        assert [r["domain"] for r in csv.DictReader(fh)] == ["log"]
