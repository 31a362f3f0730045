"""The napari-restore command line: simulate, noise, metrics, demo, info."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_restore.cli import main
from napari_restore.io import read_image
from napari_restore.metrics import compute_metrics
from napari_restore.simulate import StripeParams, simulate_stripes


@pytest.fixture
def clean_tif(tmp_path, rng):
    data = (rng.random((3, 40, 50)) * 3000 + 200).astype(np.uint16)
    path = tmp_path / "clean.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    return path, data


def test_simulate_matches_the_api_and_writes_the_field(clean_tif, tmp_path):
    path, data = clean_tif
    out, field = tmp_path / "striped.tif", tmp_path / "field.zarr"
    code = main(
        [
            "simulate",
            str(path),
            str(out),
            "--kind",
            "tilted",
            "--angle",
            "-5",
            "5",
            "--seed",
            "4",
            "--field",
            str(field),
            "-q",
        ]
    )
    assert code == 0
    expected = simulate_stripes(data, StripeParams(kind="tilted", angle=(-5, 5), seed=4))
    np.testing.assert_array_equal(read_image(out), expected.image)
    np.testing.assert_array_equal(read_image(field), expected.field)


def test_simulate_refuses_to_overwrite_and_bad_parameters(clean_tif, tmp_path, capsys):
    path, _ = clean_tif
    out = tmp_path / "striped.tif"
    out.write_bytes(b"keep me")
    assert main(["simulate", str(path), str(out), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["simulate", str(path), str(path), "--overwrite", "-q"]) == 2
    assert "is the input" in capsys.readouterr().err
    other = tmp_path / "other.tif"
    assert main(["simulate", str(path), str(other), "--width", "3", "1"]) == 2
    assert "width" in capsys.readouterr().err and not other.exists()


def test_noise_writes_noisy_and_expected(clean_tif, tmp_path):
    path, data = clean_tif
    noisy, expected = tmp_path / "noisy.tif", tmp_path / "expected.tif"
    code = main(["noise", str(path), str(noisy), "--photons", "5", "--expected", str(expected)])
    assert code == 0
    exp = read_image(expected)
    assert exp.mean() == pytest.approx(5 + 100, rel=1e-4)
    assert read_image(noisy).shape == data.shape


def test_metrics_table_and_json(clean_tif, tmp_path, capsys):
    path, data = clean_tif
    striped = tmp_path / "striped.tif"
    main(["simulate", str(path), str(striped), "-q"])
    capsys.readouterr()
    assert main(["metrics", str(path), str(striped), str(path)]) == 0
    text = capsys.readouterr().out
    m = compute_metrics(read_image(striped), data)
    assert f"{m.psnr:.3f}" in text and "(ground truth)" in text and "inf" in text

    assert (
        main(["metrics", str(path), str(striped), "--json", "--per-slice", "--data-range", "5000"])
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    [res] = payload["results"]
    assert res["data_range"] == 5000 and res["data_range_source"] == "user"
    assert len(res["per_slice"]["ssim"]) == 3
    assert res["ssim_mode"] == "mean of 2D plane SSIM"


def test_metrics_errors(clean_tif, tmp_path, capsys):
    path, _ = clean_tif
    assert main(["metrics", str(path), str(tmp_path / "nope.tif")]) == 2
    assert "File not found" in capsys.readouterr().err
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((3, 40, 49), np.uint16), photometric="minisblack")
    assert main(["metrics", str(path), str(small)]) == 2
    assert "Shape mismatch" in capsys.readouterr().err
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"\x00" * 100)
    assert main(["metrics", str(path), str(bad)]) == 2
    assert "Could not read" in capsys.readouterr().err


def test_demo_and_info(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "striped (tilted)" in out and "data range" in out
    assert len(list((tmp_path / "demo").glob("*.tif"))) == 7
    assert "destriped (tilted" in out
    assert main(["info"]) == 0
    assert "cpu" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = shutil.which("napari-restore") or str(
        __import__("pathlib").Path(sys.executable).with_name("napari-restore")
    )
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    for sub in ("simulate", "metrics", "demo"):
        assert sub in res.stdout


def test_a_folder_input_gets_a_clear_message(tmp_path, capsys):
    folder = tmp_path / "planes"
    folder.mkdir()
    assert main(["metrics", str(folder), str(folder)]) == 2
    err = capsys.readouterr().err
    assert "No TIFF files" in err and "folder of 2D TIFF planes" in err
    assert "Unsupported file type ''" not in err


def test_every_argument_has_help_and_every_subcommand_a_description():
    import argparse

    from napari_restore.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in sub.choices.items():
        assert command.description, f"{name} has no description"
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_metrics_table_uses_one_number_format_per_column():
    from napari_restore.cli.metrics import format_table
    from napari_restore.metrics import Metrics

    def m(mae):
        return Metrics(mae=mae, psnr=30.0, ssim=0.9, data_range=1.0, data_range_source="user")

    table = format_table([("a", m(0.01234)), ("b", m(0.00001234))])
    maes = [line.split()[1] for line in table.splitlines()[2:]]
    assert maes == ["0.01234", "0.00001"]  # same decimals, no exponent
