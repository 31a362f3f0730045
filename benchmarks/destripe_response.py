"""How much of one stripe the destriper takes out, by cross-section, width, depth and extent.

The held-out benchmark says *that* the built-in model falls short on stripes unlike its training
sampler's, and ``destripe_level_gap.py`` that what it leaves is stripe structure, not level.
This says *which* stripes: one synthetic horizontal attenuation stripe at a time, across the
middle row of a clean held-out crop, ``clean * (1 - depth * profile(y) * along(x))``, with

- cross-section ``profile``: Gaussian ``exp(-d²/2g²)`` (the simulator's), Lorentzian
  ``1/(1 + (d/g)²)`` (heavy tails) or flat-topped ``exp(-(|d|/g)⁴)``, ``g`` 1.5, 4 or 9 px;
- ``depth`` 0.15, 0.3 or 0.6 (the stripe centre keeps 85, 70 or 40 % of the light);
- ``along``: through the whole crop, or a shadow from an absorber at x = 30 px that fades
  (exponential, length 120 px).

Score: the share of the stripe's log-depth that comes back, the least-squares slope of the
method's log-correction ``log(out + e) - log(in + e)`` on the true ``-log(1 - depth * ...)``
over the stripe's pixels (where it is at least 5 % of its peak) on content above the crop's
30th percentile; 1 = all of it, 0 = none, ``e`` 1 % of the range. For the network alone
(``only_striped=False, cleanup=False``) and the default pipeline. Four crops: LSTree nuclei
(light-sheet), ClearMap brain (light-sheet), neocortex CTIP2 (dense), TERRA foci (sparse).

Also where the network looks (``reach``): the share of the gradient of one output pixel with
respect to the input that lies near it, and along its row far from it.

Usage (project venv; about 30 s per model on the 2-core CPU, one torch thread)::

    PYTHONPATH=src python benchmarks/destripe_response.py --data-dir ../shared/data \\
        --out benchmarks/results/destripe_heldout_cpu/response [--model FILE ...]
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _destripe_data as bd
from _results import RunClock, results_parser, save_results

CROPS = (
    "lsfm_organoid_nuclei_lstree",
    "lsfm_idisco_brain_clearmap",
    "fluo_neocortex_ctip2_ndev",
    "fluo_nuclei_terra_foci_spotiflow",
)
PROFILES = ("gaussian", "lorentzian", "flat-topped")
WIDTHS = (1.5, 4.0, 9.0)
DEPTHS = (0.15, 0.3, 0.6)
EXTENTS = ("through", "fading")
EPS = 0.01


def stripe(shape: tuple[int, int], profile: str, width: float, depth: float, extent: str):
    """Transmission ``1 - depth * profile(y) * along(x)`` of one stripe across the middle row."""
    h, w = shape
    d = np.arange(h, dtype=np.float64)[:, None] - h / 2
    if profile == "gaussian":
        p = np.exp(-0.5 * (d / width) ** 2)
    elif profile == "lorentzian":
        p = 1.0 / (1.0 + (d / width) ** 2)
    else:
        p = np.exp(-((np.abs(d) / width) ** 4))
    x = np.arange(w, dtype=np.float64)[None, :]
    along = (
        np.ones_like(x) if extent == "through" else np.where(x >= 30, np.exp(-(x - 30) / 120), 0)
    )
    return 1.0 - depth * p * along


def recovered(clean: np.ndarray, transmission: np.ndarray, out: np.ndarray, x: np.ndarray):
    """Share of the stripe's log-depth that the correction ``x -> out`` gives back."""
    true = -np.log(transmission)
    got = np.log(np.maximum(out, 0) + EPS) - np.log(np.maximum(x, 0) + EPS)
    mask = (true > 0.05 * true.max()) & (clean > np.percentile(clean, 30))
    return float(np.sum(got[mask] * true[mask]) / np.sum(true[mask] ** 2))


