"""Where the built-in destriper loses on the held-out crops: the stripe gate or the network?

Two checks on the 16 held-out crops (``_destripe_data.load_heldout``), clean and with the
multiplicative stripes of both stripe models (seeds as ``bench_destripe.py --seed 2024``):

1. **Gate.** Mean PSNR with the detection gate (planes without stripe evidence are returned
   unchanged, the default) and without it, on all crops and on the crops the gate missed.
2. **Mean of the correction.** The log-domain correction ``c = log(out + eps) - log(in + eps)``
   of the crops that were changed: its mean (DC) against its spread (AC), and the effect of
   capping ``|DC|`` at ``k * AC`` on every set (a candidate rule against the brightening of
   falsely flagged clean crops).

Usage: ``python benchmarks/analyse_destripe_gate.py --data-dir ../shared/data`` (CPU, ~1 min).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import numpy as np
import torch

import _destripe_data as bd
import napari_restore

spectral = importlib.import_module("napari_restore.destripe.spectral")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def correction(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    eps = spectral._log_offset(x)
    return np.log(np.maximum(y, 0) + eps) - np.log(np.maximum(x, 0) + eps), eps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    crops = bd.load_heldout(args.data_dir)
    truth = [c.clean.astype(np.float32) for c in crops]
    sets = {"clean": truth}
    for ti, kind in enumerate(bd.STRIPE_TYPES):
        seeds = [bd.crop_seed(2024, ti, ci) for ci in range(len(crops))]
        for gen, label in (("project", "simulator"), ("independent", "independent")):
            sets[f"{label} {kind}"] = bd.striped_crops(crops, gen, kind, "multiplicative", seeds)

    print("| set | detected | gated | ungated | gated, missed crops | ungated, missed crops |")
    print("|---|---|---|---|---|---|")
    outputs = {}
    for name, xs in sets.items():
        gated = [np.asarray(napari_restore.destripe(x, device="cpu")) for x in xs]
        ungated = [
            np.asarray(napari_restore.destripe(x, device="cpu", only_striped=False)) for x in xs
        ]
        outputs[name] = gated
        ref = xs if name == "clean" else truth
        found = [bool(spectral.stripe_evidence(x).striped) for x in xs]
        pg = np.array([psnr(y, r) for y, r in zip(gated, ref, strict=True)])
        pu = np.array([psnr(y, r) for y, r in zip(ungated, ref, strict=True)])
        missed = ~np.array(found)
        miss = f"{pg[missed].mean():.2f} | {pu[missed].mean():.2f}" if missed.any() else "- | -"
        print(f"| {name} | {sum(found)}/{len(xs)} | {pg.mean():.2f} | {pu.mean():.2f} | {miss} |")

    print("\n| set | changed crops | DC / AC: 10th pct, median, 90th pct |")
    print("|---|---|---|")
    for name, xs in sets.items():
        ratios = []
        for x, y in zip(xs, outputs[name], strict=True):
            c, _ = correction(x, y)
            if np.abs(c).max() > 1e-6:
                ratios.append(c.mean() / max((c - c.mean()).std(), 1e-12))
        q = np.percentile(ratios, [10, 50, 90]) if ratios else [np.nan] * 3
        print(f"| {name} | {len(ratios)} | {q[0]:.2f}, {q[1]:.2f}, {q[2]:.2f} |")

    print("\n| DC cap k | worst clean crop | " + " | ".join(list(sets)[1:]) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for k in (None, 1.5, 1.0, 0.75, 0.5):
        cells = []
        for name, xs in sets.items():
            scores, shifts = [], []
            for i, (x, y) in enumerate(zip(xs, outputs[name], strict=True)):
                c, eps = correction(x, y)
                if k is not None and np.abs(c).max() > 1e-6:
                    dc, ac = c.mean(), (c - c.mean()).std()
                    c = c - dc + np.clip(dc, -k * ac, k * ac)
                    y = np.exp(np.log(np.maximum(x, 0) + eps) + c) - eps
                scores.append(psnr(np.clip(y, 0, None), x if name == "clean" else truth[i]))
                shifts.append(100 * (float(y.mean()) / float(x.mean()) - 1))
            if name == "clean":
                cells.append(f"{min(scores):.1f} dB, {max(shifts, key=abs):+.1f} %")
            else:
                cells.append(f"{np.mean(scores):.2f}")
        print(f"| {'none' if k is None else k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
