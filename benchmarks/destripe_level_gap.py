"""How much of bar 1's shortfall is the plane's overall level, for the model *and* the peers.

Bar 1 of the destriping issue (the built-in model >= 3 dB mean PSNR ahead of the best swept
classical peer on each stripe type, stripe model and kind of image) is met on the simulator's
stripes and the independent regular ones, not on the independent and blind Gaussian and tilted
ones. Multiplicative stripes that cover most of a plane (dense, heavy-tailed shadows) dim the
whole plane; how much, nothing in the striped image can say (a uniformly dimmer sample looks
the same), and bar 3 forbids lifting real images to guess it. ``destripe_inference_variants.py``
showed that one gain per crop chosen with the ground truth adds 0.3 to 2.5 dB to the model's set
means. This measures the same for every method, so that the comparison with the peers can be
read with and without that unidentifiable part:

- ``PSNR``: as ``bench_destripe.py`` (output clipped to [0, 1], data range of the clean crop);
- ``gain-matched PSNR``: the output times the one factor per crop that brings it closest to
  the truth (least squares, then clipped), for the striped input, each peer and the model alike.

Peers run at the settings their stored sweeps chose per stripe type (the ``bench_destripe.py``
results of each stripe model in ``results/destripe_heldout_cpu/<generator>/``); the best peer
is picked per kind of image, separately for each column (the most favourable peer each time).
The model runs through the default ``napari_restore.destripe`` pipeline, as the benchmark does.
Multiplicative stripes, the benchmark's seeds (``destripe_inference_variants.striped_sets``).

Usage (project venv with the peers of ``requirements-peers.txt``; under a minute on the 2-core
CPU, one torch thread)::

    PYTHONPATH=src python benchmarks/destripe_level_gap.py --data-dir ../shared/data \\
        --out benchmarks/results/destripe_heldout_cpu/level_gap
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _destripe_data as bd
import _destripe_peers as bp
from _results import RunClock, results_parser, save_results
from destripe_inference_variants import striped_sets

RESULTS = Path(__file__).parent / "results" / "destripe_heldout_cpu"
CATEGORIES = ("light-sheet", "dense", "sparse")


def gain_matched(output: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """PSNR of ``output`` times its least-squares gain against ``clean``, and that gain."""
    out = bd.clip01(output)
    denom = float(np.sum(out * out))
    gain = float(np.sum(out * clean) / denom) if denom > 0 else 1.0
    return bd.fast_psnr(out * gain, clean), gain


def scores(outputs: list[np.ndarray], cleans: list[np.ndarray]) -> list[dict[str, float]]:
    """Per crop: PSNR, gain-matched PSNR and the matching gain."""
    rows = []
    for o, c in zip(outputs, cleans, strict=True):
        matched, gain = gain_matched(o, c)
        rows.append({"psnr": bd.fast_psnr(o, c), "matched": matched, "gain": gain})
    return rows


def stored_peer_params(peer_dir: Path, kind: str) -> dict[str, dict[str, Any]]:
    """The settings each peer's stored sweep chose for one stripe type (multiplicative)."""
    res = json.loads((peer_dir / "results.json").read_text())
    rows = res["results"]["multiplicative"][kind]
    return {r["method"]: r["params"] for r in rows if r["kind"] == "peer"}


def run(data_dir: Path, model: str) -> dict[str, Any]:
    """Every method on every multiplicative stripe set; per crop scores."""
    import torch

    from napari_restore import destripe, load_destripe_model

    torch.set_num_threads(1)
    crops = bd.load_heldout(data_dir)
    cleans = [c.clean for c in crops]
    net = load_destripe_model(model, "cpu")
    peers = {p.name: p for p in bp.available_peers(list(bp.PEERS))[0]}
    sets: dict[str, Any] = {}
    for (gen, kind), striped in striped_sets(crops).items():
        methods = {"striped input": scores(striped, cleans)}
        for name, params in stored_peer_params(RESULTS / gen, kind).items():
            if name in peers:
                methods[name] = scores(peers[name].run(striped, params), cleans)
        ours = [
            destripe(x, model=net, device="cpu", direction="horizontal", output_dtype="input")
            for x in striped
        ]
        methods["ours"] = scores(ours, cleans)
        sets[f"{gen} {kind}"] = methods
        print(
            f"{gen} {kind}: "
            + ", ".join(
                f"{m} {np.mean([r['psnr'] for r in v]):.2f} / "
                f"{np.mean([r['matched'] for r in v]):.2f}"
                for m, v in methods.items()
            ),
            flush=True,
        )
    return {
        "crops": [{"name": c.name, "category": bd.category(c)} for c in crops],
        "sets": sets,
    }


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """Per set and kind of image: the means of each column and the model's lead over the best
    peer in each."""
    cats = [c["category"] for c in res["crops"]]
    out: dict[str, Any] = {}
    for name, methods in res["sets"].items():
        out[name] = {}
        for cat in (*CATEGORIES, "all"):
            idx = [i for i, c in enumerate(cats) if cat in ("all", c)]
            row: dict[str, Any] = {}
            for col in ("psnr", "matched"):
                means = {m: float(np.mean([v[i][col] for i in idx])) for m, v in methods.items()}
                peer_means = {m: x for m, x in means.items() if m not in ("striped input", "ours")}
                best = max(peer_means, key=peer_means.get)
                row[col] = {
                    "input": means["striped input"],
                    "best peer": peer_means[best],
                    "best peer name": best,
                    "ours": means["ours"],
                    "lead": means["ours"] - peer_means[best],
                }
            row["ours mean gain"] = float(np.mean([methods["ours"][i]["gain"] for i in idx]))
            out[name][cat] = row
    return out


def to_markdown(res: dict[str, Any]) -> str:
    """The lead over the best peer with and without the plane's level, per set and kind."""
    lines = [
        "# Bar 1 with and without the plane's level (held-out crops, multiplicative stripes)",
        "",
        f"`{res['command']}`; model {res['model']}; CPU, one torch thread, load average "
        f"{res['load_average_start']} at the start, {res['load_average_end']} at the end; "
        f"{res['seconds']:.0f} s.",
        "",
        "Mean PSNR (dB) per kind of image: input / best peer / ours, and ours minus the best "
        "peer. *Gain-matched*: every output (the striped input's, each peer's, ours) times its "
        "own least-squares gain against the truth, one per crop. *Gain*: the mean of the "
        "model's matching gains (1 = the level was right).",
        "",
        "| stripes | kind | PSNR: input / best peer / ours | lead | gain-matched: input / "
        "best peer / ours | lead | gain |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, cats in res["summary"].items():
        for cat, row in cats.items():
            p, m = row["psnr"], row["matched"]
            lines.append(
                f"| {name} | {cat} | {p['input']:.2f} / {p['best peer']:.2f} / {p['ours']:.2f} "
                f"| {p['lead']:+.2f} | {m['input']:.2f} / {m['best peer']:.2f} / "
                f"{m['ours']:.2f} | {m['lead']:+.2f} | {row['ours mean gain']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run; write ``results.json`` and ``results.md`` to ``--out``."""
    ap = results_parser(__doc__)
    ap.add_argument("--model", default="builtin")
    args = ap.parse_args(argv)
    clock = RunClock()
    res = run(args.data_dir, args.model)
    res |= clock.record("destripe_level_gap.py", argv) | {"model": args.model}
    res["summary"] = summary(res)
    md = to_markdown(res)
    save_results(args.out, res, md)
    print(md)
    return res


if __name__ == "__main__":
    main()
