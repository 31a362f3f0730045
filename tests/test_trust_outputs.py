"""No lost data: outputs never replace an input or an existing file unless asked, clashing or
unwritable outputs fail before any work, and Ctrl-C during training keeps the steps done."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tifffile
import torch

from conftest import interruptible
from napari_restore.cli import main
from napari_restore.denoise.infer import denoise_file
from napari_restore.destripe.infer import destripe_file
from napari_restore.engine.model_files import save_model_file
from napari_restore.errors import RestoreInputError
from napari_restore.io import write_image
from napari_restore.models.srdtrans import SRDTrans

TINY_SRD = {"channels": (2, 4, 4, 8), "embed_dim": 16, "heads": 2}
TINY_UNET = ["--patch-size", "32", "--batch-size", "1", "--base-channels", "4", "--depth", "2"]
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def stack(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(100, 2000, size=(32, 32, 32), dtype=np.uint16)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    return path, data


@pytest.fixture(scope="module")
def srd():
    torch.manual_seed(0)
    return SRDTrans(patch_t=16, **TINY_SRD).eval()


def test_denoise_file_refuses_its_input_by_any_name(stack, srd, tmp_path):
    path, data = stack
    link = tmp_path / "link.tif"
    link.symlink_to(path)
    os.chdir(tmp_path)
    for out in (path, link, "in.tif", tmp_path / "sub" / ".." / "in.tif"):
        with pytest.raises(RestoreInputError, match="is the input"):
            denoise_file(path, out, srd, device="cpu", overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(path), data)


def test_denoise_file_overwrites_only_when_asked(stack, srd, tmp_path):
    path, _ = stack
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(RestoreInputError, match="exists; pass overwrite=True"):
        denoise_file(path, out, srd, device="cpu")
    assert out.read_bytes() == b"keep me"
    denoise_file(path, out, srd, device="cpu", overwrite=True)
    assert tifffile.imread(out).shape == (32, 32, 32)


def test_destripe_file_refuses_its_input_through_a_symlink(stack, tmp_path):
    path, data = stack
    link = tmp_path / "link.tif"
    link.symlink_to(path)
    with pytest.raises(RestoreInputError, match="is the input"):
        destripe_file(path, link, overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(path), data)


def test_write_image_and_model_files_refuse_existing_files(tmp_path):
    out = tmp_path / "a.tif"
    write_image(out, np.zeros((4, 4), np.uint8))
    with pytest.raises(RestoreInputError, match="exists"):
        write_image(out, np.ones((4, 4), np.uint8))
    assert tifffile.imread(out).max() == 0
    write_image(out, np.ones((4, 4), np.uint8), overwrite=True)
    assert tifffile.imread(out).max() == 1

    meta = {"task": "denoise", "architecture": {"name": "x", "kwargs": {}}}
    state = {"w": torch.zeros(2)}
    save_model_file(tmp_path / "m", state, meta)
    before = (tmp_path / "m.safetensors").read_bytes()
    with pytest.raises(RestoreInputError, match="exists"):
        save_model_file(tmp_path / "m", {"w": torch.ones(2)}, meta)
    assert (tmp_path / "m.safetensors").read_bytes() == before
    save_model_file(tmp_path / "m", {"w": torch.ones(2)}, meta, overwrite=True)
    assert (tmp_path / "m.safetensors").read_bytes() != before


def test_noise_expected_equal_to_output_or_input_is_refused(stack, tmp_path, capsys):
    path, data = stack
    out = tmp_path / "noisy.tif"
    for expected, clash in ((out, "two different outputs"), (path, "is the input")):
        code = main(["noise", str(path), str(out), "--expected", str(expected), "--overwrite"])
        assert code == 2
        assert clash in capsys.readouterr().err
    assert not out.exists()
    np.testing.assert_array_equal(tifffile.imread(path), data)


def test_simulate_field_equal_to_output_is_refused(stack, tmp_path, capsys):
    path, data = stack
    out = tmp_path / "striped.tif"
    assert main(["simulate", str(path), str(out), "--field", str(out)]) == 2
    assert "two different outputs" in capsys.readouterr().err
    assert not out.exists()
    np.testing.assert_array_equal(tifffile.imread(path), data)


def _train_destripe(clean, out, *extra):
    return main(
        [
            "train-destripe",
            str(clean),
            "-o",
            str(out),
            "--perceptual-weight",
            "0",
            "--steps",
            "2",
            "--device",
            "cpu",
            "-q",
            *TINY_UNET,
            *extra,
        ]
    )


def test_train_destripe_checks_the_model_folder_before_training(stack, tmp_path, capsys):
    path, _ = stack
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    assert _train_destripe(path, blocker / "model") == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err
    assert "training on" not in err


@pytest.mark.skipif(ROOT, reason="root can write into read-only folders")
def test_train_destripe_read_only_folder_fails_at_once(stack, tmp_path, capsys):
    path, _ = stack
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert _train_destripe(path, ro / "model") == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_denoise_save_model_clashing_with_output_is_refused_before_training(
    stack, tmp_path, capsys
):
    path, _ = stack
    out = tmp_path / "out.json"  # the .json of the model file "out"
    args = ["denoise", str(path), "-o", str(out), "--train-steps", "1", "-q", "--device", "cpu"]
    assert main([*args, "--save-model", str(tmp_path / "out")]) == 2
    assert "two different outputs" in capsys.readouterr().err
    assert not out.exists()


def test_ctrl_c_during_train_destripe_saves_the_steps_done(stack, tmp_path):
    path, _ = stack
    model = tmp_path / "model"
    code = "import sys; from napari_restore.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "train-destripe", str(path), "-o", str(model)]
    cmd += ["--perceptual-weight", "0", "--steps", "100000", "--device", "cpu", *TINY_UNET]
    cmd += ["--val-every", "1000000", "--threads", "1"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=False,
        preexec_fn=interruptible,
    )
    seen = bytearray()
    stepped = threading.Event()

    def watch():  # tqdm's bar on stderr shows the step count
        while chunk := proc.stderr.read1(4096):
            seen.extend(chunk)
            if re.search(rb"\b[2-9]\d*/100000|\b\d{2,}/100000", bytes(seen)):
                stepped.set()

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        assert stepped.wait(240), bytes(seen).decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    reader.join(10)
    assert proc.returncode == 0, bytes(seen).decode(errors="replace")
    assert b"training stopped by Ctrl-C" in out
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["steps"] >= 2
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".*.part"))


def test_ctrl_c_before_any_step_writes_nothing(stack, tmp_path):
    path, _ = stack
    code = (
        "import os, signal, sys\n"
        "from napari_restore.destripe.train import DestripeTrainer\n"
        "orig = DestripeTrainer._step\n"
        "def step(self, *a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return orig(self, *a, **k)\n"
        "DestripeTrainer._step = step\n"
        "from napari_restore.cli import main\n"
        "sys.exit(main())\n"
    )
    cmd = [sys.executable, "-c", code, "train-destripe", str(path), "-o", str(tmp_path / "m")]
    cmd += ["--perceptual-weight", "0", "--steps", "5", "--device", "cpu", "-q", *TINY_UNET]
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, preexec_fn=interruptible)
    assert res.returncode == 130, res.stderr
    assert "interrupted" in res.stderr
    assert not list(tmp_path.glob("m*")), time.monotonic() - t0
