"""Benchmark SRDTrans denoising against classical baselines, on stacks with a known truth and
on real noisy stacks.

Synthetic stacks (truth known): either one stack (``--shape``, ``--photons``, ``--seed``) or
the held-out set ``--heldout`` (structures, seeds and photon levels that the pretrained network
never saw, see ``HELDOUT``). For each: every classical baseline swept over its parameters
(``_denoise_baselines.py``: 3D Gaussian, temporal running mean, non-local means, total
variation, BM3D when installed) and SRDTrans trained on the noisy stack itself for
``--minutes`` (scored after each of ``--eval-at`` minutes too). Reported: PSNR, SSIM and the
least-squares fit ``output ≈ a·truth + b`` of every method; the best setting of each baseline
family (chosen by PSNR against the truth, which favours the baselines).

Real stacks (``--real DATA_DIR``; no truth): the bundled samples and the time-lapses in
``DATA_DIR``; SRDTrans trained ``--minutes`` on each. Reported: the fit ``input ≈ a·output + b``
(a ≈ 1 when the output keeps the input's contrast, a ≫ 1 when it is flattened) and the
frame-to-frame noise ``std(x[t+1] - x[t]) / √2`` of input and output.

Also (single-stack mode): training ms/step at a small patch, inference voxels/s, peak memory.

Usage::

    # CPU: the held-out set, 3 minutes of training from the pretrained network (CPU defaults)
    python benchmarks/bench_denoise.py --device cpu --heldout --minutes 3 --threads 1 \
        --json heldout.json
    # from scratch, scored after 3, 6, 10 and 15 minutes
    python benchmarks/bench_denoise.py --device cpu --heldout --init scratch --minutes 15 \
        --eval-at 3 6 10 --baselines none --threads 1
    # real stacks
    python benchmarks/bench_denoise.py --device cpu --real ../shared/data --minutes 3
    # GPU, one big stack, the paper's settings
    python benchmarks/bench_denoise.py --device cuda --shape 512 512 512 --minutes 10 \
        --baselines none --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _denoise_baselines import FAMILIES, all_baselines
from napari_restore.core.device import describe_device, resolve_device
from napari_restore.core.progress import run_to_end
from napari_restore.denoise.config import DenoiseTrainConfig
from napari_restore.denoise.infer import denoise, resolve_flips
from napari_restore.denoise.train import DenoiseTrainer, training_warnings
from napari_restore.metrics import compute_metrics
from napari_restore.simulate.timelapse import simulate_timelapse

# Held-out synthetic stacks: seeds below 1000 (pretraining used 10000+), photon levels outside
# the pretraining set (0.5, 1, 2, 3, 5, 8, 13, 20), and structure mixes it did not draw
# (4x the default filament density; no filaments at all with few spots).
HELDOUT: dict[str, dict[str, Any]] = {
    "spots+filaments, 1.5 ph/px, read 1 e": dict(seed=101, photons=1.5, read_noise=1.0),
    "dense filaments, 6 ph/px, read 0.7 e": dict(
        seed=103, photons=6.0, read_noise=0.7, spots=0.4, filaments=4.0
    ),
    "sparse spots, 0.7 ph/px, read 1.5 e": dict(
        seed=102, photons=0.7, read_noise=1.5, spots=0.5, filaments=0.0
    ),
}
HELDOUT_SHAPE = (64, 192, 192)


def heldout_stack(name: str, shape: tuple[int, int, int] = HELDOUT_SHAPE) -> tuple[Any, Any]:
    """``(noisy uint16, clean float32)`` of one held-out stack."""
    p = HELDOUT[name]
    area = shape[1] * shape[2]
    r = simulate_timelapse(
        shape,
        photons=p["photons"],
        read_noise=p["read_noise"],
        n_spots=round(area / 550 * p.get("spots", 1.0)),
        n_filaments=round(area / 4500 * p.get("filaments", 1.0)),
        seed=p["seed"],
        output_dtype="uint16",
    )
    return r.noisy, r.clean


def gain_offset(image: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Least-squares ``image ≈ a·truth + b``."""
    a, b = np.polyfit(truth.ravel().astype(np.float64), image.ravel().astype(np.float64), 1)
    return float(a), float(b)


def frame_noise(stack: np.ndarray) -> float:
    """``std(x[t+1] - x[t]) / √2``: the noise of one frame when the scene changes slowly."""
    d = np.diff(np.asarray(stack, dtype=np.float32), axis=0)
    return float(d.std(dtype=np.float64) / np.sqrt(2))


