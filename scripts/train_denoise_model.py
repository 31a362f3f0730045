"""Pretrain the SRDTrans network shipped in ``src/napari_restore/pretrained/denoise_default``.

Training on a user's stack starts from this network; that training is SRDTrans's
self-supervised training on the user's noisy stack only. The pretraining decides where it
starts, so that the few dozen steps of a few CPU minutes adapt a good denoiser rather than
learn what fluorescence structures look like. Two phases, one network (see
``docs/model-card-denoise.md``):

1. **self-supervised** (the default mode): SRDTrans's own training (spatial redundancy
   sampling, no clean targets) over many noisy stacks;
2. **supervised** (``--supervised``, continuing from phase 1 with ``--init``): noisy -> clean
   with the MSE on the noise-free flux maps of the same kinds of data, with fresh
   Poisson-Gaussian noise at every draw (:class:`SupervisedPairs`), in the fine-tune's
   sampled geometry and at full resolution. Much faster to learn than phase 1 per step.

Data:

- synthetic time-lapses from :mod:`napari_restore.simulate.timelapse` with varied structures
  (spot density, filaments or none, structure scale 1-2x), photon levels from
  ``PHOTONS`` (0.5-20 per pixel), read noise 0.5-3 e⁻ and camera gain 1 or 2.5 ADU/e⁻; seeds
  from 10000 up (phase 1) and 20000 up (phase 2); the held-out benchmark stacks use seeds below
  1000, photon levels that are not in ``PHOTONS``, and other structure mixes;
- real images and stacks from ``DATA_DIR`` and ``DATA_DIR/train`` whose licences allow shipping
  trained weights in a BSD-3 package (BSD-3, MIT, Apache-2.0, CC-BY-4.0, CC0; see the READMEs
  there). Z-stacks are used as they are (their own noise; phase 1 only) and as flux maps with
  added Poisson-Gaussian noise; 2D images become short drifting "time-lapses" (a crop window
  that moves by a random walk) with added noise.
- Kept out: the stacks the benchmark is run on (``EXCLUDE``: the cancer-cell and Tribolium
  time-lapses and the Tribolium volume the bundled sample comes from), the GPL ClearMap stack,
  the unlicensed SPIM image and the striped PNGs.

Every stack keeps its own normalisation (its mean and standard deviation), exactly as when a
user trains on one stack. The network has the CPU defaults' ``patch_t`` (32), which its
temporal position embedding fixes for every later fine-tuning.

Run from the repository root (one torch thread; checkpoints every few minutes, resumable with
``--resume``)::

    # phase 1 (v1)
    python scripts/train_denoise_model.py ../shared/data --out /tmp/pre/v1 \
        --minutes 75 --steps 400 --checkpoint-minutes 4
    python scripts/train_denoise_model.py ../shared/data --out /tmp/pre/v1 --export /tmp/pre/v1w
    # phase 2 (v2, shipped)
    python scripts/train_denoise_model.py ../shared/data --supervised --init /tmp/pre/v1w \
        --out /tmp/pre/v2 --minutes 55 --steps 5000 --batch-size 2 --lr 5e-4 \
        --n-synthetic 64 --checkpoint-minutes 4
    python scripts/train_denoise_model.py ../shared/data --supervised --out /tmp/pre/v2 \
        --export src/napari_restore/pretrained/denoise_default

(``--export`` writes the checkpoint's weights without the optimizer state.) The exact
commands of the shipped file are in its JSON (``training.phases``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from napari_restore.core.progress import run_to_end
from napari_restore.denoise.infer import TARGET_STD
from napari_restore.denoise.train import DenoiseTrainConfig, DenoiseTrainer
from napari_restore.engine.model_files import load_model_file, save_model_file
from napari_restore.models import build_model
from napari_restore.simulate.noise import simulate_noise
from napari_restore.simulate.timelapse import clean_timelapse

PHOTONS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
READ_NOISE = (0.5, 1.0, 2.0, 3.0)
EXCLUDE = {
    "timelapse_cancer_cell_migration.tif",  # benchmark (and the bundled sample)
    "lsfm_tribolium_timelapse_calibzapw.tif",  # benchmark
    "lsfm_tribolium_nuclei_lund.tif",  # the bundled Tribolium sample is cut from it
    "lsfm_idisco_brain_clearmap.tif",  # GPL-3.0
    "real_striped_spim_tosi.tif",  # no licence
}


def _noisy(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson-Gaussian noise at a photon level and read noise drawn from the sets above."""
    photons = float(rng.choice(PHOTONS))
    read = float(rng.choice(READ_NOISE))
    gain = float(rng.choice((1.0, 2.5)))
    return simulate_noise(
        clean,
        photons,
        read_noise=read,
        gain=gain,
        seed=int(rng.integers(2**31)),
        output_dtype="uint16",
    ).image


