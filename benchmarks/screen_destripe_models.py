"""Screen candidate destriping models quickly against the rules used to ship one.

For each model file: mean PSNR of the default ``destripe`` pipeline on the 16 held-out crops with
the stripes of all three stripe models (the nine multiplicative sets of ``bench_destripe.py
--set heldout``, same crops and seeds, so the numbers equal its "ours" rows), the clean check
(bar 2: >= 45 dB and |mean change| <= 1 % on every clean crop) and the log-domain stripe meter
on the real striped images (bar 3: SPIM and both SmartSPIM images; with the removal of the
stripes finer than an eighth of the plane in the JSON, fourth value). No peers: their rows are in
``results/destripe_heldout_cpu/{project,independent,blind}/``. About 30 s per model on one CPU
thread; run the full benchmarks on the one that is chosen. ``--additive`` adds the nine
additive sets (the same crops and seeds, ``bench_destripe.py --modes additive``), reported
beside the shipping means, not in them.

Usage (project venv)::

    PYTHONPATH=src python benchmarks/screen_destripe_models.py --data-dir ../shared/data \
        builtin runs/P5_step12807.safetensors ... [--additive] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _destripe_data as bd
from _results import DATA_DIR
from destripe_inference_variants import striped_sets


def real_images(data_dir: Path) -> dict[str, np.ndarray]:
    """The real striped images of bar 3."""
    import imageio.v3 as iio
    import tifffile

    import napari_restore

    bundled = Path(napari_restore.__file__).parent / "data" / "smartspim_striped.tif"
    return {
        "SPIM": tifffile.imread(data_dir / "real_striped_spim_tosi.tif"),
        "SmartSPIM (AIND)": iio.imread(data_dir / "real_striped_smartspim_aind.png")[..., 0],
        "SmartSPIM (bundled)": tifffile.imread(bundled),
    }


def screen(
    model: str, crops: list[bd.Crop], sets: dict, real: dict, additive: dict | None = None
) -> dict[str, Any]:
    """Set means, clean check and real-image meter of one model (and the additive sets'
    means, when given)."""
    from napari_restore import destripe, load_destripe_model
    from napari_restore.stripe_meter import measure_stripes

    net = load_destripe_model(model, "cpu")

    def run(x: np.ndarray) -> np.ndarray:
        return destripe(x, model=net, device="cpu", direction="horizontal", output_dtype="input")

    def set_means(striped: dict) -> dict[str, float]:
        return {
            f"{gen} {kind}": float(
                np.mean([bd.fast_psnr(run(x), c.clean) for x, c in zip(xs, crops, strict=True)])
            )
            for (gen, kind), xs in striped.items()
        }

    means = set_means(sets)
    clean = []
    for c in crops:
        y = np.clip(run(c.clean), 0, 1)
        clean.append(
            (bd.fast_psnr(y, c.clean), 100 * (float(y.mean()) / float(c.clean.mean()) - 1))
        )
    meter = {}
    for name, img in real.items():
        m = measure_stripes(img, destripe(img, model=net, device="cpu"), domain="log")
        removed = 100 * m.stripe_removed if m.stripe_removed is not None else float("nan")
        meter[name] = [
            removed,
            100 * m.structure_changed,
            100 * m.median_change,
            100 * m.fine_stripe_removed,
        ]
    values = list(means.values())
    extra = {}
    if additive is not None:
        extra["additive_means"] = set_means(additive)
        extra["mean_additive"] = float(np.mean(list(extra["additive_means"].values())))
    return extra | {
        "means": means,
        "mean_simulator_independent": float(np.mean(values[:6])),
        "mean_blind": float(np.mean(values[6:])),
        "mean_all": float(np.mean(values)),
        "clean_within_bar2": int(sum(p >= 45 and abs(d) <= 1 for p, d in clean)),
        "clean_worst_psnr": float(min(p for p, _ in clean)),
        "clean_largest_change_pct": float(max(abs(d) for _, d in clean)),
        "real_log": meter,
    }


def line(name: str, r: dict[str, Any]) -> str:
    """One row of the printed table."""
    spim = r["real_log"]["SPIM"]
    smart = min(r["real_log"]["SmartSPIM (AIND)"][0], r["real_log"]["SmartSPIM (bundled)"][0])
    return (
        f"| {name} | "
        + " / ".join(f"{v:.2f}" for v in r["means"].values())
        + f" | {r['mean_simulator_independent']:.2f} | {r['mean_blind']:.2f} | "
        f"{r['clean_within_bar2']}/16 ({r['clean_worst_psnr']:.1f} dB, "
        f"{r['clean_largest_change_pct']:.2f} %) | {spim[0]:.1f} % / {spim[1]:.2f} % / "
        f"{spim[2]:+.1f} % | {smart:.0f} % |"
        + (f" {r['mean_additive']:.2f} |" if "mean_additive" in r else "")
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Screen the models given; print a Markdown table, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("models", nargs="+", help="builtin or model files")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--additive", action="store_true", help="also the nine additive sets")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    crops = bd.load_heldout(args.data_dir)
    sets, real = striped_sets(crops), real_images(args.data_dir)
    additive = striped_sets(crops, "additive") if args.additive else None
    print(
        "| model | " + " / ".join(f"{g[0]}{k[0]}" for g, k in sets) + " (dB) | mean "
        "sim + ind | mean blind | clean crops within bar 2 (worst) | SPIM log: removed / "
        "structure / median | SmartSPIM log removed (lower) |"
        + (" mean of the nine additive sets |" if additive else "")
    )
    print("|---|---|---|---|---|---|---|" + ("---|" if additive else ""))
    out = {}
    for model in args.models:
        t0 = time.perf_counter()
        out[model] = screen(model, crops, sets, real, additive)
        out[model]["seconds"] = time.perf_counter() - t0
        print(line(Path(model).stem, out[model]), flush=True)
        if args.json is not None:
            args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