def run(crops: list[bd.Crop], net: tuple[Any, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every stripe on every crop through the network alone and the pipeline (``net``: a
    loaded model, as ``load_destripe_model`` returns it)."""
    from napari_restore import destripe

    rows = []
    for c, (profile, width, depth, extent) in itertools.product(
        crops, itertools.product(PROFILES, WIDTHS, DEPTHS, EXTENTS)
    ):
        t = stripe(c.clean.shape, profile, width, depth, extent)
        x = (c.clean * t).astype(np.float32)
        row: dict[str, Any] = {
            "crop": c.name,
            "profile": profile,
            "width": width,
            "depth": depth,
            "extent": extent,
        }
        for label, flags in (
            ("network", {"only_striped": False, "cleanup": False}),
            ("pipeline", {}),
        ):
            out = destripe(
                x, model=net, device="cpu", direction="horizontal", output_dtype="float32", **flags
            )
            row[label] = recovered(c.clean, t, out, x)
        rows.append(row)
    return rows


REACH_RADII = (16, 64)


def reach(crops: list[bd.Crop], net: tuple[Any, dict[str, Any]]) -> dict[str, float]:
    """Where the network looks: shares of ``|d out[centre] / d in|`` over the input.

    For each of the four crops, the gradient of the network's output at the centre pixel with
    respect to its input (the crop as the network sees one tile); the share of its absolute
    sum inside square windows of radius ``REACH_RADII``, and along the centre row (±2 px)
    beyond 64 px, where only a stripe running on across the tile puts anything. Mean over
    the crops.
    """
    import torch

    module = net[0].eval()
    shares: dict[str, list[float]] = {}
    for c in crops:
        x = torch.from_numpy(np.ascontiguousarray(c.clean, dtype=np.float32))[None, None]
        x.requires_grad_(True)
        h, w = c.clean.shape
        module(x)[0, 0, h // 2, w // 2].backward()
        g = x.grad[0, 0].abs().numpy().astype(np.float64)
        dy = np.abs(np.arange(h) - h // 2)[:, None]
        dx = np.abs(np.arange(w) - w // 2)[None, :]
        total = g.sum()
        for r in REACH_RADII:
            shares.setdefault(f"within {r} px", []).append(g[(dy <= r) & (dx <= r)].sum() / total)
        shares.setdefault("along the row beyond 64 px", []).append(
            g[(dy <= 2) & (dx > 64)].sum() / total
        )
    return {k: float(np.mean(v)) for k, v in shares.items()}


def table(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Mean share recovered over the crops, per stripe."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        name = f"{r['profile']} {r['width']:g} px, depth {r['depth']:g}, {r['extent']}"
        groups.setdefault(name, []).append(r[key])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def to_markdown(res: dict[str, Any]) -> str:
    """Share recovered per stripe (mean over the crops), per model, network and pipeline."""
    models = list(res["models"])
    lines = [
        "# How much of one stripe comes back (held-out crops, network alone / pipeline)",
        "",
        f"`{res['command']}`; CPU, one torch thread, load average {res['load_average_start']} "
        f"at the start; {res['seconds']:.0f} s.",
        "",
        "Share of the stripe's log-depth removed, mean over four crops (1 = all, 0 = none): "
        "network alone / default pipeline.",
        "",
        "| stripe | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    first = res["models"][models[0]]
    for name in first["network"]:
        cells = [
            f"{res['models'][m]['network'][name]:.2f} / {res['models'][m]['pipeline'][name]:.2f}"
            for m in models
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Mean over every stripe:", ""]
    reach_lines = [
        "",
        "Where the network looks (`reach`): share of |d out[centre] / d in| (mean "
        "over the four crops):",
        "",
    ]
    for m in models:
        net, pipe = res["models"][m]["network"], res["models"][m]["pipeline"]
        lines.append(
            f"- {m}: network {np.mean(list(net.values())):.2f}, "
            f"pipeline {np.mean(list(pipe.values())):.2f}"
        )
        if "reach" in res["models"][m]:
            reach_lines.append(
                f"- {m}: " + ", ".join(f"{k} {v:.3f}" for k, v in res["models"][m]["reach"].items())
            )
    if len(reach_lines) > 3:
        lines += reach_lines
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run; write ``results.json`` and ``results.md`` to ``--out``."""
    ap = results_parser(__doc__)
    ap.add_argument("--model", nargs="+", default=["builtin"], help="builtin and/or model files")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    clock = RunClock()
    from napari_restore import load_destripe_model

    crops = [c for c in bd.load_heldout(args.data_dir) if c.name in CROPS]
    res: dict[str, Any] = {"models": {}, "per_crop": {}}
    for model in args.model:
        net = load_destripe_model(model, "cpu")
        rows = run(crops, net)
        name = model if model == "builtin" else Path(model).stem
        res["per_crop"][name] = rows
        res["models"][name] = {k: table(rows, k) for k in ("network", "pipeline")}
        res["models"][name]["reach"] = reach(crops, net)
        print(f"{name}: done", flush=True)
    res |= clock.record("destripe_response.py", argv)
    md = to_markdown(res)
    save_results(args.out, res, md)
    print(md)
    return res


if __name__ == "__main__":
    main()
