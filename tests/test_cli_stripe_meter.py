"""``napari-restore metrics INPUT RESTORED --no-reference``: the stripe meter on files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_restore.cli import main
from napari_restore.stripe_meter import measure_stripes


@pytest.fixture
def pair(tmp_path, rng):
    img = np.zeros((2, 96, 112))
    img[:, rng.integers(0, 96, 30), rng.integers(0, 112, 30)] = 4000
    clean = ndimage.gaussian_filter(img, (0, 3, 3)) * 40 + 300 + rng.normal(0, 5, img.shape)
    profile = 150 * ndimage.gaussian_filter1d(rng.normal(0, 1, 96), 1.0)
    striped = clean + profile[None, :, None]
    paths = {}
    for name, data in (("input", striped), ("clean", clean), ("blur", striped)):
        if name == "blur":
            data = ndimage.gaussian_filter(striped, (0, 2, 2))
        paths[name] = tmp_path / f"{name}.tif"
        tifffile.imwrite(paths[name], data.astype(np.float32), photometric="minisblack")
    return paths, striped, clean


def test_table_csv_and_verdicts(pair, tmp_path, capsys):
    paths, striped, clean = pair
    out_csv = tmp_path / "meter.csv"
    code = main(
        [
            "metrics",
            str(paths["input"]),
            str(paths["clean"]),
            str(paths["blur"]),
            "--no-reference",
            "--per-slice",
            "--csv",
            str(out_csv),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    expected = measure_stripes(striped.astype(np.float32), clean.astype(np.float32))
    assert "no reference" in out and "stripes removed %" in out
    assert f"{paths['clean']}: {expected.verdict}" in out
    assert "  plane 1" in out
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["plane"] for r in rows] == ["all", "0", "1"] * 2
    assert rows[0]["restored"] == str(paths["clean"]) and rows[0]["input"] == str(paths["input"])
    assert float(rows[0]["stripe_removed_pct"]) == pytest.approx(
        100 * expected.stripe_removed, abs=1e-3
    )
    blur = rows[3]
    assert float(blur["structure_changed_pct"]) > 1.0  # the blur changed content


def test_json_output(pair, capsys):
    paths, _, _ = pair
    assert (
        main(["metrics", str(paths["input"]), str(paths["clean"]), "--no-reference", "--json"]) == 0
    )
    payload = json.loads(capsys.readouterr().out)
    [res] = payload["results"]
    assert payload["input"] == str(paths["input"])
    assert res["direction"] == "horizontal" and res["stripe_removed"] > 0.9
    assert res["verdict"].startswith("stripes reduced by 9")


def test_bad_pair_is_a_clear_error(pair, tmp_path, capsys):
    paths, _, _ = pair
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, np.zeros((2, 96, 100), np.float32), photometric="minisblack")
    assert main(["metrics", str(paths["input"]), str(other), "--no-reference"]) == 2
    assert "Shape mismatch" in capsys.readouterr().err


def test_log_domain_for_attenuation_stripes(tmp_path, rng, capsys):
    """--domain log: shadows multiply the image; removing them exactly is read as stripes
    removed and (almost) no structure changed, unlike in the linear domain."""
    img = np.zeros((96, 112))
    img[rng.integers(0, 96, 30), rng.integers(0, 112, 30)] = 4000
    clean = ndimage.gaussian_filter(img, 3) * 40 + 300 + rng.normal(0, 5, img.shape)
    profile = ndimage.gaussian_filter1d(rng.normal(0, 1, 96), 1.0)
    shadowed = clean * (1 - np.clip(0.3 + 0.2 * profile / profile.std(), 0, 0.8))[:, None]
    paths = {}
    for name, data in (("input", shadowed), ("clean", clean)):
        paths[name] = tmp_path / f"{name}.tif"
        tifffile.imwrite(paths[name], data.astype(np.float32))
    out_csv = tmp_path / "log.csv"
    args = ["metrics", str(paths["input"]), str(paths["clean"]), "--no-reference"]
    assert main([*args, "--domain", "log", "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "log domain" in out
    with open(out_csv, newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["domain"] == "log"
    linear = measure_stripes(shadowed.astype(np.float32), clean.astype(np.float32))
    assert float(row["structure_changed_pct"]) < 0.5 < 100 * linear.structure_changed
    assert float(row["stripe_removed_pct"]) > 85  # a small plane: a coarse spectrum
    # A domain that does not exist is refused by the parser, before any file is read.
    with pytest.raises(SystemExit):
        main([*args, "--domain", "sqrt"])
