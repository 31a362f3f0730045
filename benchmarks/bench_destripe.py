"""Destriping benchmark: our model against classical peers on held-out real images.

For each stripe type of Wei et al. (2022) -- regular horizontal, Gaussian horizontal, Gaussian
tilted -- the clean crops (see ``_destripe_data.py``) get stripes from ``simulate_stripes`` with
the project's default parameters and fixed seeds. Reported per type, as means over the crops:
MAE / PSNR / SSIM (``napari_restore.metrics``, data range 1 = that of the clean crops) of

- the striped input,
- each classical peer (``_destripe_peers.py``) at its best setting for that type, chosen by mean
  PSNR over the same crops from a staged parameter sweep (generous to the peers: per-type
  tuning on the test crops themselves),
- our model through ``napari_restore.destripe`` (one model, no tuning), plus ``--ablation``
  model files,

with seconds per megapixel (CPU; ours also on a GPU when torch sees one). Every output is
clipped to [0, 1], the range of the clean crop, before the metrics (the same rule for all).
Timings exclude file reading and writing. The machine is shared, so timings are indicative.

Usage (from the repository root, in the benchmark environment of ``benchmarks/README.md``)::

    PYTHONPATH=src /work/bench-venv/bin/python benchmarks/bench_destripe.py --quick
    PYTHONPATH=src /work/bench-venv/bin/python benchmarks/bench_destripe.py \
        --data-dir ../shared/data --model builtin --out out/bench_destripe

Writes ``results.json``, ``results.md`` (also printed) and ``sweeps.json`` (every setting tried)
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _blind_stripes as blind
import _destripe_data as bd
import _destripe_peers as bp
import _independent_stripes as ind
from _destripe_data import clip01, fast_psnr  # figures.py imports them from here
from napari_restore.metrics import compute_metrics

CLAIM_MARGIN_DB = 3.0


# ---------------------------------------------------------------------------------------------
# evaluation helpers


def score_outputs(outputs: Sequence[np.ndarray], cleans: Sequence[np.ndarray]) -> dict[str, Any]:
    """Per-crop and mean MAE/PSNR/SSIM of outputs (clipped to [0, 1]) against the clean crops."""
    per = []
    for out, clean in zip(outputs, cleans, strict=True):
        m = compute_metrics(clip01(out), clean.astype(np.float64))
        per.append({"mae": m.mae, "psnr": m.psnr, "ssim": m.ssim, "data_range": m.data_range})
    return {
        "mae": float(np.mean([p["mae"] for p in per])),
        "psnr": float(np.mean([p["psnr"] for p in per])),
        "ssim": float(np.mean([p["ssim"] for p in per])),
        "per_crop": per,
    }


def _finite_psnr(value: float) -> float | str:
    """JSON has no infinity: an unchanged image's PSNR is written as "inf"."""
    return value if math.isfinite(value) else "inf"


def megapixels(images: Sequence[np.ndarray]) -> float:
    """Total size of the images in megapixels (1e6 pixels)."""
    return sum(im.size for im in images) / 1e6


# ---------------------------------------------------------------------------------------------
# our model