def synthetic_stacks(
    n: int, frames: int, size: int, seed: int = 10_000, *, clean_only: bool = False
) -> list[tuple[str, Any]]:
    """``n`` noisy synthetic time-lapses with varied structures and noise (seeds ``seed + i``);
    with ``clean_only`` their noise-free truth instead."""
    from scipy import ndimage

    out = []
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        zoom = float(rng.choice((1.0, 1.0, 1.5, 2.0)))
        small = max(16, round(size / zoom))
        area = small * small
        spots = round(area / 550 * float(np.exp(rng.uniform(np.log(0.25), np.log(3.0)))))
        filaments = round(area / 4500 * float(rng.choice((0.0, 0.5, 1.0, 2.0, 3.0))))
        clean = clean_timelapse(
            (frames, small, small), n_spots=spots, n_filaments=filaments, seed=seed + i
        )
        if zoom != 1.0:
            clean = ndimage.zoom(clean, (1, size / small, size / small), order=1)
        if clean_only:
            out.append((f"synthetic seed {seed + i}", clean))
            continue
        out.append((f"synthetic seed {seed + i}", _noisy(clean, rng)))
    return out


def _drifting(image: np.ndarray, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(frames, size, size)`` clean "time-lapse": a crop window moving by a random walk."""
    h, w = image.shape
    size = min(size, h, w) // 2 * 2
    steps = rng.integers(-1, 2, size=(frames, 2)).cumsum(axis=0)
    steps -= steps.min(axis=0)
    span = steps.max(axis=0)
    y0 = int(rng.integers(0, max(1, h - size - span[0] + 1)))
    x0 = int(rng.integers(0, max(1, w - size - span[1] + 1)))
    ys = np.clip(y0 + steps[:, 0], 0, h - size)
    xs = np.clip(x0 + steps[:, 1], 0, w - size)
    return np.stack([image[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])


def real_stacks(
    data_dir: Path, frames: int, size: int, seed: int, *, clean_only: bool = False
) -> list[tuple[str, Any]]:
    """Noisy stacks made from the permissively licensed real images (see the module notes);
    with ``clean_only`` their noise-free flux maps instead (no stacks as acquired)."""
    rng = np.random.default_rng(seed)
    files = sorted(data_dir.glob("*.tif")) + sorted((data_dir / "train").glob("*.tif"))
    out = []
    for path in files:
        if path.name in EXCLUDE:
            continue
        arr = np.asarray(tifffile.imread(path)).astype(np.float32)
        # Background-subtracted flux map, robust to hot pixels.
        lo, hi = np.percentile(arr, [1, 99.9])
        flux = np.clip(arr, lo, hi) - lo
        if flux.max() <= 0:
            continue
        if arr.ndim == 3 and arr.shape[0] >= 10 and path.name != "widefield_u2os_bbbc022.tif":
            # The central 2*size square: the samples sit in the middle of these stacks.
            ys, xs = (slice(max(0, (n - 2 * size) // 2), None) for n in arr.shape[1:])
            crop = (slice(None), ys, xs)
            clean = flux[crop][:, : 2 * size, : 2 * size]
            if clean_only:
                if clean.max() > 0:
                    out.append((f"{path.name}", clean))
                continue
            out.append((f"{path.name} (as acquired)", arr[crop][:, : 2 * size, : 2 * size]))
            if clean.max() > 0:
                out.append((f"{path.name} + noise", _noisy(clean, rng)))
            continue
        planes = flux if arr.ndim == 3 else flux[None]  # channels of C-Y-X become images
        for c, plane in enumerate(planes):
            for _ in range(10):  # a crop with some structure, not empty background
                clean = _drifting(plane, frames, size, rng)
                if clean.mean() > 0.5 * plane.mean():
                    break
            if clean.max() <= 0:
                continue
            if clean_only:
                out.append((f"{path.name}[{c}] drifting", clean))
                continue
            out.append((f"{path.name}[{c}] drifting + noise", _noisy(clean, rng)))
    return out


def lr_at(step: int, total: int, lr: float, warmup: int = 50) -> float:
    """Linear warm-up, then a cosine from ``lr`` to ``lr / 10`` at ``total`` steps."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


# ----------------------------------------------------------------------------- supervised phase
OFFSET = 100.0  # camera offset (ADU) of the simulated noisy crops, as in simulate_noise


def _dihedral_np(x: np.ndarray, k: int) -> np.ndarray:
    x = np.rot90(x, k % 4, axes=(-2, -1))
    return x[..., ::-1] if k >= 4 else x


class SupervisedPairs:
    """``(noisy, clean)`` training crops from noise-free flux maps, with fresh Poisson-Gaussian
    noise at every draw (photon level, read noise and camera gain drawn from ``PHOTONS``,
    ``READ_NOISE`` and (1, 2.5)), both normalised exactly as a user's noisy stack would be:
    ``(x - mean) / (std / 10)`` with the mean and standard deviation that the whole noisy
    stack has (computed from the flux map, the photon level and the camera).

    Two geometries, both giving the network a ``(patch_t, patch_xy/2, patch_xy/2)`` input:
    ``sampled`` is the fine-tune's (a ``patch_xy`` crop reduced by spatial redundancy sampling:
    one pixel of every 2×2 cell, the input pixel ``a``), with the clean value of the same pixel
    as target; otherwise a ``patch_xy/2`` crop at full resolution, the geometry of inference.
    """

    def __init__(self, stacks: list[tuple[str, np.ndarray]], patch_t: int, patch_xy: int):
        # Stacks too small for a crop (a few short real z-stacks) are left out.
        stacks = [
            (name, c)
            for name, c in stacks
            if c.shape[0] >= patch_t and min(c.shape[1:]) >= patch_xy
        ]
        self.names = [name for name, _ in stacks]
        self.flux = []
        for _, clean in stacks:
            flux = np.clip(np.asarray(clean, dtype=np.float32), 0, None)
            flux /= flux.mean(dtype=np.float64)
            self.flux.append((flux, float(flux.var(dtype=np.float64))))
        self.patch_t, self.patch_xy = patch_t, patch_xy

    def pair(self, rng: np.random.Generator, sampled: bool) -> tuple[np.ndarray, np.ndarray]:
        flux, var = self.flux[int(rng.integers(len(self.flux)))]
        t, y, x = flux.shape
        nt, p = self.patch_t, self.patch_xy if sampled else self.patch_xy // 2
        t0, y0, x0 = (int(rng.integers(0, n - m + 1)) for n, m in ((t, nt), (y, p), (x, p)))
        crop = flux[t0 : t0 + nt, y0 : y0 + p, x0 : x0 + p].astype(np.float64)
        photons = float(rng.choice(PHOTONS))
        read = float(rng.choice(READ_NOISE))
        gain = float(rng.choice((1.0, 2.5)))
        electrons = rng.poisson(crop * photons) + rng.normal(0.0, read, crop.shape)
        noisy = np.clip(np.round(gain * electrons + OFFSET), 0, 65535)  # a uint16 camera
        clean = gain * photons * crop + OFFSET
        # The whole noisy stack's mean and standard deviation (flux mean 1, variance var).
        mean = gain * photons + OFFSET
        scale = gain * math.sqrt(photons**2 * var + photons + read**2) / TARGET_STD
        k = int(rng.integers(8))
        noisy = _dihedral_np((noisy - mean) / scale, k)
        clean = _dihedral_np((clean - mean) / scale, k)
        if sampled:  # one pixel of every 2x2 cell, the same in input and target
            h = p // 2
            pick = rng.integers(0, 4, size=(nt, h, h))
            dy, dx = pick // 2, pick % 2
            ti, yi, xi = np.meshgrid(np.arange(nt), np.arange(h), np.arange(h), indexing="ij")
            noisy = noisy[ti, 2 * yi + dy, 2 * xi + dx]
            clean = clean[ti, 2 * yi + dy, 2 * xi + dx]
        return np.ascontiguousarray(noisy, np.float32), np.ascontiguousarray(clean, np.float32)


def _load_start(path: Path | None, patch_t: int, seed: int) -> tuple[Any, dict[str, Any] | None]:
    from napari_restore.models.srdtrans import SRDTrans

    if path is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return SRDTrans(patch_t=patch_t), None
    state, meta = load_model_file(path, task="denoise")
    model = build_model(meta["architecture"])
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("_optimizer.")})
    return model, meta


