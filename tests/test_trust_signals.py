"""Signals during a CLI write, in a real process: Ctrl-C (SIGINT) leaves neither the output nor
its temporary folder; SIGTERM leaves a temporary folder that the next run removes; the input
is never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import interruptible

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def big_input(tmp_path):
    data = np.random.default_rng(0).uniform(100, 1000, (400, 128, 128)).astype(np.float32)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def _start(args, cwd):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "import sys; from napari_restore.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )


def _signal_mid_write(proc, folder, sig):
    """Send ``sig`` once the writer's temporary folder exists (it is writing planes)."""
    deadline = time.monotonic() + 120
    while not list(folder.glob(".out.tif.*.part")):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run ended before writing: {proc.communicate()}")
        time.sleep(0.01)
    proc.send_signal(sig)
    return proc.communicate(timeout=120)


def test_ctrl_c_mid_write_leaves_nothing(big_input, tmp_path):
    before = big_input.read_bytes()
    proc = _start(["simulate", str(big_input), "out.tif"], tmp_path)
    _, err = _signal_mid_write(proc, tmp_path, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "interrupted; no output was written" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]
    assert big_input.read_bytes() == before


def test_sigterm_mid_write_leaves_a_part_folder_that_the_next_run_removes(big_input, tmp_path):
    proc = _start(["simulate", str(big_input), "out.tif"], tmp_path)
    _signal_mid_write(proc, tmp_path, signal.SIGTERM)
    assert proc.returncode == -signal.SIGTERM
    assert not (tmp_path / "out.tif").exists()
    assert list(tmp_path.glob(".out.tif.*.part"))  # killed: no clean-up ran
    rerun = _start(["simulate", str(big_input), "out.tif", "-q"], tmp_path)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]