class Ours:
    """Our model evaluated through the public ``napari_restore.destripe`` API.

    The model is loaded once with ``load_destripe_model`` and passed to ``destripe`` as the
    loaded module where the API accepts that (so timings exclude file reading); otherwise the
    model spec is passed and the separately measured load time is subtracted from each call.
    """

    def __init__(
        self,
        spec: str,
        device: str,
        tile: int | None,
        overlap: int | None,
        batch_size: int | None,
        network_only: bool = False,
        adapt_steps: int = 0,
    ) -> None:
        from napari_restore import destripe, load_destripe_model

        self.spec, self.device = spec, device
        # The network alone: every plane through it, no spectral clean-up (the API's defaults
        # skip planes without stripe evidence and clean up the stripe wedge afterwards).
        self.api_flags: dict[str, Any] = (
            {"only_striped": False, "cleanup": False} if network_only else {}
        )
        if adapt_steps:  # per-image adaptation (napari_restore.destripe.adapt)
            self.api_flags["adapt_steps"] = adapt_steps
        self.tile, self.overlap, self.batch_size = tile, overlap, batch_size
        self._destripe = destripe
        t0 = time.perf_counter()
        self.module, meta = load_destripe_model(spec, device)
        self.load_seconds = time.perf_counter() - t0
        self.metadata = _jsonable(meta)
        # The network with its metadata, as the CLI and the dock pass it: a bare module would
        # lose the training config, which per-image adaptation draws its stripes from (before
        # 2026-12-02 the adapted rows were measured with the default sampler by this slip).
        self.model_arg: Any = (self.module, meta)
        self.load_subtracted = 0.0
        probe = np.zeros((64, 64), np.float32)
        try:
            self._call(probe)
        except Exception:  # the API wants a spec: pass that, subtract the load time
            self.model_arg = spec
            self._call(probe)
            self.load_subtracted = self.load_seconds

    def _call(self, image: np.ndarray) -> np.ndarray:
        return self._destripe(
            image,
            model=self.model_arg,
            device=self.device,
            direction="horizontal",
            tile=self.tile,
            overlap=self.overlap,
            batch_size=self.batch_size,
            output_dtype="input",
            **self.api_flags,
        )

    def run(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Destriped image and the seconds it took (load time excluded)."""
        _sync(self.device)
        t0 = time.perf_counter()
        out = self._call(image)
        _sync(self.device)
        return out, max(time.perf_counter() - t0 - self.load_subtracted, 0.0)

    def settings(self) -> dict[str, Any]:
        """Tile settings and how the model was passed, for the report."""

        def show(v: int | None) -> int | str:
            return "API default" if v is None else v

        return {
            "model": self.spec,
            "device": self.device,
            "tile": show(self.tile),
            "overlap": show(self.overlap),
            "batch_size": show(self.batch_size),
            "model_passed_as": (
                "spec" if self.model_arg == self.spec else "loaded module with its metadata"
            ),
            "api_flags": dict(self.api_flags),
            "load_seconds": self.load_seconds,
            "load_seconds_subtracted_per_call": self.load_subtracted,
            "metadata": self.metadata,
        }


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def _jsonable(value: Any) -> Any:
    """Metadata made JSON-safe (unknown objects become their repr, truncated)."""
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        return repr(value)[:200]


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def speed_test(ours: Ours, image: np.ndarray, size: int, repeat: int) -> dict[str, Any]:
    """Seconds per megapixel of ``ours`` on a ``size`` x ``size`` image (median of runs)."""
    reps = math.ceil(size / min(image.shape))
    big = np.pad(image, [(0, reps * image.shape[0]), (0, reps * image.shape[1])], mode="symmetric")
    big = np.ascontiguousarray(big[:size, :size])
    ours.run(big)  # warm-up
    times = [ours.run(big)[1] for _ in range(repeat)]
    sec = float(np.median(times))
    return {"size": [size, size], "seconds": sec, "s_per_mp": sec / (size * size / 1e6)}


def load_ours(
    args: argparse.Namespace,
    spec: str,
    device: str,
    notes: list[str],
    network_only: bool = False,
    adapt_steps: int = 0,
) -> Ours | None:
    """Our model, or None with a note when the API or the model file is unavailable."""
    try:
        return Ours(
            spec, device, args.tile, args.overlap, args.batch_size, network_only, adapt_steps
        )
    except ImportError as exc:
        notes.append(
            f"model {spec} skipped: napari_restore.destripe / load_destripe_model are not "
            f"importable yet ({exc}); the peer part ran without it"
        )
    except Exception as exc:
        notes.append(f"model {spec} skipped: the model could not be loaded or run ({exc!r})")
    return None


# ---------------------------------------------------------------------------------------------
# report


def machine_info(device: str) -> dict[str, Any]:
    """CPU, library versions and devices."""
    import torch

    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device_ours": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_start": _loadavg(),
    }
    try:
        info["napari_restore"] = metadata.version("napari-restore")
    except metadata.PackageNotFoundError:
        from napari_restore import __version__

        info["napari_restore"] = f"{__version__} (source tree)"
    return info


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages (the machine is shared)."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def fmt_params(p: dict[str, Any] | None) -> str:
    """Compact ``key=value`` text of a setting."""
    if not p:
        return ""

    def val(v: Any) -> str:
        if isinstance(v, list | tuple):
            return "(" + ",".join(val(x) for x in v) + ")"
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={val(v)}" for k, v in p.items())


def claim_lines(rows: list[dict[str, Any]], label: str) -> list[str]:
    """'ours beats the best peer by >= 3 dB PSNR' for one type, as pass/fail lines."""
    peers = [r for r in rows if r["kind"] == "peer"]
    ours = [r for r in rows if r["kind"] == "ours"]
    if not ours:
        return [f"- {label}: n/a (our model was not evaluated)"]
    if not peers:
        return [f"- {label}: n/a (no peer was evaluated)"]
    best = max(peers, key=lambda r: r["psnr"])
    lines = []
    for r in ours:
        gain = r["psnr"] - best["psnr"]
        verdict = "PASS" if gain >= CLAIM_MARGIN_DB else "FAIL"
        lines.append(
            f"- {label}: **{verdict}** — {r['method']} {r['psnr']:.2f} dB vs best peer "
            f"{best['method']} {best['psnr']:.2f} dB: {gain:+.2f} dB "
            f"(needs ≥ +{CLAIM_MARGIN_DB:g})"
        )
    return lines


def _num(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.2f}"


def category_lines(res: dict[str, Any], by_type: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Mean PSNR / SSIM per kind of image (held-out set), with the claim per kind."""
    cats = [c.get("category", "") for c in res["crops"]]
    kinds = [k for k in dict.fromkeys(cats) if k]
    if not kinds:
        return []
    lines = ["", "Mean PSNR (dB) / SSIM per kind of image:", ""]
    lines += ["| stripe type | method | " + " | ".join(kinds) + " |"]
    lines += ["|---|---|" + "---:|" * len(kinds)]
    for kind, rows in by_type.items():
        for r in rows:
            cells = []
            for k in kinds:
                sel = [p for p, c in zip(r["per_crop"], cats, strict=True) if c == k]
                psnr = np.mean([p["psnr"] for p in sel])
                ssim = np.mean([p["ssim"] for p in sel])
                cells.append(f"{psnr:.2f} / {ssim:.3f}")
            lines.append(f"| {bd.TYPE_LABELS[kind]} | {r['method']} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(res: dict[str, Any]) -> str:
    """The report as Markdown (from the results dictionary)."""
    m = res["machine"]
    lines = [
        "# Destriping benchmark",
        "",
        f"`{res['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs ({m['cpus_usable']} usable, torch "
        f"{m['torch_threads']} threads), load average at start {m['load_average_start']}; "
        f"Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}, napari-restore "
        f"{m['napari_restore']}; GPU: {m['cuda'] or 'none'}; our model on: {m['device_ours']}.",
        "",
        "Data: " + "; ".join(f"{c['name']} {tuple(c['shape'])}" for c in res["crops"]) + ". "
        "Each crop is clipped to its 0.1/99.9th percentiles and scaled to [0, 1]; outputs are "
        "clipped to [0, 1] before the metrics (data range 1).",
        "",
        "Peers: "
        + "; ".join(f"{p['name']} {p['version']} ({p['licence']})" for p in res["peers"].values())
        + ". Best setting per peer and type by mean PSNR over the crops (staged grid sweep; "
        "`settings` = how many were tried).",
        "",
    ]
    for mode, by_type in res["results"].items():
        lines += [f"## {mode} stripes", ""]
        lines += [
            "| stripe type | method | PSNR (dB) | SSIM | MAE | ΔPSNR vs input | s/MP (CPU) "
            "| settings | best parameters |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for kind, rows in by_type.items():
            base = next(r for r in rows if r["kind"] == "input")["psnr"]
            for r in rows:
                sec = f"{r['s_per_mp']:.2f}" if r.get("s_per_mp") is not None else "—"
                lines.append(
                    f"| {bd.TYPE_LABELS[kind]} | {r['method']} | {r['psnr']:.2f} | "
                    f"{r['ssim']:.4f} | {r['mae']:.4f} | {r['psnr'] - base:+.2f} | {sec} | "
                    f"{r.get('settings', '')} | {fmt_params(r.get('params'))} |"
                )
        names = [c["name"] for c in res["crops"]]
        lines += ["", "PSNR (dB) per crop:", ""]
        lines += ["| stripe type | method | " + " | ".join(names) + " |"]
        lines += ["|---|---|" + "---:|" * len(names)]
        for kind, rows in by_type.items():
            for r in rows:
                cells = " | ".join(f"{c['psnr']:.2f}" for c in r["per_crop"])
                lines.append(f"| {bd.TYPE_LABELS[kind]} | {r['method']} | {cells} |")
        lines += ["", f"Claim check (ours beats the best peer by ≥ {CLAIM_MARGIN_DB:g} dB PSNR):"]
        for kind, rows in by_type.items():
            lines += claim_lines(rows, bd.TYPE_LABELS[kind])
        lines += category_lines(res, by_type)
        lines.append("")
        lines += ["Stripe parameters (`simulate_stripes`, seeds per crop in crop order):", ""]
        for kind, s in res["stripes"][mode].items():
            lines.append(f"- {kind}: `{fmt_params(s['params'])}`, seeds {s['seeds']}")
        lines.append("")
    if res.get("clean_check"):
        lines += ["## Clean crops through our model (should come out unchanged)", ""]
        names = [c["name"] for c in res["crops"]]
        lines += ["| method | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for r in res["clean_check"]:
            cells = " | ".join(
                f"{_num(p['psnr'])} dB, {p['mean_change_pct']:+.1f} %" for p in r["per_crop"]
            )
            lines.append(f"| {r['method']} | {cells} |")
        lines.append("")
    if res.get("ours"):
        lines += ["## Our model", ""]
        for o in res["ours"]:
            st = o["settings"]
            lines.append(
                f"- {o['label']}: device {st['device']}, tile {st['tile']}, overlap "
                f"{st['overlap']}, batch {st['batch_size']}, model passed as "
                f"{st['model_passed_as']} (load {st['load_seconds']:.2f} s, excluded)"
            )
            for dev, sp in o.get("speed", {}).items():
                lines.append(
                    f"  - speed on {dev}: {sp['s_per_mp']:.3f} s/MP "
                    f"({sp['size'][0]}×{sp['size'][1]}, {sp['seconds']:.2f} s)"
                )
        lines.append("")
    lines += ["## Run", ""]
    for name, sec in res["run_seconds"].items():
        lines.append(f"- {name}: {sec:.0f} s")
    for note in res["notes"]:
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command line."""
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--data-dir",
        type=Path,
        default=here.parent.parent / "shared" / "data",
        help="folder with the held-out images (default: ../shared/data from the repo)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=here.parent / "out" / "bench_destripe",
        help="folder for results.json and results.md",
    )
    p.add_argument("--quick", action="store_true", help="2 crops and small sweeps (~1.5 min)")
    p.add_argument(
        "--small-sweeps",
        action="store_true",
        help="the peers' small sweeps of --quick on the full set of crops",
    )
    p.add_argument(
        "--set",
        choices=["classic", "heldout"],
        default="classic",
        help="classic: the 5 crops of the stored runs; heldout: one crop per image of the "
        "validation sources, reported per kind of image (light-sheet, dense, sparse)",
    )
    p.add_argument(
        "--generator",
        choices=["project", "independent", "blind"],
        default="project",
        help="stripes from napari_restore.simulate (project), from the benchmark's own, "
        "independent stripe model (_independent_stripes.py), or from a third one written "
        "without reading the other two or the training sampler (_blind_stripes.py)",
    )
    p.add_argument(
        "--clean-check",
        action="store_true",
        help="also run our model(s) on the clean crops: PSNR against themselves and mean change",
    )
    p.add_argument(
        "--network-only",
        action="store_true",
        help="also report our model without its stripe-evidence check and spectral clean-up",
    )
    p.add_argument(
        "--modes",
        default="multiplicative",
        help="comma list of stripe modes: multiplicative,additive",
    )
    p.add_argument("--types", default=",".join(bd.STRIPE_TYPES), help="comma list of types")
    p.add_argument("--seed", type=int, default=2024, help="base seed of the stripes")
    p.add_argument("--peers", default=",".join(bp.PEERS), help="comma list; '' for none")
    p.add_argument(
        "--peer-results",
        type=Path,
        default=None,
        metavar="RESULTS_JSON",
        help="reuse the peer rows of an earlier full run (same crops and stripe seeds, checked) "
        "instead of sweeping the peers again",
    )
    p.add_argument("--model", default="builtin", help="our model: builtin or a model file")
    p.add_argument("--no-ours", action="store_true", help="run the peer part only")
    p.add_argument(
        "--ablation",
        nargs="*",
        default=[],
        metavar="MODEL_FILE",
        help="extra model files evaluated in the same table",
    )
    p.add_argument(
        "--adapt",
        type=int,
        default=0,
        metavar="STEPS",
        help="also evaluate our model adapted to each image (destripe(adapt_steps=STEPS))",
    )
    p.add_argument("--device", default="auto", help="device of our model (auto, cpu, cuda)")
    p.add_argument("--tile", type=int, default=None, help="tile size (default: the API's)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap (default: the API's)")
    p.add_argument("--batch-size", type=int, default=None, help="tiles per batch")
    p.add_argument(
        "--speed-size",
        type=int,
        default=1024,
        help="side of the square image for our speed test (0: skip)",
    )
    p.add_argument("--speed-repeat", type=int, default=2)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared machine, more threads than free cores "
        "make torch's OpenMP loops stall, e.g. PDHG 15x slower with 2 threads on 2 busy cores)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return the results dictionary."""
    args = parse_args(argv)
    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(max(1, args.threads))
    notes: list[str] = []
    run_seconds: dict[str, float] = {}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    device = resolve_device(args.device)
    modes = [m for m in args.modes.split(",") if m]
    kinds = [k for k in args.types.split(",") if k]
    if args.set == "heldout":
        crops = bd.load_heldout(args.data_dir)
        if args.quick:
            crops = crops[::4]
    else:
        crops = bd.load_crops(args.data_dir, quick=args.quick)
    cleans = [c.clean for c in crops]
    mp = megapixels(cleans)
    log(f"{len(crops)} crops, {mp:.2f} MP per stripe type: " + ", ".join(c.name for c in crops))

    stored: dict[str, Any] | None = None
    if args.peer_results is not None:
        stored = json.loads(args.peer_results.read_text())
        if [c["name"] for c in stored["crops"]] != [c.name for c in crops]:
            raise SystemExit(f"{args.peer_results}: other crops than this run's; sweep again.")
        notes.append(f"peer rows reused from {args.peer_results} ({stored['command']})")
        peers, peer_notes = [], []
    else:
        peers, peer_notes = bp.available_peers([p for p in args.peers.split(",") if p])
    notes += peer_notes

    # our model(s): main + ablations
    ours_models: list[tuple[str, Ours]] = []
    if not args.no_ours:
        for spec in [args.model, *args.ablation]:
            o = load_ours(args, spec, device, notes)
            if o is not None:
                label = "ours" if spec == args.model else f"ablation {Path(spec).stem}"
                if spec == args.model and spec != "builtin":
                    label = f"ours ({Path(spec).stem})"
                ours_models.append((label, o))
                if args.network_only and spec == args.model:
                    o2 = load_ours(args, spec, device, notes, network_only=True)
                    if o2 is not None:
                        ours_models.append(("network only", o2))
                if args.adapt and spec == args.model:
                    o3 = load_ours(args, spec, device, notes, adapt_steps=args.adapt)
                    if o3 is not None:
                        ours_models.append((f"{label}, adapted ({args.adapt} steps)", o3))
        if not ours_models:
            print("NOTE: our model was not evaluated (see notes); peers only.", file=sys.stderr)
    for n in notes:
        log(f"note: {n}")

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    stripes: dict[str, dict[str, Any]] = {}
    sweeps: dict[str, Any] = {}
    for mode in modes:
        results[mode], stripes[mode], sweeps[mode] = {}, {}, {}
        for ti, kind in enumerate(bd.STRIPE_TYPES):
            if kind not in kinds:
                continue
            seeds = [bd.crop_seed(args.seed, ti, ci) for ci in range(len(crops))]
            striped = bd.striped_crops(crops, args.generator, kind, mode, seeds)
            if args.generator in ("independent", "blind"):
                module = ind if args.generator == "independent" else blind
                described: dict[str, Any] = {"generator": f"{args.generator} ({module.__name__})"}
            else:
                described = bd.params_dict(bd.stripe_params(kind, mode).replace(seed=None))
            stripes[mode][kind] = {"params": described, "seeds": seeds}
            rows = [{"kind": "input", "method": "striped input", **score_outputs(striped, cleans)}]
            log(f"[{mode} / {kind}] input {rows[0]['psnr']:.2f} dB")
            sweeps[mode][kind] = {}
            if stored is not None:
                old = stored["stripes"][mode][kind]
                if old["seeds"] != seeds or old["params"] != stripes[mode][kind]["params"]:
                    raise SystemExit(f"{args.peer_results}: other stripes for {mode}/{kind}.")
                rows += [r for r in stored["results"][mode][kind] if r["kind"] == "peer"]
            for peer in peers:
                row, history = run_peer(
                    peer, kind, striped, cleans, args.quick or args.small_sweeps, log
                )
                rows.append(row)
                sweeps[mode][kind][peer.name] = history
                key = f"sweep {peer.name}"
                run_seconds[key] = run_seconds.get(key, 0.0) + row["sweep_seconds"]
            for label, o in ours_models:
                t0 = time.perf_counter()
                outs, secs = zip(*(o.run(x) for x in striped), strict=True)
                row = {
                    "kind": "ours" if label.startswith("ours") else "ablation",
                    "method": label,
                    **score_outputs(outs, cleans),
                    "s_per_mp": sum(secs) / mp if device == "cpu" else None,
                    "params": {"model": o.spec},
                }
                rows.append(row)
                log(f"  {label}: {row['psnr']:.2f} dB")
                run_seconds[label] = run_seconds.get(label, 0.0) + time.perf_counter() - t0
            results[mode][kind] = rows

    ours_info = []
    for label, o in ours_models:
        info: dict[str, Any] = {"label": label, "settings": o.settings(), "speed": {}}
        if args.speed_size > 0:
            first = bd.degrade(crops[0], bd.stripe_params("gaussian", modes[0]).replace(seed=0))
            devices = ["cpu"] + (["cuda"] if _cuda() else [])
            for dev in devices:
                oo = o if dev == device else Ours(o.spec, dev, o.tile, o.overlap, o.batch_size)
                info["speed"][dev] = speed_test(oo, first, args.speed_size, args.speed_repeat)
        ours_info.append(info)

    clean_check = []
    if args.clean_check:
        for label, o in ours_models:
            per = []
            for c in crops:
                out = clip01(o.run(c.clean)[0])
                m = compute_metrics(out, c.clean.astype(np.float64))
                mean_in = float(c.clean.mean())
                per.append(
                    {
                        "crop": c.name,
                        "psnr": _finite_psnr(m.psnr),
                        "mean_change_pct": 100.0 * (float(out.mean()) - mean_in) / mean_in,
                    }
                )
            clean_check.append({"method": label, "per_crop": per})
            log(f"  clean check {label}: " + ", ".join(f"{p['psnr']}" for p in per))

    run_seconds["total"] = time.perf_counter() - t_start
    res = {
        "command": " ".join(["python benchmarks/bench_destripe.py", *(argv or sys.argv[1:])]),
        "machine": machine_info(device),
        "crops": [c.describe() | {"category": bd.category(c)} for c in crops],
        "set": args.set,
        "generator": args.generator,
        "stripes": stripes,
        "clean_check": clean_check,
        "peers": stored["peers"]
        if stored is not None
        else {
            p.name: {
                "key": p.package,
                "name": p.name,
                "package": p.package,
                "version": p.version,
                "licence": p.licence,
                "note": p.note,
            }
            for p in peers
        },
        "results": results,
        "ours": ours_info,
        "claims": {
            mode: {kind: claim_lines(rows, bd.TYPE_LABELS[kind]) for kind, rows in bt.items()}
            for mode, bt in results.items()
        },
        "run_seconds": run_seconds,
        "notes": notes,
        "quick": args.quick,
    }
    res["machine"]["load_average_end"] = _loadavg()
    md = to_markdown(res)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=1, default=list) + "\n")
    # every setting tried, per mode / type / peer (large: kept apart from the results)
    (args.out / "sweeps.json").write_text(json.dumps(sweeps, default=list) + "\n")
    (args.out / "results.md").write_text(md)
    print(md)
    log(f"wrote results.json, sweeps.json and results.md to {args.out}")
    return res


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_peer(
    peer: bp.Peer,
    kind: str,
    striped: list[np.ndarray],
    cleans: list[np.ndarray],
    quick: bool,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sweep one peer on one stripe type, then re-run its best setting for metrics and time."""

    def evaluate(p: bp.Params) -> float:
        outs = peer.run(striped, p)
        if not all(np.isfinite(o).all() for o in outs):
            return -math.inf
        return float(np.mean([fast_psnr(o, c) for o, c in zip(outs, cleans, strict=True)]))

    log(f"  {peer.name}:")
    sweep = bp.staged_sweep(evaluate, peer.base, peer.stages(kind, quick), log)
    t0 = time.perf_counter()
    outs = peer.run(striped, sweep.best)
    secs = time.perf_counter() - t0
    row = {
        "kind": "peer",
        "method": peer.name,
        **score_outputs(outs, cleans),
        "s_per_mp": secs / megapixels(striped),
        "params": sweep.best,
        "settings": len(sweep.history),
        "sweep_seconds": sweep.seconds,
    }
    log(
        f"    best {row['psnr']:.2f} dB / SSIM {row['ssim']:.4f}, {row['s_per_mp']:.2f} s/MP, "
        f"sweep {sweep.seconds:.0f} s"
    )
    return row, sweep.history


if __name__ == "__main__":
    main()
