"""Atomic output paths: a result appears complete or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it onto ``final`` only if the block succeeds.

    Works for files and for directories (zarr stores). A crash, an exception or Ctrl-C inside
    the block leaves no half-written ``final`` (an existing ``final`` stays untouched).

    Parameters
    ----------
    final : path-like
        Where the finished output must end up.

    Yields
    ------
    pathlib.Path
        The path to write to (same file name, inside a hidden temporary folder beside
        ``final``, so the rename never crosses file systems).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    target = tmp_dir / final.name
    try:
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(target, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
