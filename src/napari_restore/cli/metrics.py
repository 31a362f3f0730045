"""``napari-restore metrics``: MAE / PSNR / SSIM of images against a ground truth."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from napari_restore.metrics import Metrics


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="compare images with a ground truth (MAE, PSNR, SSIM)",
        description="Compare one or more images with a ground truth by MAE, PSNR and SSIM "
        "(Gaussian window, sigma 1.5; equal to scikit-image). The data range R is max - min of "
        "the ground truth unless --data-range is given, and is printed with the results. "
        "Without a ground truth: metrics INPUT RESTORED... --no-reference.",
    )
    p.add_argument("ground_truth", type=Path, help="ground truth (with --no-reference: the input)")
    p.add_argument("images", type=Path, nargs="+", help="images to assess")
    p.add_argument("--data-range", type=float, default=None, help="R for PSNR and SSIM")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--per-slice", action="store_true", help="also list values per plane")
    p.add_argument(
        "--csv", type=Path, default=None, help="also write the rows (and per-plane rows) to a CSV"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    p.add_argument(
        "--backend",
        choices=("numpy", "torch"),
        default="numpy",
        help="compute with numpy (default) or torch (faster on a GPU for big stacks)",
    )
    p.add_argument("--device", default="auto", help="torch backend device (auto, cpu, cuda:N, mps)")
    nr = p.add_argument_group(
        "without a ground truth",
        "With --no-reference the first image is the striped INPUT and the others are its "
        "restored versions: the stripe meter reports the share of the stripe energy removed, "
        "the structure changed outside the stripe wedge of the spectrum, and the change of "
        "median and mean intensity over the foreground (docs/metrics.md).",
    )
    nr.add_argument(
        "--no-reference",
        action="store_true",
        help="compare restored images with their input instead of a ground truth",
    )
    nr.add_argument(
        "--direction",
        choices=("auto", "horizontal", "vertical"),
        default="auto",
        help="which way the stripes run (default: found per plane)",
    )
    nr.add_argument(
        "--domain",
        choices=("linear", "log"),
        default="linear",
        help="compare spectra of the intensities (linear, default; additive stripes) or of "
        "their logarithm (log; attenuation stripes such as light-sheet shadows, which multiply "
        "the image)",
    )
    p.set_defaults(func=run)


def _decimals(values: list[float], significant: int = 4) -> int:
    """Decimals that give the largest value ``significant`` digits: one format per column."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not finite:
        return 2
    return int(min(max(significant - 1 - math.floor(math.log10(max(finite))), 0), 8))


def format_table(rows: list[tuple[str, Metrics]], per_slice: bool = False) -> str:
    """Plain-text table of results (one row per image, plus per-plane rows on request)."""
    name_w = max([len("image")] + [len(n) for n, _ in rows])
    head = f"{'image':<{name_w}}  {'MAE':>12}  {'PSNR (dB)':>9}  {'SSIM':>7}  data range"
    lines = [head, "-" * len(head)]
    mae_digits = _decimals([m.mae for _, m in rows])
    for name, m in rows:
        lines.append(
            f"{name:<{name_w}}  {m.mae:>12.{mae_digits}f}  {m.psnr:>9.3f}  {m.ssim:>7.4f}  "
            f"{m.data_range:g} ({m.data_range_source})"
        )
        if per_slice and m.per_slice:
            for i, (a, p, s) in enumerate(zip(*m.per_slice.values(), strict=True)):
                lines.append(
                    f"{'  plane ' + str(i):<{name_w}}  {a:>12.{mae_digits}f}  {p:>9.3f}  {s:>7.4f}"
                )
    if any(m.per_slice for _, m in rows):
        lines.append("stacks: MAE/PSNR over all voxels, SSIM = mean of 2D plane SSIM")
    return "\n".join(lines)


