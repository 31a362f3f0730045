"""Where the stripe meter's residual lies on the real striped images: at which scales.

The stripe meter (:func:`napari_restore.stripe_meter.measure_stripes`) sums the input's excess
power in the stripe wedge over every ring of the spectrum where it is significant, and the
output's excess on the same rings. This script splits both sums by ring bands (ring ``r`` holds
stripe periods of about ``edge / r`` pixels across the stripes) for the built-in destriper's
output on each real striped image, to tell fine streaks from sample-scale intensity changes.

Usage: ``python benchmarks/analyse_stripe_scales.py --data-dir ../shared/data`` (CPU, ~1 min).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import numpy as np
import torch

import napari_restore

meter = importlib.import_module("napari_restore.stripe_meter")
BANDS = ((0, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 100_000))


def split_by_scale(x: np.ndarray, y: np.ndarray) -> list[tuple[str, int, float, float]]:
    """Per ring band: (label, stripe rings, share of the input's excess, residual share).

    Residuals are signed, as the meter sums them (a band taken below its neighbours' level
    offsets one left above it), so the bands add up to the meter's residual.
    """
    geo = meter._geometry(*x.shape)
    sx = meter.periodic_spectrum(x.astype(np.float64))
    sy = meter.periodic_spectrum(y.astype(np.float64))
    px, py = sx.real**2 + sx.imag**2, sy.real**2 + sy.imag**2
    wedge = meter._best_wedge(px, meter._log_power(px), geo, "horizontal", 30.0)
    ex_in, _, _ = meter._ring_excess(px, meter._log_power(px), geo, wedge.mask, wedge.neighbours)
    ex_out, _, _ = meter._ring_excess(py, meter._log_power(py), geo, wedge.mask, wedge.neighbours)
    rings = np.flatnonzero(wedge.rings)
    total = ex_in[rings].sum()
    rows = []
    for lo, hi in BANDS:
        sel = rings[(rings >= lo) & (rings < hi)]
        label = f"rings {lo}-{hi - 1}" if hi < 100_000 else f"rings {lo}+"
        rows.append(
            (
                label,
                len(sel),
                100 * ex_in[sel].sum() / total,
                100 * ex_out[sel].sum() / total,
            )
        )
    return rows


def main() -> None:
    import bench_stripe_meter as bsm

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    for label, image in bsm.load_real(args.data_dir):
        x = np.asarray(image, np.float32)
        y = np.asarray(napari_restore.destripe(image, device="cpu"), np.float32)
        m = meter.measure_stripes(image, y)
        edge = max(x.shape)
        print(f"\n## {label}: stripes removed {100 * m.stripe_removed:.0f} % (all rings)\n")
        print("| band | periods across the stripes | stripe rings | input excess | residual |")
        print("|---|---|---|---|---|")
        rows = split_by_scale(x, y)
        for (name, n, share, left), (lo, hi) in zip(rows, BANDS, strict=True):
            periods = f"> {edge // max(hi, 1)} px" if lo == 0 else f"{edge // hi}-{edge // lo} px"
            print(f"| {name} | {periods} | {n} | {share:.1f} % | {left:.1f} % |")
        fine = [r for r in rows if r[0] != "rings 0-7"]
        kept = sum(r[2] for r in fine)
        if kept > 0:
            removed = 100 * (1 - max(sum(r[3] for r in fine), 0.0) / kept)
            print(f"\nRemoved at rings 8 and up (periods under 1/8 of the plane): {removed:.1f} %")


if __name__ == "__main__":
    main()
