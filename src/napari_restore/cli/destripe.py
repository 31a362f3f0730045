"""``napari-restore destripe`` and ``napari-restore train-destripe``."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from napari_restore.cli._cluster import add_cluster_flags, run_on_cluster, wants_cluster
from napari_restore.cli._common import (
    KeepStepsOnCtrlC,
    add_overwrite,
    add_quiet,
    add_recursive,
    parse_dtype,
)
from napari_restore.core.files import check_outputs
from napari_restore.destripe.config import DEFAULT_ADAPT_STEPS, DestripeTrainConfig
from napari_restore.engine.options import InferenceOptions
from napari_restore.errors import RestoreInputError
from napari_restore.simulate.stripes import stripe_kinds

_TRAIN = DestripeTrainConfig()  # the defaults shown in --help
_INFER = InferenceOptions()  # the defaults of the inference flags


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def parse_mix(values: list[str]) -> dict[str, float] | list[float]:
    """``--mix`` values: ``KIND=WEIGHT`` pairs, or three numbers (regular, gaussian, tilted)."""
    if all("=" in v for v in values):
        pairs = [v.split("=", 1) for v in values]
        try:
            return {k: _non_negative_float(w) for k, w in pairs}
        except argparse.ArgumentTypeError as err:
            raise RestoreInputError(f"--mix: {err}") from err
    try:
        return [_non_negative_float(v) for v in values]
    except argparse.ArgumentTypeError as err:
        raise RestoreInputError(
            f"--mix {' '.join(values)}: give KIND=WEIGHT pairs or three weights ({err})."
        ) from err


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from err
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} must be a number >= 0")
    return value


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads for torch (default: torch's choice; 1 is often fastest on a busy "
        "machine)",
    )


def _set_threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "destripe",
        help="remove stripe artifacts with a trained ResCBAM U-Net",
        description="Remove stripe artifacts from an image or stack (Wei et al. 2022 network). "
        "Stacks are processed plane by plane and written as they are done, so files larger "
        "than memory work; the output appears only when complete.",
    )
    p.add_argument(
        "input",
        type=Path,
        help="striped image: TIFF, zarr, OME-Zarr, .npy, PNG, or a folder of TIFF planes "
        "('DIR/*_C01.tif' picks files)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output: .tif, .zarr, .ome.zarr, .npy, or a folder (no suffix: one TIFF per plane)",
    )
    p.add_argument(
        "--model",
        default="builtin",
        help="model file (.safetensors) from train-destripe, or 'builtin' (default)",
    )
    p.add_argument("--device", default=_INFER.device, help="auto (default), cpu, cuda:N or mps")
    p.add_argument(
        "--direction",
        choices=("horizontal", "vertical", "auto"),
        default="horizontal",
        help="direction the stripes run in (default horizontal; auto: from the spectrum)",
    )
    p.add_argument(
        "--all-planes",
        action="store_true",
        help="keep the network's output on every plane, also on planes without stripes (by "
        "default a plane whose spectrum shows no stripes, and whose correction by the network "
        "is no stripe pattern either, is written unchanged)",
    )
    p.add_argument(
        "--no-cleanup",
        action="store_true",
        help="skip the spectral clean-up after the network (by default only the "
        "stripe-shaped part of the network's correction is kept, and the stripe wedge of the "
        "spectrum is brought down to its neighbours' level where the input shows stripes, and "
        "the plane's unstriped majority keeps its input intensity)",
    )
    p.add_argument(
        "--adapt",
        type=_positive_int,
        nargs="?",
        const=DEFAULT_ADAPT_STEPS,
        default=0,
        metavar="STEPS",
        help="adapt the network to this image first: a short fine-tune on its own destriped "
        f"planes with fresh random stripes (default {DEFAULT_ADAPT_STEPS} steps, about a minute "
        "on two CPU cores; the model file is not changed)",
    )
    p.add_argument(
        "--tile", type=_positive_int, default=None, help="tile edge (default: from memory)"
    )
    p.add_argument("--overlap", type=int, default=None, help="tile overlap (default tile/8)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="tiles per network call")
    p.add_argument(
        "--dtype",
        type=parse_dtype,
        default=_INFER.output_dtype,
        help="output dtype: 'input' (default, clipped to its range) or float32",
    )
    _add_threads(p)
    add_overwrite(p)
    add_recursive(p)
    add_quiet(p)
    add_cluster_flags(p)
    p.set_defaults(func=run_destripe)

    t = sub.add_parser(
        "train-destripe",
        help="train a destriping model on clean images (synthetic stripes on the fly)",
        description="Train a ResCBAM U-Net to remove stripes: random patches of the clean "
        "images get fresh random stripes every step (regular, Gaussian, tilted; additive or "
        "multiplicative). Loss = MAE + lambda * VGG-19 perceptual loss (+ W * the level error "
        "of the stripe-free pixels with --level-weight W). Writes MODEL.safetensors and "
        "MODEL.json.",
    )
    t.add_argument("clean", type=Path, nargs="+", help="clean images or stacks (TIFF, PNG ...)")
    t.add_argument("-o", "--output", type=Path, required=True, help="model file to write")
    t.add_argument(
        "--perceptual-weight",
        type=_non_negative_float,
        default=None,
        metavar="LAMBDA",
        help="weight of the VGG-19 perceptual loss (default "
        f"{_TRAIN.perceptual_weight:g}: MAE only, needs no VGG weights; with --resume: the "
        "model's)",
    )
    t.add_argument(
        "--level-weight",
        type=_non_negative_float,
        default=None,
        metavar="W",
        help="weight of a loss term on the mean of the pixels the stripes left unchanged, "
        "against brightening or darkening what is not a stripe (default "
        f"{_TRAIN.level_weight:g}; with --resume: the model's)",
    )
    # None = not given: the default of DestripeTrainConfig, or the resumed model's setting.
    t.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help=f"steps to run ({_TRAIN.steps}; with --resume: further steps)",
    )
    t.add_argument(
        "--lr", type=float, default=None, help=f"Adam learning rate ({_TRAIN.learning_rate:g})"
    )
    t.add_argument(
        "--patch-size", type=_positive_int, default=None, help=f"patch edge ({_TRAIN.patch_size})"
    )
    t.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help=f"patches per step ({_TRAIN.batch_size})",
    )
    t.add_argument(
        "--mix",
        nargs="+",
        metavar="KIND=W",
        default=None,
        help="relative frequencies of the stripe kinds, e.g. regular=1 gaussian=1 tilted=1 "
        f"(kinds: {', '.join(stripe_kinds())}; default "
        + " ".join(f"{k}={v:g}" for k, v in _TRAIN.stripe_mix.items())
        + "); three numbers are read as regular, gaussian, tilted",
    )
    t.add_argument(
        "--modes",
        nargs="+",
        choices=("additive", "multiplicative"),
        default=None,
        help=f"stripe modes to train on ({' '.join(_TRAIN.modes)})",
    )
    t.add_argument(
        "--clean-fraction",
        type=float,
        default=None,
        metavar="F",
        help="share of patches left without stripes, so the network learns to leave clean "
        f"structures alone ({_TRAIN.clean_fraction:g}; 0.2-0.3 helps on sparse objects)",
    )
    t.add_argument(
        "--bright-fraction",
        type=float,
        default=None,
        metavar="F",
        help="share of multiplicative stripe fields that brighten instead of darkening, so the "
        f"network does not learn that every correction brightens ({_TRAIN.bright_fraction:g}; "
        "the built-in model used 0.5)",
    )
    t.add_argument(
        "--shadow-fraction",
        type=float,
        default=None,
        metavar="F",
        help="share of stripe fields drawn as absorber shadows (sharp onsets that trail off, "
        f"fanned and bent) instead of the simulator's kinds ({_TRAIN.shadow_fraction:g})",
    )
    t.add_argument(
        "--shadow-profiles",
        default=None,
        metavar="{classic,varied}",
        help="cross-sections of those shadows: Gaussian or flat-topped (classic), or also "
        f"generalised-Gaussian, lopsided and haloed (varied) ({_TRAIN.shadow_profiles})",
    )
    t.add_argument(
        "--base-channels",
        type=_positive_int,
        default=None,
        help=f"U-Net width ({_TRAIN.base_channels})",
    )
    t.add_argument(
        "--depth", type=_positive_int, default=None, help=f"U-Net levels ({_TRAIN.depth})"
    )
    t.add_argument("--seed", type=int, default=None, help=f"random seed ({_TRAIN.seed})")
    t.add_argument(
        "--val-every",
        type=_positive_int,
        default=None,
        help=f"validate every N ({_TRAIN.val_every})",
    )
    t.add_argument("--device", default=None, help="auto (default), cpu, cuda:N or mps")
    t.add_argument(
        "--vgg-weights",
        type=Path,
        default=None,
        metavar="PATH",
        help="VGG-19 weights (torchvision's vgg19-dcbb9e9d.pth, or .safetensors)",
    )
    t.add_argument(
        "--download-vgg",
        action="store_true",
        help="download the VGG-19 weights into the torch hub cache if missing",
    )
    t.add_argument(
        "--resume", type=Path, default=None, metavar="MODEL", help="continue training this model"
    )
    t.add_argument(
        "--minutes", type=float, default=None, help="stop after this many minutes and save"
    )
    _add_threads(t)
    add_overwrite(t)
    add_quiet(t)
    t.set_defaults(func=run_train)


def run_destripe(args: argparse.Namespace) -> int:
    from napari_restore.core.device import describe_device, resolve_device
    from napari_restore.core.progress import run_to_end
    from napari_restore.destripe.infer import destripe_file_progress
    from napari_restore.io import PlaneWriter, check_output_paths
    from napari_restore.io_folders import input_folder

    if not input_folder(args.input).exists():
        raise RestoreInputError(f"File not found: {args.input}")
    if wants_cluster(args):
        if args.adapt:
            raise RestoreInputError(
                "--adapt runs on one machine (it fine-tunes on whole planes); drop it, or "
                "drop --workers/--scheduler."
            )
        return _run_destripe_cluster(args)
    check_output_paths([args.output], [args.input], overwrite=args.overwrite)
    PlaneWriter(args.output, (1, 1), "uint8")  # refuses an unsupported output suffix early
    device = resolve_device(args.device)
    _set_threads(args)
    options = InferenceOptions(
        device=device,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        output_dtype=args.dtype,
    )
    gen = destripe_file_progress(
        args.input,
        args.output,
        args.model,
        options,
        direction=args.direction,
        only_striped=not args.all_planes,
        cleanup=not args.no_cleanup,
        adapt_steps=args.adapt,
        overwrite=args.overwrite,
    )
    run_to_end(gen, desc="destripe", progress_bar=not args.quiet)
    if not args.quiet:
        print(f"wrote {args.output} (device {describe_device(device)})")
    return 0


def _run_destripe_cluster(args: argparse.Namespace) -> int:
    """``destripe --workers/--scheduler``: block by block on a dask cluster, into OME-Zarr."""
    from napari_restore.destripe.distributed import destripe_volume_progress

    if not args.quiet:
        print(
            "note: on a cluster every plane goes through the network, without the stripe-"
            "evidence check and the spectral clean-up (both need whole planes)",
            file=sys.stderr,
        )
    _set_threads(args)
    options = InferenceOptions(
        device=args.device,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        output_dtype=args.dtype,
    )

    def start(client: Any) -> Any:
        return destripe_volume_progress(
            args.input,
            args.output,
            args.model,
            options,
            client=client,
            direction=args.direction,
            block_shape=args.block_size,
            resume=args.resume,
            overwrite=args.overwrite,
            pyramid=args.pyramid,
        )

    return run_on_cluster(args, start, "destripe")


def _load_clean(paths: list[Path]) -> list[Any]:
    from napari_restore.core.arrays import check_real_image
    from napari_restore.io import read_image

    images = []
    for path in paths:
        image = read_image(path)
        check_real_image(image, name=str(path))  # bool, complex, colour, empty, NaN: refused
        images.append(image)
    return images


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {
        "perceptual_weight": args.perceptual_weight,
        "level_weight": args.level_weight,
        "learning_rate": args.lr,
        "patch_size": args.patch_size,
        "batch_size": args.batch_size,
        "stripe_mix": parse_mix(args.mix) if args.mix else None,
        "modes": tuple(args.modes) if args.modes else None,
        "clean_fraction": args.clean_fraction,
        "bright_fraction": args.bright_fraction,
        "shadow_fraction": args.shadow_fraction,
        "shadow_profiles": args.shadow_profiles,
        "base_channels": args.base_channels,
        "depth": args.depth,
        "seed": args.seed,
        "val_every": args.val_every,
        "device": args.device,
        "vgg_weights": str(args.vgg_weights) if args.vgg_weights else None,
    }
    out = {k: v for k, v in pairs.items() if v is not None}
    if args.download_vgg:
        out["download_vgg"] = True
    return out


def run_train(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from napari_restore.core.device import describe_device, resolve_device
    from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer
    from napari_restore.engine.model_files import model_paths

    if args.device is not None:
        resolve_device(args.device)  # a bad device fails before the images are read

    weights, meta_path = model_paths(args.output)
    # Clashes and unwritable folders fail now, not after the training.
    check_outputs([weights, meta_path], [*args.clean, args.vgg_weights], overwrite=args.overwrite)
    if args.resume is not None and not model_paths(args.resume)[0].exists():
        raise RestoreInputError(f"Model file not found: {model_paths(args.resume)[0]}")
    if args.vgg_weights is not None and not args.vgg_weights.is_file():
        raise RestoreInputError(f"VGG-19 weights file not found: {args.vgg_weights}")
    if args.minutes is not None and not 0 <= args.minutes < math.inf:
        raise RestoreInputError("--minutes must be a finite number >= 0.")
    overrides = _overrides(args)
    _set_threads(args)
    images = _load_clean(args.clean)
    names = [p.name for p in args.clean]
    if args.resume is not None:
        from napari_restore.engine.model_files import read_model_metadata

        done = int(read_model_metadata(args.resume).get("steps", 0))
        steps = args.steps or _TRAIN.steps
        trainer = DestripeTrainer.resume(
            args.resume, images, names=names, steps=done + steps, **overrides
        )
    else:
        config = DestripeTrainConfig(**overrides, **({"steps": args.steps} if args.steps else {}))
        trainer = DestripeTrainer(images, config, names=names)
        steps = config.steps
    if not args.quiet:
        print(
            f"training on {describe_device(trainer.device)}: {len(images)} image(s), "
            f"{steps} steps, lambda {trainer.config.perceptual_weight:g}; validation input "
            f"PSNR {trainer.val_input_psnr:.2f} dB"
        )
    # The budget is checked after each step (so --minutes 0 still runs and saves one step).
    deadline = time.monotonic() + 60 * args.minutes if args.minutes is not None else math.inf
    bar = tqdm(total=trainer.step + steps, initial=trainer.step, unit="step", disable=args.quiet)
    gen = trainer.train(steps)
    post: dict[str, str] = {}
    with KeepStepsOnCtrlC(trainer) as ctrl_c:
        try:
            for p in gen:
                bar.update(p.step - bar.n)
                post.update(
                    {
                        k: f"{v:.4g}"
                        for k, v in p.losses.items()
                        if k not in ("perceptual", "level") or v
                    }
                )
                if "val_psnr" in p.metrics:
                    post["val_psnr"] = f"{p.metrics['val_psnr']:.2f}"
                bar.set_postfix(post, refresh=False)
                if time.monotonic() > deadline:
                    break
        finally:
            gen.close()
            bar.close()
    if ctrl_c.stopped and not args.quiet:
        print(f"training stopped by Ctrl-C after {trainer.step} steps; saving them")
    if trainer.history and "val_psnr" not in trainer.history[-1]:
        trainer.evaluate(record=True)  # stopped by --minutes between validations
    trainer.save(args.output, overwrite=args.overwrite)
    if not args.quiet:
        val = trainer.history[-1] if trainer.history else {}
        psnr = f", validation PSNR {val['val_psnr']:.2f} dB" if "val_psnr" in val else ""
        print(f"wrote {weights} ({trainer.step} steps{psnr})")
    return 0