def score(image: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    m = compute_metrics(image, clean)
    a, b = gain_offset(image, clean)
    return {"psnr": m.psnr, "ssim": m.ssim, "gain": a, "offset": b}


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_config(args: argparse.Namespace, device: torch.device, minutes: float) -> Any:
    """The device's defaults, with the options given on the command line on top."""
    given = {
        "patch_t": args.patch_t,
        "patch_xy": args.patch_xy,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "init": args.init,
    }
    return DenoiseTrainConfig.for_device(
        device,
        epochs=None,
        minutes=minutes,
        seed=args.seed,
        preview_every=0,
        preview_seconds=0,
        amp=not args.no_amp,
        **{k: v for k, v in given.items() if v is not None},
    )


def step_time(noisy: np.ndarray, args: argparse.Namespace, device: torch.device) -> float:
    """Mean ms per training step at ``--step-patch`` from scratch (after two warm-up steps)."""
    config = make_config(args, device, 1.0)
    config = DenoiseTrainConfig(
        **{
            **config.to_dict(),
            "patch_t": args.step_patch[0],
            "patch_xy": args.step_patch[1],
            "init": "scratch",
            "epochs": 1,
        }
    )
    trainer = DenoiseTrainer(noisy, config)
    run_to_end(trainer.train(steps=2), progress_bar=False)
    sync(device)
    start = time.perf_counter()
    run_to_end(trainer.train(steps=args.timing_steps), progress_bar=False)
    sync(device)
    return 1000.0 * (time.perf_counter() - start) / args.timing_steps


def run_baselines(noisy: np.ndarray, clean: np.ndarray, mode: str) -> dict[str, Any]:
    """Every baseline setting scored; the best of each family by PSNR."""
    rows: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    for label, out in all_baselines(noisy, quick=mode == "quick"):
        rows[label] = score(out, clean)
        print(f"  {label:>28}: {fmt(rows[label])}", flush=True)
    best = {}
    for family in FAMILIES:
        fam = {k: v for k, v in rows.items() if k.startswith(family)}
        if fam:
            label = max(fam, key=lambda k: fam[k]["psnr"])
            best[family] = {"setting": label, **fam[label]}
    return {"all": rows, "best": best, "seconds": time.perf_counter() - start}


def fmt(r: dict[str, float]) -> str:
    return (
        f"PSNR {r['psnr']:6.2f} dB  SSIM {r['ssim']:.4f}  "
        f"fit a={r['gain']:.3f} b={r['offset']:+.2f}"
    )


def train_and_score(
    noisy: np.ndarray,
    clean: np.ndarray | None,
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    """Train SRDTrans on the noisy stack; score after each of ``--eval-at`` minutes and at the
    end (against the truth, or by the real-data checks when ``clean`` is None)."""
    marks = sorted({*(m for m in args.eval_at if 0 <= m < args.minutes), args.minutes})
    trainer = DenoiseTrainer(noisy, make_config(args, device, args.minutes))
    res: dict[str, Any] = {
        "config": {
            k: v
            for k, v in trainer.config.to_dict().items()
            if k in ("patch_t", "patch_xy", "batch_size", "learning_rate", "init")
        },
        "evals": [],
    }
    done = 0.0
    summary: Any = None
    for mark in marks:
        if mark > done:  # mark 0: the starting network as it is, without training
            summary = run_to_end(trainer.train(minutes=mark - done), progress_bar=False)
        done = mark
        sync(device)
        start = time.perf_counter()
        flips = resolve_flips(args.flips, noisy.size, device)
        out = denoise(
            noisy, trainer.model, device=device, output_dtype="float32", tile=args.tile, flips=flips
        )
        sync(device)
        seconds = time.perf_counter() - start
        row: dict[str, Any] = {
            "minutes": mark,
            "flips": flips,
            "steps": trainer.step,
            "ms_per_step": 1000.0 * trainer.seconds / max(1, trainer.step),
            "inference_s": seconds,
            "inference_voxels_per_s": noisy.size / seconds,
            "warnings": training_warnings(trainer, summary) if trainer.step else [],
            # The machine may be shared: the load says how comparable the step counts are.
            "load_average": [round(v, 2) for v in os.getloadavg()],
        }
        if clean is not None:
            row.update(score(out, clean))
            if flips > 1:  # the single pass too, for comparison
                one = denoise(
                    noisy, trainer.model, device=device, output_dtype="float32", tile=args.tile,
                    flips=1,
                )  # fmt: skip
                row["single_pass"] = score(one, clean)
            print(
                f"  SRDTrans {mark:g} min, {trainer.step} steps, {flips} flips: {fmt(row)} "
                f"({seconds:.0f} s; load {row['load_average'][0]:.1f})"
                + (f"; 1 pass: {fmt(row['single_pass'])}" if flips > 1 else ""),
                flush=True,
            )
        else:
            a, b = np.polyfit(out.ravel().astype(np.float64), noisy.ravel().astype(np.float64), 1)
            row.update(
                fit_input_a=float(a),
                fit_input_b=float(b),
                frame_noise_in=frame_noise(noisy),
                frame_noise_out=frame_noise(out),
                std_in=float(np.std(noisy, dtype=np.float64)),
                std_out=float(np.std(out, dtype=np.float64)),
            )
            print(
                f"  SRDTrans {mark:g} min, {trainer.step} steps: input ≈ {a:.3f}·output "
                f"{b:+.1f}; frame-to-frame noise {row['frame_noise_in']:.2f} -> "
                f"{row['frame_noise_out']:.2f}",
                flush=True,
            )
        for w in row["warnings"]:
            print(f"    warning: {w}", flush=True)
        res["evals"].append(row)
        res["output"] = out
    return res


def real_stacks(data_dir: Path) -> dict[str, Path]:
    from importlib import resources

    samples = Path(str(resources.files("napari_restore") / "data"))
    return {
        "cancer-cell migration (bundled sample, 48x130x130)": samples / "cancer_cell_migration.tif",
        "Tribolium light-sheet z-stack (bundled sample, 24x256x256)": samples
        / "tribolium_lsfm_stack.tif",
        "Tribolium CalibZAPW time-lapse (100x235x389, uint8)": data_dir
        / "lsfm_tribolium_timelapse_calibzapw.tif",
    }


def main() -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--heldout", action="store_true", help="the held-out synthetic set")
    p.add_argument("--only", nargs="*", default=None, help="stack names (substrings) to run")
    p.add_argument("--real", type=Path, default=None, metavar="DATA_DIR", help="real stacks")
    p.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256), metavar=("T", "Y", "X"))
    p.add_argument("--photons", type=float, default=1.5)
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    p.add_argument("--eval-at", type=float, nargs="*", default=[], help="also score here (min)")
    p.add_argument("--init", default=None, help="pretrained, scratch or a model file")
    p.add_argument("--patch-t", type=int, default=None, help="default: the device's")
    p.add_argument("--patch-xy", type=int, default=None, help="default: the device's")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="default: the device's")
    p.add_argument("--baselines", choices=("full", "quick", "none"), default="full")
    p.add_argument(
        "--baselines-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="take the baselines of the same stacks from an earlier run's --json (they are "
        "deterministic) instead of recomputing them",
    )
    p.add_argument("--no-srdtrans", action="store_true", help="baselines only")
    p.add_argument("--step-patch", type=int, nargs=2, default=(32, 64), metavar=("T", "XY"))
    p.add_argument("--timing-steps", type=int, default=5)
    p.add_argument("--tile", type=int, default=None, help="inference tile (default auto)")
    p.add_argument(
        "--flips",
        default="auto",
        type=lambda v: v if v == "auto" else int(v),
        help="flip-ensemble passes of the inference: auto (default, as the CLI), 1, 2 or 4",
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    res: dict[str, Any] = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "stacks": {},
    }
    print(f"device {res['device']}, torch {res['torch']}, {res['threads']} CPU threads")

    if args.real is not None:
        for name, path in real_stacks(args.real).items():
            import tifffile

            if args.only and not any(o in name for o in args.only):
                continue
            noisy = tifffile.imread(path)
            print(f"{name}: {path.name} {noisy.shape} {noisy.dtype}", flush=True)
            r = train_and_score(noisy, None, args, device)
            r.pop("output")
            res["stacks"][name] = {"srdtrans": r}
    else:
        if args.heldout:
            names = [n for n in HELDOUT if not args.only or any(o in n for o in args.only)]
            stacks = {n: heldout_stack(n) for n in names}
        else:
            r = simulate_timelapse(
                tuple(args.shape), photons=args.photons, seed=args.seed, output_dtype="uint16"
            )
            stacks = {f"synthetic {tuple(args.shape)}, {args.photons} ph/px": (r.noisy, r.clean)}
            res["train_ms_per_step_small_patch"] = step_time(r.noisy, args, device)
            print(
                f"train step from scratch, crop {args.step_patch}: "
                f"{res['train_ms_per_step_small_patch']:.0f} ms"
            )
        for name, (noisy, clean) in stacks.items():
            print(f"{name}: {noisy.shape}", flush=True)
            entry: dict[str, Any] = {"noisy": score(noisy, clean)}
            print(f"  {'noisy':>28}: {fmt(entry['noisy'])}", flush=True)
            if args.baselines_from is not None:
                earlier = json.loads(args.baselines_from.read_text())["stacks"][name]
                if abs(earlier["noisy"]["psnr"] - entry["noisy"]["psnr"]) > 1e-6:
                    raise SystemExit(f"{args.baselines_from} holds another stack {name!r}")
                entry["baselines"] = earlier["baselines"]
                entry["baselines_from"] = str(args.baselines_from)
            elif args.baselines != "none":
                entry["baselines"] = run_baselines(noisy, clean, args.baselines)
            if args.no_srdtrans:
                res["stacks"][name] = entry
                continue
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            r = train_and_score(noisy, clean, args, device)
            r.pop("output")
            entry["srdtrans"] = r
            if "baselines" in entry:
                best = max(entry["baselines"]["best"].values(), key=lambda v: v["psnr"])
                final = r["evals"][-1]
                entry["margin_db"] = final["psnr"] - best["psnr"]
                print(
                    f"  best baseline {best['setting']} {best['psnr']:.2f} dB; SRDTrans "
                    f"{final['psnr']:.2f} dB ({entry['margin_db']:+.2f} dB), gain "
                    f"{final['gain']:.3f}",
                    flush=True,
                )
            res["stacks"][name] = entry
    res["peak_rss_mib"] = peak_rss_mib()
    if device.type == "cuda":
        res["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(f"peak memory: CPU {res['peak_rss_mib']:.0f} MiB (process RSS)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
