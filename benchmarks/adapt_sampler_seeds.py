"""Which stripes per-image adaptation should draw, measured over two seeds (held-out crops).

Per-image adaptation (``napari_restore.destripe.adapt``) fine-tunes a copy of the network on the
image's own destriped planes under fresh random stripes. Until 2026-12-02 the API drew those
stripes with the shares the model was trained with (for the built-in model: brightening fields
0.5, absorber shadows 0.5, tilted stripes twice as often), while ``bench_destripe.py --adapt``
passed a bare network and so measured the plain draw (darkening stripes of the three kinds in
equal shares). This compares those draws and a third on the hardest sets, with two seeds each,
because one seed's crop-to-crop spread is several dB:

- ``unadapted``: the default pipeline;
- ``plain, seed S``: adapted with darkening stripes of the three kinds, equal shares, in the
  model's modes (what the benchmark measured before 2026-12-02);
- ``as trained, seed S``: adapted with the stripe shares recorded in the model's metadata;
- ``no brightening, seed S``: the same without brightening fields (kinds and shadow share as
  trained; what adaptation draws since 2026-12-02);
- ``varied profiles, seed S``: the same with the shadows' ``"varied"`` cross-sections
  (generalised-Gaussian, lopsided, haloed; ``napari_restore.destripe.shadows``), which the
  built-in model was not trained on.

Usage (project venv; about 50 CPU minutes for the four default sets, one torch thread; run
one process per set list to use both cores)::

    PYTHONPATH=src python benchmarks/adapt_sampler_seeds.py --data-dir ../shared/data \\
        --sets independent:gaussian,independent:tilted --out out/adapt_sampler/independent
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _destripe_data as bd
from _results import command_line, load_average, results_parser, save_results
from destripe_inference_variants import striped_sets

DEFAULT_SETS = "independent:gaussian,independent:tilted,blind:gaussian,blind:tilted"
STEPS = 40
SEEDS = (0, 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison; write ``results.json`` and ``results.md`` to ``--out``."""
    ap = results_parser(__doc__)
    ap.add_argument("--sets", default=DEFAULT_SETS, help="generator:type,... (bench names)")
    ap.add_argument("--draws", default="plain,as trained", help="which draws, comma-separated")
    args = ap.parse_args(argv)
    import torch

    from napari_restore import destripe
    from napari_restore.core.progress import run_to_end
    from napari_restore.destripe.adapt import fine_tune_progress
    from napari_restore.destripe.data import NORM_PERCENTILES, intensity_range, normalise
    from napari_restore.destripe.infer import load_destripe_model

    torch.set_num_threads(1)
    t0, load0 = time.perf_counter(), load_average()
    crops = bd.load_heldout(args.data_dir)
    net, meta = load_destripe_model("builtin", "cpu")
    trained = meta["training"]["config"]
    draws = {
        "plain": {"modes": tuple(trained.get("modes", ("multiplicative",)))},
        "as trained": {
            "modes": tuple(trained.get("modes", ("multiplicative",))),
            "mix": trained.get("stripe_mix", (1.0, 1.0, 1.0)),
            "bright_fraction": float(trained.get("bright_fraction", 0.0)),
            "shadow_fraction": float(trained.get("shadow_fraction", 0.0)),
        },
    }
    draws["no brightening"] = {**draws["as trained"], "bright_fraction": 0.0}
    draws["varied profiles"] = {**draws["no brightening"], "shadow_profiles": "varied"}
    draws = {k: draws[k] for k in args.draws.split(",")}

    def pipeline(x: np.ndarray, model: torch.nn.Module) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        return destripe(
            x, model=(model, meta), device="cpu", direction="horizontal", output_dtype="float32"
        )

    sets = striped_sets(crops)
    per_set: dict[str, list[dict[str, float]]] = {}
    means: dict[str, dict[str, float]] = {}
    for name in args.sets.split(","):
        gen, kind = name.split(":")
        rows = []
        for x, crop in zip(sets[(gen, kind)], crops, strict=True):
            y0 = pipeline(x, net)
            row = {"unadapted": bd.fast_psnr(y0, crop.clean)}
            keys = [(draw, seed) for draw in draws for seed in SEEDS]
            if np.array_equal(y0, x):  # left as it was: the API adapts to nothing
                row.update({f"{d}, seed {s}": row["unadapted"] for d, s in keys})
            else:
                lo, hi = intensity_range(x, NORM_PERCENTILES)
                target = [normalise(y0, lo, hi).astype(np.float32)]
                for draw, seed in keys:
                    kw = draws[draw]
                    tuned = run_to_end(fine_tune_progress(net, target, STEPS, seed=seed, **kw))
                    row[f"{draw}, seed {seed}"] = bd.fast_psnr(pipeline(x, tuned), crop.clean)
            rows.append(row)
        per_set[name] = rows
        means[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(name, ", ".join(f"{k} {v:.2f}" for k, v in means[name].items()), flush=True)
    res: dict[str, Any] = {
        "command": command_line("adapt_sampler_seeds.py", argv),
        "steps": STEPS,
        "draws": {
            k: {a: list(b) if isinstance(b, tuple) else b for a, b in v.items()}
            for k, v in draws.items()
        },
        "load_average_start": load0,
        "crops": [c.name for c in crops],
        "per_crop": per_set,
        "means": means,
    }
    res["seconds"] = time.perf_counter() - t0
    save_results(args.out, res, to_markdown(res))
    return res


def to_markdown(res: dict[str, Any]) -> str:
    """Mean PSNR per set and draw."""
    sets = list(res["means"])
    keys = list(res["means"][sets[0]])
    lines = [
        "# Per-image adaptation: which stripes to draw (held-out crops, two seeds)",
        "",
        f"`{res['command']}`; {res['steps']} steps; CPU, one torch thread, load average "
        f"{res['load_average_start']} at the start; {res['seconds']:.0f} s.",
        "",
        "Mean PSNR (dB) over the 16 held-out crops.",
        "",
        "| draw | " + " | ".join(sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{res['means'][s][k]:.2f}" for s in sets) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
