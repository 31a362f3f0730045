"""``napari-restore denoise``: self-supervised SRDTrans denoising of a stack file.

Either train a network on the noisy input itself (``--train-minutes`` / ``--train-steps``; no
clean data is needed) and optionally keep it (``--save-model``), or apply a saved one
(``--model``). Big files are read lazily and denoised chunk by chunk; the output appears only
when it is complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_restore.cli._common import add_overwrite, add_quiet, check_distinct, existing_output
from napari_restore.errors import RestoreInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "denoise",
        help="self-supervised denoising of a time-lapse or z-stack (SRDTrans)",
        description="Remove noise from a fluorescence time-lapse or z-stack with SRDTrans "
        "(Li et al., Nat. Comput. Sci. 2023). Train on the noisy stack itself (no clean data "
        "needed) or apply a saved model.",
    )
    p.add_argument("input", type=Path, help="noisy stack: TIFF, zarr, OME-Zarr or .npy")
    p.add_argument("-o", "--output", type=Path, required=True, help="denoised output file")
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
        help="axis of T or Z in 4D/5D files (other leading axes are denoised one by one); "
        "default %(default)s",
    )
    g = p.add_argument_group("training")
    g.add_argument("--patch-t", type=int, default=128, help="frames per patch (multiple of 16)")
    g.add_argument("--patch-xy", type=int, default=128, help="lateral patch size (even)")
    g.add_argument("--batch-size", type=int, default=1, help="patches per step")
    g.add_argument(
        "--lr",
        type=float,
        default=1e-4,
        help="Adam learning rate (default %(default)s, the paper's; short CPU runs gain from "
        "about 5e-4)",
    )
    g.add_argument("--seed", type=int, default=0, help="random seed; default %(default)s")
    i = p.add_argument_group("inference")
    i.add_argument("--tile", type=int, default=None, help="lateral tile size (default: auto)")
    i.add_argument("--chunk-t", type=int, default=None, help="frames per chunk (default: auto)")
    i.add_argument(
        "--intensity",
        choices=("mean", "none"),
        default="mean",
        help="'mean' (default): output mean equals input mean; 'none': raw network output",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--dtype",
        choices=("input", "float32"),
        default="input",
        help="output dtype: the input's (default, clipped) or float32",
    )
    add_overwrite(p)
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_restore.engine._stacks import resolve_stack_axis
    from napari_restore.engine.denoise_infer import denoise_file, load_denoise_model
    from napari_restore.engine.denoise_train import DenoiseTrainConfig, DenoiseTrainer
    from napari_restore.engine.device import resolve_device
    from napari_restore.engine.model_files import model_paths
    from napari_restore.engine.progress import run_to_end
    from napari_restore.io import open_image

    check_distinct(args.input, args.output)
    existing_output(args.output, args.overwrite)
    training = args.model is None
    if args.save_model is not None:
        if not training:
            raise RestoreInputError("--save-model needs training (--train-minutes/--train-steps).")
        for path in model_paths(args.save_model):
            existing_output(path, args.overwrite)
    if args.train_minutes is not None and not args.train_minutes > 0:
        raise RestoreInputError("--train-minutes must be positive.")
    if args.train_steps is not None and args.train_steps < 1:
        raise RestoreInputError("--train-steps must be at least 1.")
    device = resolve_device(args.device)
    image = open_image(args.input)
    resolve_stack_axis(len(image.shape), args.stack_axis)

    if training:
        if len(image.shape) > 3:
            raise RestoreInputError(
                f"{args.input} has shape {tuple(image.shape)}; training runs on one (T, Y, X) "
                "stack. Save one channel as its own file, train on it with --save-model, then "
                "denoise the whole file with --model."
            )
        config = DenoiseTrainConfig(
            patch_t=args.patch_t,
            patch_xy=args.patch_xy,
            batch_size=args.batch_size,
            epochs=None if args.train_minutes is not None else 1,
            minutes=args.train_minutes,
            seed=args.seed,
            learning_rate=args.lr,
            device=str(device),
            preview_every=0,
        )
        trainer = DenoiseTrainer(image, config, source=args.input.name)
        try:
            summary = run_to_end(
                trainer.train(steps=args.train_steps, minutes=args.train_minutes),
                desc="train",
                progress_bar=not args.quiet,
            )
            loss = summary["losses"].get("total", float("nan"))
            done = f"trained {summary['steps']} steps in {summary['seconds']:.0f} s"
        except KeyboardInterrupt:
            if trainer.step == 0:
                raise
            # Ctrl-C ends training early; the weights so far are kept and used.
            loss = trainer.history[-1]["total"] if trainer.history else float("nan")
            done = f"training stopped by Ctrl-C after {trainer.step} steps"
        if not args.quiet:
            print(
                f"{done} (patch {trainer.patch_t}x{trainer.patch_xy}x{trainer.patch_xy}), "
                f"loss {loss:.4g}"
            )
        if args.save_model is not None:
            saved = trainer.save(args.save_model)
            if not args.quiet:
                print(f"saved model {saved}")
        model = trainer.model
    else:
        model = load_denoise_model(args.model, device)

    denoise_file(
        args.input,
        args.output,
        model,
        stack_axis=args.stack_axis,
        chunk_t=args.chunk_t,
        device=device,
        tile=args.tile,
        output_dtype=args.dtype,
        intensity=args.intensity,
        progress_bar=not args.quiet,
    )
    if not args.quiet:
        print(f"wrote {args.output} (shape {tuple(image.shape)})")
    return 0
