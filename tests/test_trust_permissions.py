"""Permission problems in every subcommand: a read-only output folder or an unreadable input
gives one line naming the path, exit code 2, no traceback, and nothing written.

Run as a normal user these tests use real permissions (chmod). As root, which may read and
write anything, the operating system's refusal is reproduced instead: the file functions that
napari-restore and its libraries call (open, os.open, os.mkdir, os.replace) raise the same
PermissionError the system would give for the path.
"""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_restore.cli import main
from napari_restore.engine.model_files import save_model_file
from napari_restore.models.rescbam_unet import ResCBAMUNet

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


@pytest.fixture
def deny(monkeypatch):
    """``deny(path, read=...)``: make a folder read-only (``read=False``) or a file unreadable
    (``read=True``)."""
    read_only: list[Path] = []
    unreadable: list[Path] = []
    made: list[tuple[Path, int]] = []

    def inside(path, roots):
        try:
            p = Path(os.path.abspath(os.fspath(path)))
        except TypeError:  # a file descriptor
            return False
        return any(p == r or r in p.parents for r in roots)

    def refuse(path):
        raise PermissionError(13, "Permission denied", os.fspath(path))

    if ROOT:
        real_open, real_os_open = builtins.open, os.open
        real_mkdir, real_replace, real_rename = os.mkdir, os.replace, os.rename

        def fake_open(file, mode="r", *args, **kwargs):
            writing = any(c in mode for c in "wax+")
            if inside(file, unreadable) or (writing and inside(file, read_only)):
                refuse(file)
            return real_open(file, mode, *args, **kwargs)

        def fake_os_open(path, flags, *args, **kwargs):
            if inside(path, unreadable) or (flags & _WRITE_FLAGS and inside(path, read_only)):
                refuse(path)
            return real_os_open(path, flags, *args, **kwargs)

        def guard(real):
            def call(src, *args, **kwargs):
                dst = args[0] if args and not isinstance(args[0], int) else src
                if inside(src, read_only) or inside(dst, read_only):
                    refuse(dst)
                return real(src, *args, **kwargs)

            return call

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(os, "mkdir", guard(real_mkdir))
        monkeypatch.setattr(os, "replace", guard(real_replace))
        monkeypatch.setattr(os, "rename", guard(real_rename))

    def deny_(path: Path, *, read: bool) -> Path:
        path = Path(os.path.abspath(path))
        (unreadable if read else read_only).append(path)
        if not ROOT:
            made.append((path, path.stat().st_mode))
            path.chmod(0o000 if read else 0o555)
        return path

    yield deny_
    for path, mode in made:
        path.chmod(mode)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.uniform(100, 1000, (16, 32, 32)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", clean, photometric="minisblack")
    tifffile.imwrite(tmp_path / "gt.tif", clean, photometric="minisblack")
    torch.manual_seed(0)
    net = ResCBAMUNet(base_channels=4, depth=2)
    meta = {"task": "destripe", "architecture": net.architecture()}
    save_model_file(tmp_path / "m", dict(net.state_dict()), meta)
    (tmp_path / "ro").mkdir()
    return tmp_path


TRAIN = ["--steps", "1", "--patch-size", "32", "--batch-size", "1", "--base-channels", "4",
         "--depth", "2"]  # fmt: skip
DENOISE = ["--train-minutes", "0.01"]
OUTPUT_CASES = {
    "destripe": ["destripe", "in.tif", "-o", "ro/out.tif", "--model", "m"],
    "simulate": ["simulate", "in.tif", "ro/out.tif"],
    "simulate --field": ["simulate", "in.tif", "out.tif", "--field", "ro/f.tif"],
    "noise": ["noise", "in.tif", "ro/out.tif"],
    "noise --expected": ["noise", "in.tif", "out.tif", "--expected", "ro/e.tif"],
    "metrics --csv": ["metrics", "gt.tif", "in.tif", "--csv", "ro/m.csv"],
    "stripe meter --csv": ["metrics", "gt.tif", "in.tif", "--no-reference", "--csv", "ro/m.csv"],
    "train-destripe": ["train-destripe", "in.tif", "-o", "ro/model", *TRAIN],
    "denoise": ["denoise", "in.tif", "-o", "ro/out.tif", *DENOISE],
    "denoise --save-model": ["denoise", "in.tif", "-o", "o.tif", "--save-model", "ro/m", *DENOISE],
    "demo --out": ["demo", "--out", "ro/demo"],
}
INPUT_CASES = {
    "destripe": ["destripe", "in.tif", "-o", "out.tif", "--model", "m"],
    "destripe --model": ["destripe", "gt.tif", "-o", "out.tif", "--model", "m.json"],
    "simulate": ["simulate", "in.tif", "out.tif"],
    "noise": ["noise", "in.tif", "out.tif"],
    "metrics": ["metrics", "gt.tif", "in.tif"],
    "stripe meter": ["metrics", "gt.tif", "in.tif", "--no-reference"],
    "train-destripe": ["train-destripe", "in.tif", "-o", "model", *TRAIN],
    "denoise": ["denoise", "in.tif", "-o", "out.tif", *DENOISE],
}


def _run(files, argv, capsys):
    os.chdir(files)
    before = sorted(p.name for p in files.rglob("*"))
    code = main(argv)
    err = capsys.readouterr().err.strip()
    after = sorted(p.name for p in files.rglob("*"))
    return code, err, before, after


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_read_only_output_folder(files, deny, capsys, case):
    argv = OUTPUT_CASES[case]
    deny(files / "ro", read=False)
    code, err, before, after = _run(files, argv, capsys)
    assert code == 2, err
    assert err.startswith(f"napari-restore {argv[0]}: error:") and len(err.splitlines()) == 1
    assert "ro" in err and "Traceback" not in err
    assert after == before  # nothing written, before any work


@pytest.mark.parametrize("case", INPUT_CASES)
def test_unreadable_input(files, deny, capsys, case):
    argv = INPUT_CASES[case]
    target = "m.json" if case == "destripe --model" else "in.tif"
    deny(files / target, read=True)
    code, err, before, after = _run(files, argv, capsys)
    assert code == 2, err
    assert err.startswith(f"napari-restore {argv[0]}: error:") and len(err.splitlines()) == 1
    assert target in err and "Traceback" not in err
    assert after == before


def test_an_os_error_deep_inside_a_command_is_one_line(files, capsys, monkeypatch):
    import napari_restore.io as nio

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", "out.tif")

    monkeypatch.setattr(nio.PlaneWriter, "__enter__", full)
    code, err, _, _ = _run(files, ["simulate", "in.tif", "out.tif"], capsys)
    assert code == 2
    assert err == "napari-restore simulate: error: No space left on device (out.tif)."
