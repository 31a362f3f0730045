"""Helpers shared by the subcommands: input checks, output checks, progress bars."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from napari_restore.errors import RestoreInputError


def existing_output(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing output unless ``--overwrite`` was given."""
    if path.exists() and not overwrite:
        raise RestoreInputError(f"{path} exists; pass --overwrite to replace it.")


def check_distinct(inp: Path, out: Path) -> None:
    """Refuse to write the output over the input."""
    if out.resolve() == inp.resolve():
        raise RestoreInputError(f"The output {out} is the input file; choose another output path.")


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
