"""Benchmark SRDTrans denoising on a synthetic low-light time-lapse with a known truth.

Reports: training ms/step of the default network at a small patch; what a time-limited
training run on the whole stack gives (PSNR/SSIM of the noisy and the denoised stack against
the truth, and the gain/offset of a least-squares fit ``denoised ≈ a·truth + b``, with a 3D
Gaussian blur as a classical reference point); inference throughput (voxels/s); peak memory of
the process (CPU) and of torch on the GPU.

Usage::

    python benchmarks/bench_denoise.py --device cpu --shape 64 256 256 --minutes 5
    python benchmarks/bench_denoise.py --device cuda --shape 128 512 512 --minutes 10 \
        --patch-t 64 --patch-xy 128 --json results.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from napari_restore.core.device import describe_device, resolve_device
from napari_restore.core.progress import run_to_end
from napari_restore.denoise.infer import denoise
from napari_restore.denoise.train import DenoiseTrainConfig, DenoiseTrainer
from napari_restore.metrics import compute_metrics
from synthetic_timelapse import synthetic_timelapse


def gain_offset(image: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Least-squares ``image ≈ a·truth + b``."""
    a, b = np.polyfit(truth.ravel().astype(np.float64), image.ravel().astype(np.float64), 1)
    return float(a), float(b)


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_time(
    noisy: np.ndarray, device: torch.device, patch: tuple[int, int], steps: int, amp: bool
) -> tuple[float, str]:
    """Mean ms per training step of the default network (after two warm-up steps), and the
    crop it used (``patch_t`` is clamped to the stack)."""
    config = DenoiseTrainConfig(
        patch_t=patch[0], patch_xy=patch[1], epochs=1, device=str(device), preview_every=0, amp=amp
    )
    trainer = DenoiseTrainer(noisy, config)
    run_to_end(trainer.train(steps=2), progress_bar=False)
    sync(device)
    start = time.perf_counter()
    run_to_end(trainer.train(steps=steps), progress_bar=False)
    sync(device)
    ms = 1000.0 * (time.perf_counter() - start) / steps
    return ms, f"{trainer.patch_t}x{trainer.patch_xy}x{trainer.patch_xy}"


def main() -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256), metavar=("T", "Y", "X"))
    p.add_argument("--photons", type=float, default=1.5)
    p.add_argument("--minutes", type=float, default=5.0, help="training time budget")
    p.add_argument("--patch-t", type=int, default=32, help="training patch frames")
    p.add_argument("--patch-xy", type=int, default=64, help="training crop (network sees /2)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--step-patch", type=int, nargs=2, default=(32, 64), metavar=("T", "XY"))
    p.add_argument("--timing-steps", type=int, default=5)
    p.add_argument("--tile", type=int, default=None, help="inference tile (default auto)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = not args.no_amp
    res: dict[str, Any] = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": list(args.shape),
        "photons": args.photons,
    }
    print(f"device {res['device']}, torch {res['torch']}, {res['threads']} CPU threads")

    start = time.perf_counter()
    noisy, clean = synthetic_timelapse(tuple(args.shape), photons=args.photons, seed=args.seed)
    res["simulate_s"] = time.perf_counter() - start
    print(f"synthetic {tuple(args.shape)} at {args.photons} photons/px: {res['simulate_s']:.2f} s")

    ms, crop = step_time(noisy, device, tuple(args.step_patch), args.timing_steps, amp)
    res["train_ms_per_step_small_patch"], res["small_patch_crop"] = ms, crop
    print(f"train step, default network, crop {crop} (network input halved in y, x): {ms:.0f} ms")

    config = DenoiseTrainConfig(
        patch_t=args.patch_t,
        patch_xy=args.patch_xy,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        epochs=None,
        minutes=args.minutes,
        seed=args.seed,
        device=str(device),
        preview_every=0,
        amp=amp,
    )
    trainer = DenoiseTrainer(noisy, config)
    before = trainer.evaluate()["total"]
    summary = run_to_end(trainer.train(), desc="train", progress_bar=sys.stderr.isatty())
    res["train"] = {
        "minutes": args.minutes,
        "patch": [trainer.patch_t, trainer.patch_xy, trainer.patch_xy],
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "steps": summary["steps"],
        "ms_per_step": summary["ms_per_step"],
        "fixed_batch_loss_before": before,
        "fixed_batch_loss_after": trainer.evaluate()["total"],
    }
    print(
        f"trained {summary['steps']} steps in {summary['seconds']:.0f} s "
        f"({summary['ms_per_step']:.0f} ms/step, crop {trainer.patch_t}x{trainer.patch_xy}^2); "
        f"fixed-batch loss {before:.3f} -> {res['train']['fixed_batch_loss_after']:.3f}"
    )

    if device.type == "cuda":
        res["peak_gpu_mib_train"] = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    raw = denoise(
        noisy,
        trainer.model,
        device=device,
        tile=args.tile,
        output_dtype="float32",
        intensity="none",
    )
    sync(device)
    seconds = time.perf_counter() - start
    res["inference_s"] = seconds
    res["inference_voxels_per_s"] = noisy.size / seconds
    print(f"inference {seconds:.1f} s: {res['inference_voxels_per_s']:.3g} voxels/s")
    # intensity="mean" (the default) is this shift of the raw output; no second network pass.
    shift = np.mean(noisy, dtype=np.float64) - np.mean(raw, dtype=np.float64)
    denoised = (raw + np.float32(shift)).astype(np.float32)

    # A classical reference point: a 3D Gaussian blur (sigma 1 voxel in t, y and x).
    from scipy import ndimage

    blurred = ndimage.gaussian_filter(noisy.astype(np.float32), 1.0)
    images = (("noisy", noisy), ("denoised", denoised), ("denoised_raw", raw))
    for name, image in (*images, ("gaussian_blur_1", blurred)):
        m = compute_metrics(image, clean)
        a, b = gain_offset(image, clean)
        bias = float(np.mean(image.astype(np.float64) - clean))
        res[name] = {"psnr": m.psnr, "ssim": m.ssim, "gain": a, "offset": b, "mean_bias": bias}
        print(
            f"{name:>15}: PSNR {m.psnr:6.2f} dB  SSIM {m.ssim:.4f}  "
            f"fit a={a:.4f} b={b:+.3f}  mean bias {bias:+.4f}"
        )
    res["peak_rss_mib"] = peak_rss_mib()
    if device.type == "cuda":
        res["peak_gpu_mib_inference"] = torch.cuda.max_memory_allocated(device) / 2**20
    gpu = ""
    if device.type == "cuda":
        gpu = (
            f", GPU {res['peak_gpu_mib_train']:.0f} MiB training, "
            f"{res['peak_gpu_mib_inference']:.0f} MiB inference"
        )
    print(f"peak memory: CPU {res['peak_rss_mib']:.0f} MiB (process RSS){gpu}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
