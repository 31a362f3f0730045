"""Average the weights of destriping model files from one training run (weight averaging).

Checkpoints taken along a run at a constant learning rate scatter around a good solution; their
mean is usually better than any single one and no longer depends on where the run happened to
stop (Izmailov et al., "Averaging weights leads to wider optima and better generalization",
UAI 2018). The ResCBAM U-Net has no normalisation layers, so the plain mean of the weights is
the whole procedure (no statistics to recompute).

Usage, from the repository root::

    python scripts/average_destripe_models.py OUT CKPT1 CKPT2 ... [--overwrite]

The metadata of the last file is kept (training settings, steps), with the averaged files and
their steps added under ``weight_average``. All files must hold the same architecture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_restore.engine.model_files import (  # noqa: E402
    load_model_file,
    model_paths,
    save_model_file,
)


def average(paths: list[Path]) -> tuple[dict, dict]:
    """Mean weights of the model files and the metadata of the last one (with the sources)."""
    states, metas = zip(*(load_model_file(p, task="destripe") for p in paths), strict=True)
    arch = metas[0]["architecture"]
    for p, state, meta in zip(paths, states, metas, strict=True):
        if meta["architecture"] != arch or set(state) != set(states[0]):
            sys.exit(f"{p} holds another network ({meta['architecture']}) than {paths[0]}")
    mean = {k: sum(s[k].float() for s in states) / len(states) for k in states[0]}
    meta = dict(metas[-1])
    meta["weight_average"] = {
        "files": [model_paths(p)[0].name for p in paths],
        "steps": [int(m.get("steps", 0)) for m in metas],
        "method": "arithmetic mean of the weights (no normalisation layers to recompute)",
    }
    return mean, meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path, help="model to write (no suffix, or .safetensors)")
    p.add_argument("models", type=Path, nargs="+", help="model files of one run")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if not args.overwrite and any(f.exists() for f in model_paths(args.out)):
        sys.exit(f"{args.out} exists; pass --overwrite to replace it")
    state, meta = average(args.models)
    path = save_model_file(args.out, state, meta)
    print(
        f"wrote {path}: mean of {len(args.models)} models, steps {meta['weight_average']['steps']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
