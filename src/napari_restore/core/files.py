"""Output paths: checked before work starts, written atomically (complete or not at all)."""

from __future__ import annotations

import csv
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from napari_restore.errors import RestoreInputError


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
    remove_stale_parts(final)
    # The writer's process id is in the name, so a later run can tell leftovers from live work.
    tmp_dir = Path(
        tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".part", dir=final.parent)
    )
    target = tmp_dir / final.name
    try:
        yield target
        if target.is_file():  # some writers create 0600 files: give the usual mode
            os.chmod(target, 0o666 & ~_umask())
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(target, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. no permission to signal it: it exists
        return True
    return True


def remove_stale_parts(final: str | os.PathLike[str]) -> list[Path]:
    """Delete leftovers of interrupted writes of ``final`` (SIGKILL, power loss) beside it.

    A leftover is a ``.NAME.PID.XXXX.part`` folder whose writing process ``PID`` no longer
    runs; folders of live writers are kept.

    Returns
    -------
    list of pathlib.Path
        The folders removed.
    """
    final = Path(final)
    removed = []
    for part in final.parent.glob(f".{glob.escape(final.name)}.*.part"):
        pid_text = part.name[len(final.name) + 2 :].split(".", 1)[0]
        if not (part.is_dir() and pid_text.isdigit()) or _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(part, ignore_errors=True)
        removed.append(part)
    return removed


def _same_file(a: Path, b: Path) -> bool:
    """True where ``a`` and ``b`` name one file (symlinks, ``..`` and hard links resolved)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _writable_dir(path: Path) -> None:
    """Raise :class:`RestoreInputError` unless ``path``'s directory exists (or can be made)
    and a file can be created in it; probed by creating one, which also catches read-only
    file systems and runs as root."""
    parent = path.parent
    probe = parent
    while not probe.exists():  # the nearest existing ancestor is where mkdir would start
        probe = probe.parent
    if not probe.is_dir():
        raise RestoreInputError(f"Cannot write {path}: {probe} is a file, not a directory.")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise RestoreInputError(
            f"Cannot write {path}: the directory {probe} is not writable ({err.strerror})."
        ) from err


def check_outputs(
    outputs: Iterable[str | os.PathLike[str] | None],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    *,
    overwrite: bool = False,
) -> None:
    """Refuse outputs that would destroy data or fail late, before any work starts.

    Parameters
    ----------
    outputs : iterable of path-like or None
        Every path a job will write (``None`` entries are skipped).
    inputs : iterable of path-like or None
        Every path it reads; no output may name one of them.
    overwrite : bool
        Allow replacing existing outputs (never inputs).

    Raises
    ------
    RestoreInputError
        If an output is an input or another output (after resolving symlinks and relative
        paths), exists and ``overwrite`` is false, or cannot be created in its directory.
    """
    outs = [Path(p) for p in outputs if p is not None]
    ins = [Path(p) for p in inputs if p is not None]
    for k, out in enumerate(outs):
        for inp in ins:
            if _same_file(out, inp):
                what = "folder" if inp.is_dir() else "file"
                raise RestoreInputError(
                    f"The output {out} is the input {what} {inp}; choose another output path."
                )
        for other in outs[:k]:
            if _same_file(out, other):
                raise RestoreInputError(f"{out} is given as two different outputs.")
        if (out.exists() or out.is_symlink()) and not overwrite:
            raise RestoreInputError(
                f"{out} exists; pass overwrite=True (--overwrite on the command line) to "
                "replace it."
            )
        _writable_dir(out)


def write_csv_rows(
    path: str | os.PathLike[str],
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Write rows to a CSV file with the given columns (missing keys empty), atomically.

    An existing file is replaced only with ``overwrite=True`` (else
    :class:`~napari_restore.errors.RestoreInputError`, before anything is written).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    target = Path(path)
    check_outputs([target], overwrite=overwrite)
    with atomic_path(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})
    return target
