"""``napari-restore metrics``: MAE / PSNR / SSIM of images against a ground truth."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_restore.metrics import Metrics


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="compare images with a ground truth (MAE, PSNR, SSIM)",
        description="Compare one or more images with a ground truth by MAE, PSNR and SSIM "
        "(Gaussian window, sigma 1.5; equal to scikit-image). The data range R is max - min of "
        "the ground truth unless --data-range is given, and is printed with the results.",
    )
    p.add_argument("ground_truth", type=Path)
    p.add_argument("images", type=Path, nargs="+")
    p.add_argument("--data-range", type=float, default=None, help="R for PSNR and SSIM")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--per-slice", action="store_true", help="also list values per plane")
    p.add_argument("--backend", choices=("numpy", "torch"), default="numpy")
    p.add_argument("--device", default="auto", help="torch backend device (auto, cpu, cuda:N, mps)")
    p.set_defaults(func=run)


def format_table(rows: list[tuple[str, Metrics]], per_slice: bool = False) -> str:
    """Plain-text table of results (one row per image, plus per-plane rows on request)."""
    name_w = max([len("image")] + [len(n) for n, _ in rows])
    head = f"{'image':<{name_w}}  {'MAE':>12}  {'PSNR (dB)':>9}  {'SSIM':>7}  data range"
    lines = [head, "-" * len(head)]
    for name, m in rows:
        lines.append(
            f"{name:<{name_w}}  {m.mae:>12.6g}  {m.psnr:>9.3f}  {m.ssim:>7.4f}  "
            f"{m.data_range:g} ({m.data_range_source})"
        )
        if per_slice and m.per_slice:
            for i, (a, p, s) in enumerate(zip(*m.per_slice.values(), strict=True)):
                lines.append(f"{'  plane ' + str(i):<{name_w}}  {a:>12.6g}  {p:>9.3f}  {s:>7.4f}")
    if any(m.per_slice for _, m in rows):
        lines.append("stacks: MAE/PSNR over all voxels, SSIM = mean of 2D plane SSIM")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from napari_restore.io import open_image
    from napari_restore.metrics import compute_metrics

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
    return 0