def _all_data(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """``data`` of a model file trained in phases: every phase's sources and stacks."""
    return {
        "source": "; ".join(f"phase {i + 1}: {p['data']['source']}" for i, p in enumerate(phases)),
        "stacks": sorted({name for p in phases for name in p["data"].get("stacks", [])}),
    }


def supervised(args: argparse.Namespace) -> None:
    """Supervised phase: noisy -> clean with the MSE, on the flux maps of the synthetic
    time-lapses and the real images (see :class:`SupervisedPairs`). Resumable from
    ``<out>_checkpoint``; the learning rate follows a warm-up then a cosine to ``lr / 10`` over
    the time budget (``--minutes``) or ``--steps``, whichever ends first."""
    torch.manual_seed(args.seed)
    checkpoint = args.out.with_name(args.out.name + "_checkpoint")
    start = time.monotonic()
    stacks = synthetic_stacks(
        args.n_synthetic, args.frames, args.size, 20_000 + args.seed, clean_only=True
    )
    stacks += real_stacks(args.data_dir, args.frames, args.size, args.seed, clean_only=True)
    pairs = SupervisedPairs(stacks, args.patch_t, args.patch_xy)
    print(
        f"{len(pairs.names)} of {len(stacks)} clean stacks used, built in "
        f"{time.monotonic() - start:.0f} s",
        flush=True,
    )

    step, seconds, history, phases = 0, 0.0, [], []
    if args.resume:
        state, meta = load_model_file(checkpoint, task="denoise")
        model = build_model(meta["architecture"])
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("_optimizer.")})
        step, seconds = int(meta["phase"]["steps"]), float(meta["phase"]["seconds"])
        history, phases = meta["phase"]["losses"], meta["training"]["phases"][:-1]
    else:
        model, start_meta = _load_start(args.init, args.patch_t, args.seed)
        if start_meta is not None:
            phases = start_meta["training"].get("phases") or [
                {
                    "kind": "self-supervised (spatial redundancy sampling), noisy stacks",
                    "training": start_meta["training"],
                    "data": start_meta["data"],
                    "losses": start_meta["losses"],
                }
            ]
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    if args.resume:
        opt = {k[11:]: v for k, v in state.items() if k.startswith("_optimizer.")}
        per: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in opt.items():
            idx, name = key.split(".", 1)
            per.setdefault(int(idx), {})[name] = value
        sd = optimizer.state_dict()
        sd["state"] = per
        optimizer.load_state_dict(sd)
        print(f"resumed at step {step}", flush=True)

    def save(path: Path, include_optimizer: bool) -> None:
        phase = {
            "kind": "supervised (noisy -> clean, MSE), fresh Poisson-Gaussian noise every draw",
            "script": "scripts/train_denoise_model.py " + " ".join(sys.argv[1:]),
            "steps": step,
            "seconds": round(seconds, 1),
            "batch": f"{args.batch_size} crops per step, half in the fine-tune's sampled "
            f"geometry ({args.patch_t}x{args.patch_xy}x{args.patch_xy} -> one pixel per 2x2 "
            f"cell), half full-resolution {args.patch_t}x{args.patch_xy // 2}x"
            f"{args.patch_xy // 2} crops",
            "optimizer": f"Adam betas (0.9, 0.999), lr {args.lr}, warm-up {args.warmup} steps, "
            f"cosine to lr/10 over {args.minutes} min or {args.steps} steps",
            "noise": {"photons_per_px": PHOTONS, "read_noise_e": READ_NOISE, "gain": [1, 2.5]},
            "data": {
                "source": f"{len(pairs.names)} noise-free flux maps: {args.n_synthetic} synthetic "
                f"time-lapses (seeds {20_000 + args.seed}+) and real images/stacks under "
                "BSD-3/MIT/Apache-2.0/CC-BY-4.0/CC0 licences",
                "stacks": pairs.names,
            },
            "device": f"cpu ({torch.get_num_threads()} threads)",
            "torch_version": torch.__version__,
            "losses": history,
        }
        meta = {
            "task": "denoise",
            "method": "SRDTrans (Li et al., Nat. Comput. Sci. 2023)",
            "architecture": model.architecture(),
            "training": {
                "config": {
                    "patch_t": args.patch_t,
                    "patch_xy": args.patch_xy,
                    "init": "pretrained start for self-supervised fine-tuning",
                },
                "patch_t": args.patch_t,
                "patch_xy": args.patch_xy,
                "steps": step
                + sum(int(p["training"]["steps"]) for p in phases if "training" in p)
                + sum(int(p.get("steps", 0)) for p in phases if "training" not in p),
                "phases": [*phases, phase],
            },
            "data": _all_data([*phases, phase]),
            "normalization": {
                "method": "mean_std",
                "description": "per stack: (x - mean) / scale, float32, with the stack mean "
                f"and scale = its standard deviation / {TARGET_STD:g}",
            },
            "phase": {"steps": step, "seconds": seconds, "losses": history},
            "steps": step,
            "losses": {"last": history[-1] if history else None, "history": history},
            "optimizer_state": include_optimizer,
        }
        state = dict(model.state_dict())
        if include_optimizer:
            for idx, s in optimizer.state_dict()["state"].items():
                for name, value in s.items():
                    state[f"_optimizer.{idx}.{name}"] = torch.as_tensor(value)
        else:
            meta.pop("phase")
        save_model_file(path, state, meta, overwrite=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng((args.seed, 7, step))
    budget = 60.0 * args.minutes
    last_save, window = time.monotonic(), []
    model.train()
    while seconds < budget and step < args.steps:
        frac = min(1.0, max(seconds / budget, step / args.steps))
        lr = args.lr * min(1.0, (step + 1) / args.warmup)
        lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.monotonic()
        batch = [pairs.pair(rng, sampled=b % 2 == 0) for b in range(args.batch_size)]
        x = torch.from_numpy(np.stack([b[0] for b in batch]))[:, None]
        y = torch.from_numpy(np.stack([b[1] for b in batch]))
        loss = torch.nn.functional.mse_loss(model(x)[:, 0], y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds += time.monotonic() - t0
        step += 1
        window.append(float(loss.detach()))
        if step % 10 == 0:
            history.append({"step": step, "mse": float(np.mean(window)), "lr": lr})
            window = []
        if step % 50 == 0:
            print(f"step {step} mse(10) {history[-1]['mse']:.4f} {seconds:.0f} s", flush=True)
        if time.monotonic() - last_save > 60 * args.checkpoint_minutes:
            save(checkpoint, True)
            last_save = time.monotonic()
    save(checkpoint, True)
    if args.snapshot is not None:
        save(args.snapshot, False)
    print(f"done: {step} steps, {seconds:.0f} s of training; checkpoint {checkpoint}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", type=Path, help="../shared/data (with its train/ folder)")
    p.add_argument("--out", type=Path, default=Path("denoise_pretrain/denoise_default"))
    p.add_argument("--minutes", type=float, default=65.0, help="wall-clock budget of this run")
    p.add_argument("--steps", type=int, default=3000, help="length of the lr schedule")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--patch-t", type=int, default=32)
    p.add_argument("--patch-xy", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-synthetic", type=int, default=48)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--resume", action="store_true", help="continue from <out>_checkpoint")
    p.add_argument(
        "--export", type=Path, default=None, help="only write the checkpoint's weights here"
    )
    p.add_argument(
        "--supervised", action="store_true", help="the supervised phase (noisy -> clean)"
    )
    p.add_argument("--init", type=Path, default=None, help="start weights (model file)")
    p.add_argument("--warmup", type=int, default=30, help="warm-up steps (supervised)")
    p.add_argument("--snapshot", type=Path, default=None, help="also write weights only here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.supervised and args.export is None:
        supervised(args)
        return
    checkpoint = args.out.with_name(args.out.name + "_checkpoint")
    if args.export is not None:
        state, meta = load_model_file(checkpoint, task="denoise")
        weights = {k: v for k, v in state.items() if not k.startswith("_optimizer.")}
        meta["optimizer_state"] = False
        meta.pop("phase", None)  # resume bookkeeping of the supervised phase
        if "phases" in meta["training"]:
            meta["data"] = _all_data(meta["training"]["phases"])
        print(f"wrote {save_model_file(args.export, weights, meta)}")
        return

    start = time.monotonic()
    stacks = synthetic_stacks(args.n_synthetic, args.frames, args.size, 10_000 + args.seed)
    stacks += real_stacks(args.data_dir, args.frames, args.size, args.seed)
    print(f"{len(stacks)} stacks built in {time.monotonic() - start:.0f} s", flush=True)

    config = DenoiseTrainConfig(
        patch_t=args.patch_t,
        patch_xy=args.patch_xy,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        epochs=None,
        minutes=args.minutes,
        device="cpu",
        preview_every=0,
        preview_seconds=0,
        init="scratch",
    )
    step, history, seconds = 0, [], 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        from napari_restore.models.srdtrans import SRDTrans

        model = SRDTrans(patch_t=args.patch_t)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=config.betas)
    if args.resume:
        state, meta = load_model_file(checkpoint, task="denoise")
        model = build_model(meta["architecture"])
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("_optimizer.")})
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=config.betas)
        opt = {k[11:]: v for k, v in state.items() if k.startswith("_optimizer.")}
        per: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in opt.items():
            idx, name = key.split(".", 1)
            per.setdefault(int(idx), {})[name] = value
        sd = optimizer.state_dict()
        sd["state"] = per
        optimizer.load_state_dict(sd)
        step, seconds = int(meta["steps"]), float(meta["training"]["seconds"])
        history = meta["losses"]["history"]
        print(f"resumed at step {step}", flush=True)
    trainers = []
    for i, (_, stack) in enumerate(stacks):
        cfg = DenoiseTrainConfig(**{**config.to_dict(), "seed": args.seed * 1000 + i})
        trainer = DenoiseTrainer(stack, cfg, model=model)
        trainer.optimizer = optimizer  # one network, one optimizer, many stacks
        trainer.step = step  # distinct draws after a resume
        trainers.append(trainer)
    rng = np.random.default_rng((args.seed, step))

    def save(path: Path, include_optimizer: bool) -> None:
        meta = trainers[0].metadata()
        meta["training"]["config"]["seed"] = args.seed
        meta["training"]["steps"] = step
        meta["training"]["seconds"] = round(seconds, 1)
        meta["training"]["script"] = "scripts/train_denoise_model.py " + " ".join(sys.argv[1:])
        meta["training"]["lr_schedule"] = (
            f"warm-up 50 steps, cosine {args.lr} -> /10 at {args.steps}"
        )
        meta["data"] = {
            "source": f"{len(stacks)} noisy stacks: {args.n_synthetic} synthetic time-lapses and "
            "real images/stacks under BSD-3/MIT/Apache-2.0/CC-BY-4.0/CC0 licences",
            "stacks": [name for name, _ in stacks],
        }
        meta["normalization"].pop("scale", None)  # every stack has its own
        meta["steps"] = step
        meta["losses"] = {"last": history[-1] if history else None, "history": history}
        meta["optimizer_state"] = include_optimizer
        state = dict(model.state_dict())
        if include_optimizer:
            for idx, s in optimizer.state_dict()["state"].items():
                for name, value in s.items():
                    state[f"_optimizer.{idx}.{name}"] = torch.as_tensor(value)
        save_model_file(path, state, meta)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 60 * args.minutes
    last_save = time.monotonic()
    window: list[float] = []
    while time.monotonic() < deadline and step < args.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        i = int(rng.integers(len(trainers)))
        t0 = time.monotonic()
        run_to_end(trainers[i].train(steps=1), progress_bar=False)
        seconds += time.monotonic() - t0
        step += 1
        loss = trainers[i].history[-1]["total"]
        window.append(loss)
        if step % 10 == 0:
            history.append({"step": step, "total": float(np.mean(window))})
            window = []
        if step % 50 == 0:
            print(f"step {step} loss(10) {history[-1]['total']:.4f} {seconds:.0f} s", flush=True)
        if time.monotonic() - last_save > 60 * args.checkpoint_minutes:
            save(checkpoint, True)
            last_save = time.monotonic()
    save(checkpoint, True)
    print(f"done: {step} steps, {seconds:.0f} s of training; checkpoint {checkpoint}", flush=True)


if __name__ == "__main__":
    main()
