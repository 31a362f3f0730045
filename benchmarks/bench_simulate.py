"""Speed of the stripe simulator: seconds per 2048 x 2048 image for every type and mode.

Run pinned to one core to match the requirement ("well under a second on one CPU core"):
``taskset -c 0 python benchmarks/bench_simulate.py``. Reports the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from napari_restore.simulate import StripeParams, simulate_stripes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = platform.processor() or platform.machine()
    print(f"{cpu}, {cores} core(s) usable, numpy {np.__version__}")
    image = (np.random.default_rng(0).random((args.size, args.size)) * 4000).astype(np.uint16)
    cases = [
        ("regular", {}),
        ("gaussian", {}),
        ("gaussian", {"length": (200.0, 2000.0)}),
        ("tilted", {}),
        ("tilted", {"length": (200.0, 2000.0)}),
        ("tilted", {"density": 10.0, "width": (2.0, 8.0)}),
        ("bands", {}),
    ]
    print(f"{'type':<10} {'mode':<15} {'extra':<34} {'median s':>9} {'min s':>7}")
    for kind, extra in cases:
        for mode in ("additive", "multiplicative"):
            params = StripeParams(kind=kind, mode=mode, **extra)
            simulate_stripes(image, params)  # warm-up
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                simulate_stripes(image, params)
                times.append(time.perf_counter() - t0)
            label = ", ".join(f"{k}={v}" for k, v in extra.items()) or "defaults"
            print(f"{kind:<10} {mode:<15} {label:<34} {np.median(times):9.3f} {min(times):7.3f}")


if __name__ == "__main__":
    main()
