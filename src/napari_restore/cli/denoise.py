"""``napari-restore denoise``: self-supervised SRDTrans denoising of a stack file.

Either train a network on the noisy input itself (``--train-minutes`` / ``--train-steps``; no
clean data is needed) and optionally keep it (``--save-model``), or apply a saved one
(``--model``). Big files are read lazily and denoised chunk by chunk; the output appears only
when it is complete.

4D/5D files (e.g. T, C, Y, X with ``--stack-axis 0``) are processed stack by stack: training
trains one model per stack (each channel has its own structures and intensities), for the
given minutes or steps each, saved as ``FILE_<index>`` when ``--save-model FILE`` is given, and
each stack is denoised with its own model; ``--model`` applies one model to every stack.
Ctrl-C during training ends the current stack's training early and keeps its steps.

Training defaults depend on the device: on a GPU the paper's settings from scratch; on a CPU
small patches, a higher learning rate and a start from the pretrained network shipped with the
package (``--from-scratch`` for random weights). When the result is likely poor (too few
steps, a loss still falling steeply, an output whose contrast collapsed) a warning on stderr
says so and what to do.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from napari_restore.cli._cluster import add_cluster_flags, run_on_cluster, wants_cluster
from napari_restore.cli._common import (
    KeepStepsOnCtrlC,
    add_overwrite,
    add_quiet,
    add_recursive,
)
from napari_restore.denoise.config import DenoiseTrainConfig
from napari_restore.engine.options import InferenceOptions
from napari_restore.errors import RestoreInputError

_INFER = InferenceOptions()  # the defaults of the inference flags

_TRAIN = DenoiseTrainConfig()  # the seed default; the others depend on the device (for_device)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "denoise",
        help="self-supervised denoising of a time-lapse or z-stack (SRDTrans)",
        description="Remove noise from a fluorescence time-lapse or z-stack with SRDTrans "
        "(Li et al., Nat. Comput. Sci. 2023). Train on the noisy stack itself (no clean data "
        "needed) or apply a saved model.",
    )
    p.add_argument(
        "input",
        type=Path,
        help="noisy stack: TIFF, zarr, OME-Zarr, .npy, or a folder of TIFF planes",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="denoised output file, or a folder (no suffix: one TIFF per plane)",
    )
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--model", type=Path, help="apply this saved model (.safetensors)")
    how.add_argument(
        "--train-minutes", type=float, metavar="N", help="train on the input for N minutes"
    )
    how.add_argument("--train-steps", type=int, metavar="N", help="train for N steps")
    p.add_argument("--save-model", type=Path, metavar="FILE", help="keep the trained model here")
    p.add_argument(
        "--stack-axis",
        type=int,
        default=0,
        metavar="N",
        help="axis of T or Z in 4D/5D files; the other leading axes (e.g. channels) are "
        "processed one by one, and training trains a model for each; default %(default)s",
    )
    g = p.add_argument_group(
        "training (defaults: the paper's on a GPU, 32 frames x 64 px patches from the "
        "pretrained network at lr 5e-5 on a CPU, lr 5e-4 with --from-scratch)"
    )
    g.add_argument("--patch-t", type=int, default=None, help="frames per patch (multiple of 16)")
    g.add_argument("--patch-xy", type=int, default=None, help="lateral patch size (even)")
    g.add_argument("--batch-size", type=int, default=None, help="patches per step")
    g.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    g.add_argument(
        "--from-scratch",
        action="store_true",
        help="start from random weights instead of the pretrained network (CPU default)",
    )
    g.add_argument("--seed", type=int, default=_TRAIN.seed, help="random seed; default %(default)s")
    i = p.add_argument_group("inference")
    i.add_argument("--tile", type=int, default=None, help="lateral tile size (default: auto)")
    i.add_argument("--chunk-t", type=int, default=None, help="frames per chunk (default: auto)")
    i.add_argument(
        "--intensity",
        choices=("mean", "none"),
        default="mean",
        help="'mean' (default): output mean equals input mean; 'none': raw network output",
    )
    i.add_argument(
        "--flips",
        type=lambda v: v if v == "auto" else int(v),
        choices=("auto", 1, 2, 4),
        default="auto",
        help="average the outputs of this many mirrored copies (cleaner; that many times the "
        "time). auto (default): 4 on the CPU for stacks up to 64x256x256 voxels, else 1",
    )
    p.add_argument("--device", default=_INFER.device, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--dtype",
        choices=("input", "float32"),
        default=_INFER.output_dtype,
        help="output dtype: the input's (default, clipped) or float32",
    )
    add_overwrite(p)
    add_recursive(p)
    add_quiet(p)
    add_cluster_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_restore.core.device import resolve_device
    from napari_restore.denoise.infer import denoise_file, load_denoise_model, output_warnings
    from napari_restore.denoise.workflows import (
        per_stack,
        per_stack_model_paths,
        stack_trainers,
    )
    from napari_restore.engine.model_files import model_paths
    from napari_restore.io import check_output_paths, open_image

    if wants_cluster(args):
        return _run_cluster(args)
    check_output_paths([args.output], [args.input], overwrite=args.overwrite)
    training = args.model is None
    if args.save_model is not None and not training:
        raise RestoreInputError("--save-model needs training (--train-minutes/--train-steps).")
    if args.train_minutes is not None and not 0 < args.train_minutes < math.inf:
        raise RestoreInputError("--train-minutes must be a positive, finite number.")
    if args.train_steps is not None and args.train_steps < 1:
        raise RestoreInputError("--train-steps must be at least 1.")
    device = resolve_device(args.device)
    image = open_image(args.input)

    if training:
        given = {
            "patch_t": args.patch_t,
            "patch_xy": args.patch_xy,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
        }
        if args.from_scratch:
            given["init"] = "scratch"
        config = DenoiseTrainConfig.for_device(
            device,
            epochs=None if args.train_minutes is not None else 1,
            minutes=args.train_minutes,
            seed=args.seed,
            preview_every=0,
            preview_seconds=0,
            **{k: v for k, v in given.items() if v is not None},
        )
        stacks = per_stack(image, args.stack_axis)
        saves = per_stack_model_paths(args.save_model, stacks)
        model_files = [f for path in saves if path is not None for f in model_paths(path)]
        # Clashes and unwritable folders fail now, not after the training.
        check_output_paths([args.output, *model_files], [args.input], overwrite=args.overwrite)
        models = []
        trainers = stack_trainers(image, config, stack_axis=args.stack_axis, source=args.input.name)
        for (label, trainer), save in zip(trainers, saves, strict=True):
            if label and not args.quiet:
                print(f"training on {label.strip()}")
            _train(trainer, args)
            if save is not None:
                saved = trainer.save(save, overwrite=args.overwrite)
                if not args.quiet:
                    print(f"saved model {saved}")
            models.append(trainer.model)
        model = models if len(models) > 1 else models[0]
    else:
        model = load_denoise_model(args.model, device)

    denoise_file(
        args.input,
        args.output,
        model,
        InferenceOptions(device=device, tile=args.tile, output_dtype=args.dtype),
        stack_axis=args.stack_axis,
        chunk_t=args.chunk_t,
        intensity=args.intensity,
        flips=args.flips,
        progress_bar=not args.quiet,
        overwrite=args.overwrite,
    )
    if not args.quiet:
        print(f"wrote {args.output} (shape {tuple(image.shape)})")
    _warn(output_warnings(open_image(args.input), open_image(args.output)))
    return 0


def _warn(messages: list[str]) -> None:
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)


def _train(trainer: Any, args: argparse.Namespace) -> None:
    """Run the training of one stack; Ctrl-C ends it early and keeps the steps done."""
    from napari_restore.core.progress import run_to_end
    from napari_restore.denoise.train import training_warnings

    summary = None
    with KeepStepsOnCtrlC(trainer) as ctrl_c:
        summary = run_to_end(
            trainer.train(steps=args.train_steps, minutes=args.train_minutes),
            desc="train",
            progress_bar=not args.quiet,
        )
        loss = summary["losses"].get("total", float("nan"))
        done = f"trained {summary['steps']} steps in {summary['seconds']:.0f} s"
    if ctrl_c.stopped:
        loss = trainer.history[-1]["total"] if trainer.history else float("nan")
        done = f"training stopped by Ctrl-C after {trainer.step} steps"
    if not args.quiet:
        print(
            f"{done} {trainer.start_description} "
            f"(patch {trainer.patch_t}x{trainer.patch_xy}x{trainer.patch_xy}), "
            f"loss {loss:.4g} ({trainer.loss_units})"
        )
    _warn(training_warnings(trainer, summary))


def _run_cluster(args: argparse.Namespace) -> int:
    """``denoise --workers/--scheduler``: apply a saved model block by block on a dask
    cluster, into OME-Zarr (training stays on one machine: train first, then apply)."""
    from napari_restore.denoise.distributed import denoise_volume_progress

    if args.model is None:
        raise RestoreInputError(
            "--workers/--scheduler apply a saved model: give --model (train one first with "
            "--train-minutes ... --save-model FILE on a smaller part of the data)."
        )
    options = InferenceOptions(device=args.device, tile=args.tile, output_dtype=args.dtype)
    if args.flips not in ("auto", 1):
        print("note: the cluster applies one pass per block (--flips is not used there)")

    def start(client: Any) -> Any:
        return denoise_volume_progress(
            args.input,
            args.output,
            args.model,
            options,
            client=client,
            intensity=args.intensity,
            block_shape=args.block_size,
            resume=args.resume,
            overwrite=args.overwrite,
            pyramid=args.pyramid,
        )

    return run_on_cluster(args, start, "denoise")
