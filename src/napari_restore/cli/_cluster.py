"""Flags and the run loop that ``destripe`` and ``denoise`` share for runs on a dask cluster."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from napari_restore.errors import RestoreInputError


def _block_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.lower().replace("x", ",").split(",") if v)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: give sizes such as 8,2048,2048") from err
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be >= 1")
    return shape


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--scheduler``, ``--resume``, ``--block-size``, ``--pyramid``."""
    g = parser.add_argument_group(
        "cluster (dask.distributed; output: DIR.ome.zarr)",
        "With --workers or --scheduler the volume is processed block by block on a dask "
        "cluster and written as OME-Zarr with the input's axes, scale and units.",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="start a local cluster of N worker processes (0: one per GPU, else one per core)",
    )
    g.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="use a running cluster: scheduler address (tcp://host:8786) or scheduler file",
    )
    g.add_argument(
        "--threads-per-worker",
        type=int,
        default=1,
        metavar="N",
        help="threads per local worker (default 1)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted run into the same output; finished blocks are skipped",
    )
    g.add_argument(
        "--block-size",
        type=_block_shape,
        default=None,
        metavar="Z,Y,X",
        help="block size per axis (default: from the workers' memory)",
    )
    g.add_argument(
        "--pyramid",
        type=int,
        default=0,
        metavar="LEVELS",
        help="extra resolution levels, each 2x smaller in y and x (default 0)",
    )


def wants_cluster(args: argparse.Namespace) -> bool:
    """Whether the command runs on a cluster (``--workers`` or ``--scheduler`` given)."""
    if getattr(args, "workers", None) is None and not getattr(args, "scheduler", None):
        if getattr(args, "resume", False) or getattr(args, "block_size", None):
            raise RestoreInputError("--resume and --block-size need --workers or --scheduler.")
        return False
    if getattr(args, "recursive", False):
        raise RestoreInputError("--recursive cannot be combined with --workers/--scheduler.")
    if args.workers is not None and args.workers < 0:
        raise RestoreInputError("--workers must be >= 0.")
    if args.pyramid < 0:
        raise RestoreInputError("--pyramid must be >= 0.")
    return True


def run_on_cluster(args: argparse.Namespace, start: Callable[[Any], Any], desc: str) -> int:
    """Open the cluster, run ``start(client)`` (a generator of block Progress) with a tqdm bar
    over blocks, and report. Ctrl-C cancels the blocks and leaves a resumable store."""
    from tqdm.auto import tqdm

    from napari_restore.engine.blockwise import cluster_client, dashboard_link

    with cluster_client(
        workers=args.workers,
        scheduler=args.scheduler,
        threads_per_worker=args.threads_per_worker,
    ) as client:
        link = dashboard_link(client)
        if not args.quiet:
            n = len(client.scheduler_info().get("workers", {}))
            print(f"cluster: {n} worker(s)" + (f", dashboard {link}" if link else ""))
        gen = start(client)
        bar = tqdm(unit="block", desc=desc, disable=args.quiet)
        try:
            while True:
                p = next(gen)
                bar.total = p.total
                bar.update(p.step - bar.n)
        except StopIteration as stop:
            run = stop.value
        except KeyboardInterrupt:
            gen.close()
            bar.close()
            print(
                f"\ninterrupted: {args.output} is incomplete (finished blocks are kept); "
                "run the same command with --resume to finish it"
            )
            return 130
        finally:
            bar.close()
    if not args.quiet:
        print(
            f"wrote {args.output}: {run.computed} block(s) computed, {run.skipped} already "
            f"done, {run.seconds:.1f} s on {len(run.workers or {})} worker(s)"
        )
    return 0
