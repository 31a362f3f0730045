"""Interrupted writes leave no litter for long, training time limits are finite, and model
files get the usual file mode."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_restore._sample_data import load_sample
from napari_restore.cli import main
from napari_restore.core.files import atomic_path, remove_stale_parts
from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer
from napari_restore.engine.model_files import save_model_file
from napari_restore.errors import RestoreInputError
from napari_restore.io import write_image


def test_a_killed_writer_leaves_a_part_folder_that_the_next_run_removes(tmp_path):
    out = tmp_path / "out.tif"
    code = (
        "import os, signal, sys, numpy as np\n"
        "from napari_restore.io import PlaneWriter\n"
        "with PlaneWriter(sys.argv[1], (8, 64, 64), np.uint16) as w:\n"
        "    w[0] = np.ones((64, 64), np.uint16)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(out)], timeout=120)
    assert res.returncode == -signal.SIGKILL
    leftovers = list(tmp_path.glob(".out.tif.*.part"))
    assert len(leftovers) == 1 and not out.exists()

    write_image(out, np.zeros((4, 4), np.uint8))
    assert not leftovers[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_the_part_folder_of_a_live_writer_is_kept(tmp_path):
    out = tmp_path / "out.tif"
    with atomic_path(out) as target:
        target.write_bytes(b"partial")
        assert remove_stale_parts(out) == []  # our own process is alive
        assert target.exists()
    assert out.read_bytes() == b"partial"


def test_model_weights_get_the_same_mode_as_their_json(tmp_path):
    old = os.umask(0o022)
    try:
        meta = {"task": "denoise", "architecture": {"name": "x", "kwargs": {}}}
        weights = save_model_file(tmp_path / "m", {"w": torch.zeros(2)}, meta)
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (weights, tmp_path / "m.json")}
    assert modes == {0o644}


@pytest.mark.parametrize("minutes", [float("nan"), float("inf"), -1.0])
def test_training_minutes_must_be_finite(minutes):
    images = [load_sample("nuclei")[:64, :64]]
    config = DestripeTrainConfig(
        steps=2,
        patch_size=32,
        batch_size=1,
        base_channels=4,
        depth=2,
        val_patches=1,
        device="cpu",
    )
    trainer = DestripeTrainer(images, config)
    with pytest.raises(RestoreInputError, match="finite"):
        next(trainer.train(minutes=minutes))
    assert trainer.step == 0


def test_cli_training_minutes_must_be_finite(tmp_path, capsys):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 999, (32, 32, 32), np.uint16))
    denoise = ["denoise", str(path), "-o", str(tmp_path / "o.tif"), "--train-minutes", "inf"]
    assert main(denoise) == 2
    assert "finite" in capsys.readouterr().err
    train = ["train-destripe", str(path), "-o", str(tmp_path / "m"), "--perceptual-weight", "0"]
    assert main([*train, "--minutes", "nan"]) == 2
    assert "finite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]
