"""Benchmark: a folder of many 2D TIFF planes through the command line, with memory measured.

Writes a synthetic folder of ``--planes`` uint16 planes of ``--size``² (2000 x 2048² = 16 GiB by
default: check the free space first), then runs

1. ``napari-restore simulate IN OUT1 --count 0`` once to the end: a folder in, a folder out,
   with a method that costs next to nothing per plane (a stripe simulation with no stripes: the
   plane is read, multiplied by one and cast), so the numbers are those of the folder machinery
   (opening and checking every file, reading and writing plane by plane, renames, markers);
2. the same into OUT2, killed with SIGKILL once ``--kill-at`` of the planes are written (a
   crash: nothing is cleaned up), then run again, which resumes and writes only the rest.

Each run is a separate process; its peak resident memory is taken from the kernel
(``wait4``'s ``ru_maxrss``) and, as a check, from sampling ``/proc`` through psutil every
0.1 s. The two outputs are compared plane by plane on an evenly spaced sample of planes.
Results go to ``--json``; the folders are deleted at the end unless ``--keep``.

Run it niced on a shared machine::

    nice -n 10 python benchmarks/bench_folders.py --work /work/scratch-folders \\
        --json benchmarks/results/folders.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def make_folder(folder: Path, planes: int, size: int, seed: int = 0) -> float:
    """Write ``planes`` uint16 planes ``z0.tif`` ... (unpadded names: natural sort matters)."""
    import tifffile

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    base = (1000 + 800 * np.sin(xx / 37.0) * np.cos(yy / 53.0)).astype(np.float32)
    t0 = time.perf_counter()
    for z in range(planes):
        noise = rng.integers(0, 200, (size, size), dtype=np.uint16)
        plane = (base * (1 + 0.2 * np.sin(z / 50.0))).astype(np.uint16) + noise
        tifffile.imwrite(folder / f"z{z}.tif", plane, photometric="minisblack")
    return time.perf_counter() - t0


def run_cli(args: list[str], *, kill_when: Any = None, sample_s: float = 0.1) -> dict[str, Any]:
    """Run ``napari-restore ARGS`` in a child process; wall time and peak RSS.

    ``kill_when``: a callable polled while the child runs; when it returns true the child is
    killed with SIGKILL.
    """
    import psutil

    code = "import sys; from napari_restore.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, *args]
    t0 = time.perf_counter()
    # -q keeps the output small, so the pipes cannot fill up while nobody reads them.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    sampled = 0
    killed = False
    while True:
        # wait4 (not Popen.poll, which would reap the child first) gives its peak RSS (KiB).
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(psutil.NoSuchProcess):
            sampled = max(sampled, ps.memory_info().rss)
        if kill_when is not None and not killed and kill_when():
            proc.send_signal(signal.SIGKILL)
            killed = True
        time.sleep(sample_s)
    rc = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss * 1024
    proc.returncode = rc
    err = proc.stderr.read() if proc.stderr else b""
    return {
        "command": "napari-restore " + " ".join(args),
        "returncode": rc,
        "killed": killed,
        "wall_s": round(time.perf_counter() - t0, 2),
        "peak_rss_mib": round(maxrss / 2**20, 1),
        "peak_rss_sampled_mib": round(sampled / 2**20, 1),
        "stderr_tail": err.decode(errors="replace")[-400:],
    }


def count_planes(folder: Path) -> int:
    return sum(1 for f in folder.glob("*.tif")) if folder.is_dir() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied)")
    parser.add_argument("--planes", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction written, then kill")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the folders")
    args = parser.parse_args(argv)

    import tifffile

    work = args.work
    if work.exists():
        shutil.rmtree(work)
    inp, out1, out2 = work / "raw", work / "out_full", work / "out_resumed"
    need = 3 * args.planes * args.size**2 * 2
    free = shutil.disk_usage(work.parent).free
    if free < need * 1.1:
        raise SystemExit(f"{free / 2**30:.1f} GiB free, {need / 2**30:.1f} GiB needed")
    result: dict[str, Any] = {
        "planes": args.planes,
        "plane_shape": [args.size, args.size],
        "dtype": "uint16",
        "input_gib": round(args.planes * args.size**2 * 2 / 2**30, 2),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_at_start": os.getloadavg(),
            "niceness": os.nice(0),
        },
    }
    try:
        print(f"writing {args.planes} planes of {args.size}^2 to {inp} ...", flush=True)
        result["generate_s"] = round(make_folder(inp, args.planes, args.size), 1)
        common = ["--count", "0", "-q"]

        print("run 1: whole folder", flush=True)
        full = run_cli(["simulate", str(inp), str(out1), *common])
        full["planes_written"] = count_planes(out1)
        full["planes_per_s"] = round(args.planes / full["wall_s"], 2)
        result["full_run"] = full
        print(json.dumps(full, indent=1), flush=True)

        print(f"run 2: killed at {args.kill_at:.0%} of the planes, then resumed", flush=True)
        target = int(args.kill_at * args.planes)
        killed = run_cli(
            ["simulate", str(inp), str(out2), *common],
            kill_when=lambda: count_planes(out2) >= target,
        )
        killed["planes_written"] = count_planes(out2)
        result["killed_run"] = killed
        print(json.dumps(killed, indent=1), flush=True)
        before = {f.name: f.stat().st_mtime_ns for f in out2.glob("*.tif")}
        resumed = run_cli(["simulate", str(inp), str(out2), *common])
        after = {f.name: f.stat().st_mtime_ns for f in out2.glob("*.tif")}
        resumed["planes_written"] = sum(1 for n, t in after.items() if before.get(n) != t)
        resumed["planes_kept"] = sum(1 for n, t in before.items() if after.get(n) == t)
        resumed["complete"] = (out2 / ".napari-restore-complete.json").exists()
        result["resumed_run"] = resumed
        print(json.dumps(resumed, indent=1), flush=True)

        picks = np.unique(np.linspace(0, args.planes - 1, 25).round().astype(int))
        same = all(
            np.array_equal(tifffile.imread(out1 / f"z{z}.tif"), tifffile.imread(out2 / f"z{z}.tif"))
            and np.array_equal(
                tifffile.imread(out1 / f"z{z}.tif"), tifffile.imread(inp / f"z{z}.tif")
            )
            for z in picks
        )
        result["sampled_planes_compared"] = len(picks)
        result["resumed_equals_full_and_input"] = bool(same)
        result["leftover_temporary_files"] = len(list(out2.glob(".*.part")))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
