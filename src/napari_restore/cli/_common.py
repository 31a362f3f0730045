"""Helpers shared by the subcommands: input checks, output checks, progress bars."""

from __future__ import annotations

import argparse
from typing import Any

from napari_restore.errors import RestoreInputError


def add_recursive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recursive",
        action="store_true",
        help="INPUT is a tree of folders of TIFF planes (e.g. DIR/tile_x/tile_y/*.tif): process "
        "every folder, tile by tile, into the same tree under OUTPUT; finished tiles are "
        "skipped (unless --overwrite), an interrupted one is resumed",
    )


def run_tree(args: argparse.Namespace) -> int:
    """Run ``args.func`` on every folder of planes below ``args.input`` (``--recursive``).

    Each folder's output is the folder at the same place below ``args.output``; outputs that
    are already complete are skipped unless ``--overwrite``.
    """
    from napari_restore.io_folders import folder_state, input_folder, is_folder_output, iter_tiles

    root = input_folder(args.input)
    if not root.is_dir():
        raise RestoreInputError(f"--recursive needs a folder as input; {root} is not one.")
    if not is_folder_output(args.output):
        raise RestoreInputError(
            f"--recursive writes a tree of folders; name the output a folder, not {args.output}."
        )
    out, top = args.output.resolve(), root.resolve()
    if out == top or top in out.parents:
        raise RestoreInputError(f"The output {args.output} is inside the input tree {root}.")
    if getattr(args, "save_model", None) is not None:
        raise RestoreInputError("--save-model cannot be combined with --recursive.")
    tiles = list(iter_tiles(args.input, args.output))
    if not tiles:
        raise RestoreInputError(f"No folder of TIFF planes below {args.input}.")
    quiet = getattr(args, "quiet", False)
    for k, (inp, dest, label) in enumerate(tiles, 1):
        if folder_state(dest) == "complete" and not args.overwrite:
            if not quiet:
                print(f"[{k}/{len(tiles)}] {label}: {dest} is complete, skipped")
            continue
        if not quiet:
            print(f"[{k}/{len(tiles)}] {label} -> {dest}")
        tile_args = argparse.Namespace(**{**vars(args), "input": inp, "output": dest})
        tile_args.recursive = False
        code = int(args.func(tile_args) or 0)
        if code:
            return code
    return 0


class KeepStepsOnCtrlC:
    """Context manager: a Ctrl-C inside ends a training early and keeps the steps done.

    The interrupt is swallowed (and ``stopped`` set) only if the trainer has finished a step;
    the caller then saves as usual, and a second Ctrl-C during the save aborts it (atomic
    writes leave nothing half-written). With no step done the interrupt propagates.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.stopped = False

    def __enter__(self) -> KeepStepsOnCtrlC:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is KeyboardInterrupt and self.trainer.step > 0:
            self.stopped = True
            return True
        return False


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def plane_bar(total: int, desc: str, quiet: bool) -> Any:
    """A tqdm bar over planes (disabled with ``--quiet`` or for a single plane)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="plane", disable=quiet or total <= 1)


def parse_dtype(text: str) -> str:
    """``input``, ``float32``, ``uint16`` ... as an argparse type."""
    import numpy as np

    if text == "input":
        return text
    try:
        return np.dtype(text).name
    except TypeError as err:
        raise argparse.ArgumentTypeError(f"unknown dtype {text!r}") from err
