"""CSV exports follow the images' overwrite rule: an existing file is replaced only when asked
(``overwrite=True``, ``--overwrite``, or a Yes in the dock), and the check comes before any
measuring."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile
from qtpy.QtWidgets import QMessageBox

from napari_restore.cli import main
from napari_restore.errors import RestoreInputError
from napari_restore.metrics import compute_metrics, metrics_rows, write_metrics_csv
from napari_restore.simulate import simulate_stripes
from napari_restore.stripe_meter import measure_stripes, stripe_rows, write_stripe_csv

OLD = "keep me\n"


@pytest.fixture
def pair(tmp_path):
    clean = np.random.default_rng(0).uniform(100, 1000, (2, 48, 48)).astype(np.float32)
    striped = simulate_stripes(clean, kind="regular", seed=0).image
    paths = tmp_path / "clean.tif", tmp_path / "striped.tif"
    tifffile.imwrite(paths[0], clean)
    tifffile.imwrite(paths[1], striped)
    return clean, striped, paths


def _existing(path):
    path.write_text(OLD)
    return path


def test_csv_writers_refuse_an_existing_file_unless_overwrite(pair, tmp_path):
    clean, striped, _ = pair
    m = compute_metrics(striped, clean)
    s = measure_stripes(striped, clean)
    for write, rows in (
        (write_metrics_csv, metrics_rows("a", "gt", m)),
        (write_stripe_csv, stripe_rows("in", "out", s)),
    ):
        out = _existing(tmp_path / f"{write.__name__}.csv")
        with pytest.raises(RestoreInputError, match="exists; pass overwrite=True"):
            write(out, rows)
        assert out.read_text() == OLD
        write(out, rows, overwrite=True)
        assert len(list(csv.DictReader(out.open()))) == len(rows)


@pytest.mark.parametrize("no_reference", [False, True])
def test_cli_metrics_csv_needs_overwrite_and_is_checked_first(
    pair, tmp_path, capsys, monkeypatch, no_reference
):
    _, _, (clean, striped) = pair
    out = _existing(tmp_path / "m.csv")
    extra = ["--no-reference"] if no_reference else []
    measured = []
    import napari_restore.metrics as metrics_mod
    import napari_restore.stripe_meter as meter_mod

    for mod, name in ((metrics_mod, "compute_metrics"), (meter_mod, "measure_stripes")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _r=real, **k: measured.append(1) or _r(*a, **k))
    args = ["metrics", str(clean), str(striped), "--csv", str(out), *extra]
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_text() == OLD and not measured  # refused before measuring
    assert main([*args, "--overwrite"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["plane"] == "all" and len(rows) == 3  # whole stack + 2 planes


def test_cli_metrics_csv_may_not_be_an_input(pair, capsys):
    _, _, (clean, striped) = pair
    before = striped.read_bytes()
    assert main(["metrics", str(clean), str(striped), "--csv", str(striped), "--overwrite"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert striped.read_bytes() == before


@pytest.mark.parametrize(("answer", "replaced"), [("No", False), ("Yes", True)])
def test_dock_asks_before_replacing_a_csv(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, answer, replaced
):
    viewer = make_napari_viewer()
    gt, striped = viewer.open_sample("napari-restore", "stripe_pair")
    _, widget = viewer.window.add_plugin_dock_widget("napari-restore", "Metrics")
    widget.ground_truth.value = gt
    widget.images.value = [striped]
    widget.compute_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)
    out = _existing(tmp_path / "m.csv")
    asked = []

    def question(*args, **kwargs):
        asked.append(args[2])
        return getattr(QMessageBox.StandardButton, answer)

    monkeypatch.setattr(QMessageBox, "question", question)
    widget.csv_path.value = out
    widget.export_button.clicked.emit()
    assert asked and "m.csv" in asked[0]
    assert (out.read_text() != OLD) == replaced
    if not replaced:
        assert "kept" in widget.status.value
    with pytest.raises(RestoreInputError, match="exists"):
        widget.export_csv(out)  # the API itself never replaces silently
