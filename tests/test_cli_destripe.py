"""``napari-restore train-destripe`` and ``napari-restore destripe`` end to end on TIFF files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_restore import load_sample
from napari_restore.cli import main
from napari_restore.simulate import simulate_stripes

TINY = ["--patch-size", "32", "--batch-size", "2", "--base-channels", "4", "--depth", "2"]


@pytest.fixture
def files(tmp_path):
    clean2d = load_sample("nuclei")[:80, :96]
    stack = load_sample("tribolium")[:3, :64, :72]
    tifffile.imwrite(tmp_path / "clean2d.tif", clean2d)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    striped = simulate_stripes(stack, seed=4).image
    tifffile.imwrite(tmp_path / "striped.tif", striped, photometric="minisblack")
    return tmp_path


def train(files, *extra):
    return main(
        [
            "train-destripe",
            str(files / "clean2d.tif"),
            str(files / "stack.tif"),
            "--perceptual-weight",
            "0",
            "--steps",
            "3",
            "--device",
            "cpu",
            "-q",
            *TINY,
            *extra,
        ]
    )


def test_train_then_destripe(files, capsys):
    assert train(files, "-o", str(files / "model")) == 0
    meta = json.loads((files / "model.json").read_text())
    assert meta["task"] == "destripe" and meta["steps"] == 3
    assert [d["name"] for d in meta["data"]] == ["clean2d.tif", "stack.tif"]
    assert meta["training"]["config"]["base_channels"] == 4
    assert meta["validation"]["psnr"] is not None
    assert meta["training"]["config"]["clean_fraction"] == 0.0
    assert (files / "model.safetensors").is_file()

    # Continue training: the model's settings are kept, the step count goes on.
    assert train(files, "--resume", str(files / "model"), "-o", str(files / "more")) == 0
    assert json.loads((files / "more.json").read_text())["steps"] == 6

    out = files / "out.tif"
    rc = main(
        [
            "destripe",
            str(files / "striped.tif"),
            "-o",
            str(out),
            "--model",
            str(files / "more.safetensors"),
            "--device",
            "cpu",
            "--tile",
            "32",
            "--threads",
            "1",
            "-q",
        ]
    )
    assert rc == 0
    result = tifffile.imread(out)
    striped = tifffile.imread(files / "striped.tif")
    assert result.shape == striped.shape and result.dtype == striped.dtype
    assert not np.array_equal(result, striped)

    as_float = files / "out32.tif"
    args = ["destripe", str(files / "striped.tif"), "-o", str(as_float), "--model"]
    assert main([*args, str(files / "more"), "--dtype", "float32", "-q"]) == 0
    assert tifffile.imread(as_float).dtype == np.float32


def test_perceptual_weight_without_vgg_weights(files, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(files / "torch_home"))
    rc = train(files, "-o", str(files / "model"), "--perceptual-weight", "0.1")
    assert rc == 2
    err = capsys.readouterr().err
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in err
    assert "--vgg-weights PATH" in err and "--perceptual-weight 0" in err
    assert "Traceback" not in err
    assert not list(files.glob("model*"))


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("clean_fraction", "0.25", "1.5"),
        ("bright_fraction", "0.5", "1"),
        ("shadow_fraction", "0.5", "1"),
        ("shadow_profiles", "varied", "round"),
        ("level_weight", "2", "inf"),
    ],
)
def test_training_shares_are_recorded_and_checked(files, capsys, name, good, bad):
    flag = "--" + name.replace("_", "-")
    assert train(files, flag, good, "-o", str(files / "m")) == 0
    meta = json.loads((files / "m.json").read_text())
    recorded = meta["training"]["config"][name]
    assert recorded == (good if name == "shadow_profiles" else float(good))
    try:  # refused by the settings' check (exit status 2) or by argparse (SystemExit 2)
        rc = train(files, flag, bad, "-o", str(files / "bad"))
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert name in err or flag in err
    assert not list(files.glob("bad*"))


def test_errors_leave_no_output(files, capsys):
    out = files / "out.tif"
    # Missing input.
    assert main(["destripe", str(files / "missing.tif"), "-o", str(out), "-q"]) == 2
    assert "not found" in capsys.readouterr().err
    # Missing model file.
    rc = main(
        ["destripe", str(files / "striped.tif"), "-o", str(out), "--model", "nope.safetensors"]
    )
    assert rc == 2
    assert "Model file not found" in capsys.readouterr().err
    # A device this machine does not have.
    rc = main(["destripe", str(files / "striped.tif"), "-o", str(out), "--device", "cuda:7"])
    assert rc == 2
    assert "cuda:7" in capsys.readouterr().err
    # An output format that cannot be written.
    rc = main(["destripe", str(files / "striped.tif"), "-o", str(files / "out.png")])
    assert rc == 2
    assert not out.exists() and not (files / "out.png").exists()
    # Missing clean image for training.
    rc = main(
        [
            "train-destripe",
            str(files / "nope.tif"),
            "-o",
            str(files / "m"),
            "--perceptual-weight",
            "0",
        ]
    )
    assert rc == 2
    assert "not found" in capsys.readouterr().err
    assert not list(files.glob("m.*"))
    assert sorted(p.name for p in files.iterdir()) == ["clean2d.tif", "stack.tif", "striped.tif"]


def test_existing_outputs_need_overwrite(files, capsys):
    (files / "out.tif").write_bytes(b"keep me")
    rc = main(["destripe", str(files / "striped.tif"), "-o", str(files / "out.tif"), "-q"])
    assert rc == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (files / "out.tif").read_bytes() == b"keep me"
    (files / "model.json").write_text("{}")
    assert train(files, "-o", str(files / "model")) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert train(files, "-o", str(files / "model"), "--overwrite") == 0
    assert json.loads((files / "model.json").read_text())["steps"] == 3


def test_time_budget_stops_and_saves(files):
    assert train(files, "-o", str(files / "model"), "--steps", "500", "--minutes", "0") == 0
    meta = json.loads((files / "model.json").read_text())
    assert meta["steps"] == 1
    assert meta["validation"]["psnr"] is not None  # validated before saving


def test_perceptual_weight_defaults_to_mae_only(files):
    out = files / "m"
    args = ["train-destripe", str(files / "clean2d.tif"), "-o", str(out), "--steps", "1"]
    assert main([*args, "--device", "cpu", "-q", *TINY]) == 0
    meta = json.loads((files / "m.json").read_text())
    assert meta["training"]["perceptual_weight"] == 0.0  # the config's default: no VGG needed


def test_destripe_leaves_stripe_free_planes_unless_asked(files):
    """A clean stack comes back bit for bit; --all-planes runs the network on it anyway."""
    clean = tifffile.imread(files / "stack.tif")
    args = ["destripe", str(files / "stack.tif"), "--device", "cpu", "-q"]
    assert main([*args, "-o", str(files / "kept.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(files / "kept.tif"), clean)
    assert main([*args, "-o", str(files / "all.tif"), "--all-planes", "--no-cleanup"]) == 0
    assert not np.array_equal(tifffile.imread(files / "all.tif"), clean)
    # Striped planes are destriped with the default settings.
    striped = tifffile.imread(files / "striped.tif")
    out = ["destripe", str(files / "striped.tif"), "-o", str(files / "d.tif"), "-q"]
    assert main([*out, "--device", "cpu"]) == 0
    assert not np.array_equal(tifffile.imread(files / "d.tif"), striped)
