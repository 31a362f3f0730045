"""Diagnostic: can the destriper learn the independent generator's stripes in an hour on a CPU?

Bar 1 of the destriping issue is missed on the independent generator's Gaussian and tilted
stripes (``_independent_stripes.py``): the shipped model leads the best peer there by 1.8 / 1.5
dB, where it leads by 5-7 dB on the simulator's own stripes. Two explanations predict
different things:

- **coverage**: the training sampler never draws these shapes (shadows that start at an
  absorber and decay, Lorentzian flanks, curved fans); the network could remove them if it
  saw them. Then a fine-tune on such stripes, over the *training* images, lifts the
  independent sets by far more than the tenths of a dB every sampler change so far gave, and
  the next (GPU) step is a broader sampler;
- **capacity / time**: the network cannot tell these faint stripes from content with what an
  hour of CPU training can teach it. Then even stripes of the right shape gain little, and the
  next step is longer training (or another architecture), not another sampler.

This script fine-tunes the shipped model exactly as phase 4's recipe P14 did (learning rate,
seed, patches, stripe-free share, cosine schedule: ``finetune_soup/README.md``) but draws the
stripes of its training pairs from the benchmark's independent generator instead of the
project's sampler. Clean patches come from the training corpus only (the validation sources
stay out, as always). **A model trained this way is disqualified from shipping by
construction**: the independent generator is no longer independent of it. Its result on the
third, blind generator (which neither sampler resembles) says whether what it learnt transfers.

Usage::

    TQDM_DISABLE=1 OMP_NUM_THREADS=1 PYTHONPATH=src \
        python benchmarks/diagnose_generator_coverage.py ../shared/data --lr 5e-5 \
        --minutes 60 --out runs/D1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))

import _independent_stripes as ind  # noqa: E402
from napari_restore.destripe.train import DestripeTrainer  # noqa: E402
from napari_restore.engine.model_files import load_model_file  # noqa: E402
from train_destripe_model import VALIDATION_SOURCES, load_training_images  # noqa: E402

SHIPPED = HERE.parent / "src/napari_restore/pretrained/destripe_default.safetensors"
#: Phase 4's recipe P14 (``finetune_soup/README.md``), as far as it concerns the network.
RECIPE = {
    "clean_fraction": 0.25,
    "patch_size": 256,
    "batch_size": 4,
    "seed": 9,
    "lr_schedule": "cosine",
    "val_patches": 16,
    "val_every": 500,
    "val_seconds": 0.0,
}
#: Kinds drawn from the independent generator, tilted twice as often (P14's mix).
KIND_WEIGHTS = {"regular": 1.0, "gaussian": 1.0, "tilted": 2.0}


def independent_pair(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``clean`` attenuated by one field of the independent generator (multiplicative).

    Unlike :func:`_independent_stripes.degrade` nothing is clipped: training patches carry a
    random gain and may exceed 1, and attenuation never raises a pixel.
    """
    kinds = list(KIND_WEIGHTS)
    p = np.array([KIND_WEIGHTS[k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    log_t = ind.log_transmission(ind.stripe_field(clean.shape, kind, rng), rng)
    return (clean * np.exp(log_t)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", type=Path, help="the shared data directory (train/ inside)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--steps", type=int, default=3000, help="cosine schedule length")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument(
        "--level-weight", type=float, default=0.0, help="the stripe-free level loss term"
    )
    p.add_argument("--snapshot-minutes", type=float, default=15.0)
    p.add_argument("--out", type=Path, required=True, help="output stem (no suffix)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    final = args.out.with_suffix(".safetensors")
    if final.exists():  # never replace a trained model unasked
        sys.exit(f"{final} exists: choose another --out")
    images, names = load_training_images(args.data, corpus=True)
    start = int(load_model_file(SHIPPED, task="destripe")[1].get("steps", 0))
    trainer = DestripeTrainer.resume(
        SHIPPED,
        images,
        names=names,
        learning_rate=args.lr,
        lr_start_step=start,
        steps=start + args.steps,
        modes=("multiplicative",),
        level_weight=args.level_weight,
        **RECIPE,
    )
    rng = np.random.default_rng([RECIPE["seed"], 20261203])

    def batch() -> tuple[np.ndarray, np.ndarray]:
        # The trainer's own patch sampler (corpus, flips, random gain), so that only the
        # stripes differ from P14's pairs.
        n = RECIPE["batch_size"]
        clean = np.stack([trainer._patch(rng, trainer.sources) for _ in range(n)])
        striped = np.stack(
            [
                c if rng.random() < RECIPE["clean_fraction"] else independent_pair(c, rng)
                for c in clean
            ]
        )
        return striped[:, None], clean[:, None]

    trainer.batch_source = batch
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = last = time.monotonic()
    extra = {
        "diagnostic": "benchmarks/diagnose_generator_coverage.py: stripes from the benchmark's "
        "independent generator; never to be shipped",
        "validation_sources": list(VALIDATION_SOURCES),
        "lr": args.lr,
        "level_weight": args.level_weight,
    }
    gen = trainer.train()
    try:
        for prog in gen:
            now = time.monotonic()
            if prog.metrics:
                print(f"step {prog.step} val {prog.metrics}", flush=True)
            if now - last > 60 * args.snapshot_minutes:
                trainer.save(args.out.with_name(f"{args.out.name}_step{trainer.step}"), extra=extra)
                last = now
                print(
                    f"snapshot at step {trainer.step} [{(now - started) / 60:.1f} min]", flush=True
                )
            if now - started > 60 * args.minutes:
                break
    finally:
        gen.close()
    extra["minutes"] = round((time.monotonic() - started) / 60, 1)
    trainer.save(args.out, extra=extra)
    print(json.dumps({"steps": trainer.step, "minutes": extra["minutes"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