def format_stripe_table(rows: list[tuple[str, Any]], per_slice: bool = False) -> str:
    """Plain-text table of stripe-meter results (one row per restored image, then planes)."""

    def pct(v: float) -> str:
        return "—" if math.isnan(v) else f"{100 * v:.2f}"

    name_w = max([len("restored")] + [len(n) for n, _ in rows])
    head = (
        f"{'restored':<{name_w}}  {'stripes removed %':>17}  {'structure changed %':>19}  "
        f"{'median %':>8}  {'mean %':>8}  direction (angle)"
    )
    lines = [head, "-" * len(head)]
    for name, m in rows:
        angle = "" if math.isnan(m.angle) else f" ({m.angle:+.2f}°)"
        lines.append(
            f"{name:<{name_w}}  {pct(m.stripe_removed):>17}  {pct(m.structure_changed):>19}  "
            f"{pct(m.median_change):>8}  {pct(m.mean_change):>8}  {m.direction}{angle}"
        )
        if per_slice and m.per_plane:
            p = m.per_plane
            for i in range(len(p["stripe_removed"])):
                lines.append(
                    f"{'  plane ' + str(i):<{name_w}}  {pct(p['stripe_removed'][i]):>17}  "
                    f"{pct(p['structure_changed'][i]):>19}  {pct(p['median_change'][i]):>8}  "
                    f"{pct(p['mean_change'][i]):>8}  {m.plane_directions[i]}"
                )
    for name, m in rows:
        lines.append(f"{name}: {m.verdict}")
    return "\n".join(lines)


def _check_csv(args: argparse.Namespace) -> None:
    """Before measuring: an existing (without --overwrite), clashing or unwritable CSV."""
    from napari_restore.core.files import check_outputs

    if args.csv is not None:
        check_outputs([args.csv], [args.ground_truth, *args.images], overwrite=args.overwrite)


def run_no_reference(args: argparse.Namespace) -> int:
    """``metrics INPUT RESTORED... --no-reference``: the stripe meter."""
    from napari_restore.io import open_image
    from napari_restore.stripe_meter import measure_stripes, stripe_rows, write_stripe_csv

    _check_csv(args)
    source = open_image(args.ground_truth)
    rows = [
        (
            str(path),
            measure_stripes(source, open_image(path), direction=args.direction, domain=args.domain),
        )
        for path in args.images
    ]
    if args.csv is not None:
        csv_rows = [r for name, m in rows for r in stripe_rows(str(args.ground_truth), name, m)]
        write_stripe_csv(args.csv, csv_rows, overwrite=args.overwrite)
    if args.json:
        payload = {
            "input": str(args.ground_truth),
            "results": [{"restored": n, **m.as_dict(per_plane=args.per_slice)} for n, m in rows],
        }
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        print(f"input: {args.ground_truth} (no reference; spectra: {args.domain} domain)")
        print(format_stripe_table(rows, per_slice=args.per_slice))
        if args.csv is not None:
            print(f"wrote {args.csv}")
    return 0


def run(args: argparse.Namespace) -> int:
    from napari_restore.io import open_image
    from napari_restore.metrics import compute_metrics, metrics_rows, write_metrics_csv

    if args.no_reference:
        return run_no_reference(args)
    _check_csv(args)
    gt = open_image(args.ground_truth)
    rows = []
    for path in args.images:
        image = open_image(path)
        rows.append(
            (
                str(path),
                compute_metrics(
                    image, gt, data_range=args.data_range, backend=args.backend, device=args.device
                ),
            )
        )
    if args.json:
        payload = {
            "ground_truth": str(args.ground_truth),
            "results": [{"image": n, **m.as_dict(per_slice=args.per_slice)} for n, m in rows],
        }
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        print(f"ground truth: {args.ground_truth}")
        print(format_table(rows, per_slice=args.per_slice))
    if args.csv is not None:
        gt_name = str(args.ground_truth)
        write_metrics_csv(
            args.csv,
            [r for name, m in rows for r in metrics_rows(name, gt_name, m)],
            overwrite=args.overwrite,
        )
        if not args.json:
            print(f"wrote {args.csv}")
    return 0
