"""``napari-restore simulate`` and ``napari-restore noise``: degrade clean images on files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_restore.cli._common import (
    add_overwrite,
    add_quiet,
    parse_dtype,
    plane_bar,
)
from napari_restore.core.arrays import (
    cast_clipped,
    check_real_image,
    resolve_output_dtype,
    robust_range,
)
from napari_restore.simulate.stripes import (
    POLARITIES,
    STRIPE_MODES,
    StripeParams,
    iter_striped_planes,
    stripe_kinds,
)

_DEFAULTS = StripeParams()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="add synthetic stripes to a clean image (Wei et al. 2022 degradation model)",
        description="Add synthetic stripe artifacts to a clean image or stack. Stacks are "
        "processed plane by plane, so files larger than memory work.",
    )
    p.add_argument("input", type=Path, help="clean image: TIFF, zarr, OME-Zarr, .npy or PNG")
    p.add_argument("output", type=Path, help="striped image: .tif, .zarr, .ome.zarr or .npy")
    g = p.add_argument_group("stripe model (lengths in pixels)")
    g.add_argument(
        "--kind",
        choices=stripe_kinds(),
        default=_DEFAULTS.kind,
        help="stripe type (default %(default)s; docs/stripe-simulator.md shows each)",
    )
    g.add_argument(
        "--mode",
        choices=STRIPE_MODES,
        default=_DEFAULTS.mode,
        help="additive: stripes add intensity; multiplicative: they attenuate it, as "
        "absorbing structures do (default %(default)s)",
    )
    g.add_argument(
        "--density",
        type=float,
        default=_DEFAULTS.density,
        help="stripes per 100 px across (gaussian, tilted); default %(default)s",
    )
    g.add_argument("--count", type=int, default=None, help="exact number of stripes per plane")
    g.add_argument(
        "--width",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=_DEFAULTS.width,
        help="sigma across a stripe; default %(default)s",
    )
    g.add_argument(
        "--length",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="sigma along a stripe (default: through the whole image)",
    )
    g.add_argument(
        "--amplitude",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=_DEFAULTS.amplitude,
        help="attenuation (multiplicative) or fraction of the intensity range "
        "(additive); default %(default)s",
    )
    g.add_argument(
        "--polarity",
        choices=POLARITIES,
        default=_DEFAULTS.polarity,
        help="additive stripes: dark, bright or mixed",
    )
    g.add_argument(
        "--period",
        type=float,
        default=_DEFAULTS.period,
        help="distance between regular bands; default %(default)s",
    )
    g.add_argument(
        "--angle",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=_DEFAULTS.angle,
        help="tilted stripes: degrees from the x axis; default %(default)s",
    )
    g.add_argument(
        "--same-pattern",
        action="store_true",
        help="stacks: repeat one stripe pattern through all planes",
    )
    g.add_argument(
        "--seed", type=int, default=_DEFAULTS.seed, help="random seed; default %(default)s"
    )
    p.add_argument(
        "--dtype",
        type=parse_dtype,
        default="input",
        help="output dtype: 'input' (default, clipped) or e.g. float32",
    )
    p.add_argument("--field", type=Path, default=None, help="also write the stripe field here")
    add_overwrite(p)
    add_quiet(p)
    p.set_defaults(func=run)

    n = sub.add_parser(
        "noise",
        help="add Poisson-Gaussian camera noise to a clean image",
        description="Simulate a low-light acquisition: Poisson shot noise at a mean of PHOTONS "
        "photo-electrons per pixel, Gaussian read noise, camera gain and offset.",
    )
    n.add_argument("input", type=Path, help="clean image or stack (TIFF, zarr, .npy, PNG)")
    n.add_argument("output", type=Path, help="noisy image to write")
    n.add_argument(
        "--photons", type=float, default=2.0, help="mean photons per pixel (%(default)s)"
    )
    n.add_argument("--read-noise", type=float, default=1.0, help="electrons rms (%(default)s)")
    n.add_argument("--gain", type=float, default=1.0, help="ADU per electron (%(default)s)")
    n.add_argument("--offset", type=float, default=100.0, help="camera offset, ADU (%(default)s)")
    n.add_argument(
        "--seed", type=int, default=0, help="random seed; same seed, same noise (%(default)s)"
    )
    n.add_argument(
        "--dtype",
        type=parse_dtype,
        default="float32",
        help="output dtype (default float32; 'input' keeps the input's)",
    )
    n.add_argument(
        "--expected",
        type=Path,
        default=None,
        help="also write the noise-free expectation (the ground truth) here",
    )
    add_overwrite(n)
    n.set_defaults(func=run_noise)


def _params(args: argparse.Namespace) -> StripeParams:
    return StripeParams(
        kind=args.kind,
        mode=args.mode,
        density=args.density,
        count=args.count,
        width=tuple(args.width),
        length=tuple(args.length) if args.length else None,
        amplitude=tuple(args.amplitude),
        polarity=args.polarity,
        period=args.period,
        angle=tuple(args.angle),
        per_slice=not args.same_pattern,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from napari_restore.io import PlaneWriter, check_output_paths, open_image

    params = _params(args)
    outputs = [args.output] + ([args.field] if args.field else [])
    check_output_paths(outputs, [args.input], overwrite=args.overwrite)
    image = open_image(args.input)
    check_real_image(image, name=str(args.input))
    dtype = resolve_output_dtype(args.dtype, image.dtype)
    scale = robust_range(image) if params.mode == "additive" else 1.0
    n_planes = int(np.prod(image.shape[:-2])) if len(image.shape) > 2 else 1
    with ExitStack() as stack:
        writer = stack.enter_context(PlaneWriter(args.output, image.shape, dtype, source=image))
        field = (
            stack.enter_context(PlaneWriter(args.field, image.shape, np.float32, source=image))
            if args.field
            else None
        )
        bar = stack.enter_context(plane_bar(n_planes, "simulate", args.quiet))
        for index, degraded, plane_field in iter_striped_planes(image, params, scale=scale):
            writer[index] = cast_clipped(degraded, dtype)
            if field is not None:
                field[index] = plane_field
            bar.update()
    if not args.quiet:
        print(f"wrote {args.output} ({params.describe()}, shape {tuple(image.shape)}, {dtype})")
    return 0


def run_noise(args: argparse.Namespace) -> int:
    from napari_restore.io import check_output_paths, open_image, read_image, write_image
    from napari_restore.simulate.noise import check_noise_params, simulate_noise

    check_noise_params(
        args.photons, read_noise=args.read_noise, gain=args.gain, offset=args.offset, seed=args.seed
    )
    check_output_paths([args.output, args.expected], [args.input], overwrite=args.overwrite)
    clean = open_image(args.input)  # the source of a folder output's plane names
    clean_data = read_image(args.input)
    result = simulate_noise(
        clean_data,
        args.photons,
        read_noise=args.read_noise,
        gain=args.gain,
        offset=args.offset,
        seed=args.seed,
        output_dtype=args.dtype,
    )
    write_image(args.output, result.image, source=clean, overwrite=args.overwrite)
    if args.expected:
        write_image(args.expected, result.expected, source=clean, overwrite=args.overwrite)
    print(
        f"wrote {args.output} ({args.photons:g} photons/pixel, read noise {args.read_noise:g} e-)"
    )
    return 0
