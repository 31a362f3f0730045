"""Average the weights of destriping model files from one training run (weight averaging).

Checkpoints taken along a run at a constant learning rate scatter around a good solution; their
mean is usually better than any single one and no longer depends on where the run happened to
stop (Izmailov et al., "Averaging weights leads to wider optima and better generalization",
UAI 2018). The ResCBAM U-Net has no normalisation layers, so the plain mean of the weights is
the whole procedure (no statistics to recompute).

Usage, from the repository root::

    python scripts/average_destripe_models.py OUT CKPT1 CKPT2 ... [--overwrite]
        [--phase PHASE.json [--evaluate DATA_DIR]]

The metadata of the last file is kept (training settings, steps), with the averaged files and
their steps added under ``weight_average``. All files must hold the same architecture, except
that a file without strip context is grown to match one with it (its context output at zero,
so it computes what it did). Listing
a file twice weighs it twice (WiSE-FT, Wortsman et al., CVPR 2022: the shipped model and a
fine-tuned snapshot, ``alpha`` = the snapshot's share).

A shipping candidate is a new *phase* of the shipped model: with ``--phase`` the metadata of the
first file (the shipped model, which holds the history) is kept instead, and the JSON object in
``PHASE.json`` (data, settings, command, device, minutes, selection, screen numbers) is
appended to its ``training_phases``; ``steps`` and ``minutes`` follow the phase (its
``steps`` ``[first, last]`` and ``minutes``). ``--evaluate DATA_DIR`` re-runs the training
script's held-out evaluation on the averaged weights (CPU) and stores it as ``evaluation``, so
that the shipped JSON is made by one command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_restore.engine.model_files import (  # noqa: E402
    load_model_file,
    model_paths,
    read_model_metadata,
    save_model_file,
)


def grow_without_strip_context(states: list[dict], metas: list[dict]) -> None:
    """Give the files without strip context (``ResCBAMUNet(strip_context=True)``) the module
    of the first file that has it, with its output convolution at zero, in place.

    Such a grown network computes exactly what the file did (the module adds
    ``out(...) = 0``), whatever its other context weights; taking them from the fine-tuned file
    makes the average of a plain model and a fine-tune grown from it the fine-tune with its
    context output scaled by the fine-tune's share (WiSE-FT's interpolation).
    """
    donor = next(
        (i for i, m in enumerate(metas) if m["architecture"]["kwargs"].get("strip_context")), None
    )
    if donor is None:
        return
    for state, meta in zip(states, metas, strict=True):
        kwargs = meta["architecture"]["kwargs"]
        if (
            kwargs.get("strip_context")
            or {**kwargs, "strip_context": True} != metas[donor]["architecture"]["kwargs"]
        ):
            continue
        for key, value in states[donor].items():
            if key.startswith("contexts."):
                state[key] = value.clone().zero_() if ".out." in key else value.clone()
        meta["architecture"] = metas[donor]["architecture"]


def average(paths: list[Path]) -> tuple[dict, dict]:
    """Mean weights of the model files and the metadata of the last one (with the sources)."""
    loaded = [load_model_file(p, task="destripe") for p in paths]
    states, metas = [dict(s) for s, _ in loaded], [dict(m) for _, m in loaded]
    grow_without_strip_context(states, metas)
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


def read_phase(path: Path) -> dict:
    """The phase record in ``path``, checked before any weights are read."""
    phase = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(phase, dict):
        sys.exit(f"{path} must hold one JSON object (the phase record)")
    for key in ("steps", "command", "device"):
        if key not in phase:
            sys.exit(f"the phase record needs {key!r} (and should say data, settings, minutes)")
    return phase


def as_phase(meta: dict, base: dict, phase: dict) -> dict:
    """The base model's metadata with ``phase`` appended to its training phases (see the
    module docstring); the averaged files stay under ``weight_average``."""
    out = dict(base)
    out["training_phases"] = [*base.get("training_phases", []), phase]
    steps = phase["steps"]
    out["steps"] = int(steps[-1] if isinstance(steps, list) else steps)
    if "minutes" in phase and "minutes" in base:
        out["minutes"] = round(float(base["minutes"]) + float(phase["minutes"]), 1)
    weights = dict(meta["weight_average"])
    shares = {f: weights["files"].count(f) / len(weights["files"]) for f in weights["files"]}
    weights["shares"] = shares
    out["weight_average"] = weights
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path, help="model to write (no suffix, or .safetensors)")
    p.add_argument("models", type=Path, nargs="+", help="model files of one run")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--phase", type=Path, help="JSON object: record the average as a new training phase"
    )
    p.add_argument(
        "--evaluate",
        type=Path,
        metavar="DATA_DIR",
        help="with --phase: re-run the held-out evaluation of scripts/train_destripe_model.py",
    )
    args = p.parse_args(argv)
    if args.evaluate and not args.phase:
        sys.exit("--evaluate records the evaluation of a phase; pass --phase too")
    if not args.overwrite and any(f.exists() for f in model_paths(args.out)):
        sys.exit(f"{args.out} exists; pass --overwrite to replace it")
    phase = read_phase(args.phase) if args.phase else None
    state, meta = average(args.models)
    if phase is not None:
        meta = as_phase(meta, read_model_metadata(args.models[0], task="destripe"), phase)
        if args.evaluate:
            meta["evaluation"] = evaluate_weights(state, meta, args.evaluate)
    path = save_model_file(args.out, state, meta)
    print(
        f"wrote {path}: mean of {len(args.models)} models, steps {meta['weight_average']['steps']}"
    )
    return 0


def evaluate_weights(state: dict, meta: dict, data: Path) -> dict:
    """The training script's held-out evaluation of the averaged weights, on the CPU."""
    from napari_restore.models import build_model

    sys.path.insert(0, str(ROOT / "scripts"))
    from train_destripe_model import evaluate

    net = build_model(meta["architecture"])
    net.load_state_dict(state)
    return evaluate(net.eval(), data, "cpu")


if __name__ == "__main__":
    sys.exit(main())
