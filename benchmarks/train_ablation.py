"""Train the ablation variants of the destriping network at one equal budget.

Variants (Wei et al. 2022's design, one part removed at a time): ``full``, ``no_cbam`` (plain
residual blocks), ``no_residual`` (blocks without their shortcut), ``no_global_residual`` (the
network outputs the clean image instead of the stripes). Multiplicative stripes and λ = 0, as
for the shipped model (the VGG-19 weights are not available offline here; with them, add
``--perceptual-weight`` to train a λ > 0 variant).

Same data, seed, step count and cosine schedule for every variant, so the benchmark compares
designs, not training luck::

    python benchmarks/train_ablation.py ../shared/data --steps 600 --extra-data --out out/ablation
    python benchmarks/bench_destripe.py --ablation out/ablation/*.safetensors
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer

VARIANTS: dict[str, dict[str, bool]] = {
    "full": {},
    "no_cbam": {"use_cbam": False},
    "no_residual": {"use_residual": False},
    "no_global_residual": {"residual_learning": False},
}


def _training_images(data: Path, extra: bool) -> tuple[list, list[str]]:
    """The shipped model's training images (same loader as scripts/train_destripe_model.py)."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "train_destripe_model.py"
    spec = importlib.util.spec_from_file_location("train_destripe_model", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_training_images(data, extra=extra)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("--out", type=Path, default=Path("out/ablation"))
    p.add_argument("--steps", type=int, default=1000, help="steps per variant")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--perceptual-weight", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--extra-data",
        action="store_true",
        help="also the training script's EXTRA_TRAINING_FILES (the stored ablation used them)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images, names = _training_images(args.data, args.extra_data)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.variants:
        config = DestripeTrainConfig(
            steps=args.steps,
            learning_rate=1e-3,
            lr_schedule="cosine",
            device="cpu",
            seed=0,
            val_patches=32,
            val_every=500,
            preview_every=0,
            perceptual_weight=args.perceptual_weight,
            modes=("multiplicative",),
            **VARIANTS[name],
        )
        trainer = DestripeTrainer(images, config, names=names)
        for progress in trainer.train():
            if progress.metrics:
                print(f"{name} step {progress.step}: val PSNR {progress.metrics['val_psnr']:.2f}")
        path = trainer.save(args.out / name, extra={"ablation": name})
        print(f"{name}: {trainer.step} steps -> {path}", flush=True)


if __name__ == "__main__":
    main()
