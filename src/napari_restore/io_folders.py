"""Folders of 2D TIFF planes, as light-sheet microscopes and stitchers write them.

Input: a folder (or a glob pattern such as ``raw/*_C01.tif``) of one 2D TIFF per z plane is a
lazy ``(Z, Y, X)`` stack, :class:`TiffPlaneStack`: file names are sorted naturally
(``z9.tif`` before ``z10.tif``, :func:`tifffile.natural_sorted`), every file's header is
checked when the folder is opened (a plane of another shape or dtype is refused, naming the
file) and pixels are read plane by plane with :func:`tifffile.imread`, only when indexed.

Output: :class:`FolderPlaneWriter` writes one TIFF per plane, named like the input's planes
where the input was a folder, each file written under a hidden temporary name and renamed
into place, so a plane file under its final name is a complete plane. The folder holds a
progress marker while it is being written and a completion marker only once every plane is
there; a run that was interrupted is resumed by running it again: the planes already written
are kept and skipped.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_restore.errors import RestoreInputError

TIFF_SUFFIXES = (".tif", ".tiff")
# Written once every plane is in place; its presence is what makes a folder output finished.
COMPLETE_MARKER = ".napari-restore-complete.json"
# Written when a folder output is started; describes the planes so a re-run can resume.
PROGRESS_MARKER = ".napari-restore-progress.json"
_GLOB_CHARS = frozenset("*?[")


def is_pattern(path: str | os.PathLike[str]) -> bool:
    """Whether the last part of ``path`` is a glob pattern (``DIR/*.tif``)."""
    return bool(_GLOB_CHARS & set(Path(path).name))


def split_pattern(path: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """``(folder, pattern)`` of a folder input: ``DIR/*_C01.tif`` -> ``(DIR, "*_C01.tif")``,
    ``DIR`` -> ``(DIR, None)`` (every TIFF in it)."""
    p = Path(path)
    return (p.parent, p.name) if is_pattern(p) else (p, None)


def _is_zarr_dir(path: Path) -> bool:
    return path.suffix == ".zarr" or any(
        (path / name).exists() for name in (".zarray", ".zgroup", "zarr.json")
    )


def is_plane_folder_input(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a folder of planes (a directory that is not a zarr store, or a
    glob pattern) rather than a single file."""
    p = Path(path)
    if is_pattern(p):
        return True
    return p.is_dir() and not _is_zarr_dir(p)


def is_folder_output(path: str | os.PathLike[str]) -> bool:
    """Whether an output path means a folder of TIFF planes: an existing directory that is not
    a zarr store, or a name without a suffix (``out``, ``results/destriped``)."""
    p = Path(path)
    if p.is_dir():
        return not _is_zarr_dir(p)
    return p.suffix == "" and not p.name.startswith(".")


def list_planes(path: str | os.PathLike[str]) -> list[Path]:
    """The TIFF files of a folder input in natural order.

    Parameters
    ----------
    path : path-like
        A folder (every ``.tif``/``.tiff`` file directly inside it) or a glob pattern for its
        last part (``DIR/*_C01.tif``). Hidden files (``.name``, e.g. temporary files) are
        skipped.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    RestoreInputError
        If the folder is missing, holds no matching TIFF, or is an unfinished output.
    """
    import tifffile

    folder, pattern = split_pattern(path)
    if not folder.is_dir():
        raise RestoreInputError(f"Folder not found: {folder}")
    if (folder / PROGRESS_MARKER).exists() and not (folder / COMPLETE_MARKER).exists():
        raise RestoreInputError(
            f"{folder} is an unfinished napari-restore output (the run writing it was "
            "interrupted); run that command again to finish it before using it as input."
        )
    candidates = folder.glob(pattern) if pattern else folder.iterdir()
    names = [
        f.name
        for f in candidates
        if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES and not f.name.startswith(".")
    ]
    if not names:
        what = f"matching {pattern!r}" if pattern else "(.tif/.tiff)"
        raise RestoreInputError(f"No TIFF files {what} in the folder {folder}.")
    return [folder / name for name in tifffile.natural_sorted(names)]


def _plane_header(path: Path) -> tuple[tuple[int, int], np.dtype]:
    """Shape and dtype of a single-plane TIFF, from its header only."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype, axes = tuple(series.shape), np.dtype(series.dtype), series.axes
    except Exception as err:
        raise RestoreInputError(f"Could not read {path}: {type(err).__name__}: {err}") from err
    if "S" in axes:
        raise RestoreInputError(
            f"{path} is a colour (RGB) image; a folder of planes must hold greyscale planes."
        )
    squeezed = tuple(s for s in shape[:-2] if s != 1) + shape[-2:]
    if len(squeezed) != 2:
        raise RestoreInputError(
            f"{path} holds an array of shape {shape}; in a folder input every file must be one "
            "2D plane. Open a multi-plane TIFF as a file, not as part of a folder."
        )
    return (int(squeezed[0]), int(squeezed[1])), dtype


class TiffPlaneStack:
    """Lazy ``(Z, Y, X)`` stack over a list of single-plane TIFF files.

    Indexing reads only the planes asked for, one file each (:func:`tifffile.imread`); it
    supports integers, slices, integer lists and boolean masks on Z, and any numpy index on
    Y and X. ``np.asarray(stack)`` reads every plane.

    Parameters
    ----------
    files : sequence of path-like
        One file per plane, in stack order.
    plane_shape : (int, int), optional
        ``(Y, X)``; with ``dtype``, skips reading the headers (the caller checked them).
    dtype : dtype-like, optional
        Pixel type.

    Raises
    ------
    RestoreInputError
        If a file is unreadable, not a single 2D greyscale plane, or differs in shape or
        dtype from the first file (the message names both files).
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]],
        plane_shape: tuple[int, int] | None = None,
        dtype: Any = None,
    ) -> None:
        self.files = [Path(f) for f in files]
        if not self.files:
            raise RestoreInputError("A stack of planes needs at least one file.")
        if plane_shape is None or dtype is None:
            plane_shape, dtype = _plane_header(self.files[0])
            for f in self.files[1:]:
                shape, dt = _plane_header(f)
                if shape != plane_shape or dt != dtype:
                    raise RestoreInputError(
                        f"{f} is a plane of shape {shape} and dtype {dt}, but "
                        f"{self.files[0].name} (the first plane) has shape {plane_shape} and "
                        f"dtype {dtype}; every plane of a folder must match."
                    )
        self.plane_shape = (int(plane_shape[0]), int(plane_shape[1]))
        self.dtype = np.dtype(dtype)
        self.shape = (len(self.files), *self.plane_shape)
        self.ndim = 3

    @property
    def names(self) -> list[str]:
        """File name of each plane, in stack order."""
        return [f.name for f in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        folder = self.files[0].parent
        return f"TiffPlaneStack({str(folder)!r}, shape={self.shape}, dtype={self.dtype})"

    def read_plane(self, z: int, region: tuple[Any, ...] = ()) -> np.ndarray:
        """Read plane ``z`` (one file) as a ``(Y, X)`` array, or ``plane[region]``.

        A region of an uncompressed file is read through a memory map, so a small patch of a
        big plane (as training samples) reads only its rows; anything else reads the file.
        """
        import tifffile

        path = self.files[z]
        whole = all(isinstance(k, slice) and k == slice(None) for k in region)
        try:
            if not whole:
                try:
                    mapped = tifffile.memmap(path, mode="r")
                except ValueError:
                    mapped = None  # compressed or tiled: read the whole plane
                fits = mapped is not None and mapped.dtype == self.dtype
                if fits and mapped.size == self.plane_shape[0] * self.plane_shape[1]:
                    return np.array(mapped.reshape(self.plane_shape)[region])
            plane = tifffile.imread(path)
        except Exception as err:
            raise RestoreInputError(f"Could not read {path}: {type(err).__name__}: {err}") from err
        if plane.size != self.plane_shape[0] * self.plane_shape[1] or plane.dtype != self.dtype:
            raise RestoreInputError(
                f"{path} changed since the folder was opened (now shape {plane.shape}, dtype "
                f"{plane.dtype}; expected {self.plane_shape}, {self.dtype})."
            )
        return plane.reshape(self.plane_shape)[region]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is None for k in key):
            raise IndexError("TiffPlaneStack does not support new axes (None) in an index.")
        if Ellipsis in key:
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (3 - len(key) + 1) + key[at + 1 :]
        if len(key) > 3:
            raise IndexError(f"too many indices for a 3D stack: {key!r}")
        first = key[0] if key else slice(None)
        rest = tuple(key[1:])
        n = len(self.files)
        if isinstance(first, int | np.integer):
            z = int(first)
            if not -n <= z < n:
                raise IndexError(f"plane {z} is out of range for {n} planes")
            return self.read_plane(z % n, rest)
        planes = np.arange(n)[first]
        if planes.size == 0:
            return np.empty((0, *self.plane_shape), self.dtype)[(slice(None), *rest)]
        return np.stack([self.read_plane(int(z), rest) for z in planes])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def to_dask(self) -> Any:
        """A dask array with one chunk per plane (each chunk reads one file when computed)."""
        import dask.array as da

        name = "tiff-planes-" + _token(self.files)
        return da.from_array(
            self,
            chunks=(1, *self.plane_shape),
            name=name,
            asarray=False,
            meta=np.empty((0, 0, 0), self.dtype),
        )


def _token(files: Sequence[Path]) -> str:
    """A dask name that changes when the files do (path, size and modification time)."""
    from dask.base import tokenize

    stats = []
    for f in files:
        try:
            st = f.stat()
            stats.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((str(f), None, None))  # reading that plane will say what is wrong
    return tokenize(stats)


def open_plane_folder(path: str | os.PathLike[str]) -> TiffPlaneStack:
    """Open a folder of 2D TIFF planes (or a glob pattern) as a lazy ``(Z, Y, X)`` stack.

    Parameters
    ----------
    path : path-like
        ``DIR`` (every ``.tif``/``.tiff`` file in it) or ``DIR/PATTERN`` (``raw/*_C01.tif``).

    Returns
    -------
    TiffPlaneStack

    Raises
    ------
    RestoreInputError
        See :func:`list_planes` and :class:`TiffPlaneStack`.
    """
    return TiffPlaneStack(list_planes(path))


def plane_folders(root: str | os.PathLike[str]) -> list[Path]:
    """Every folder under ``root`` (``root`` included) that directly holds matching TIFFs.

    ``root`` may end in a glob pattern (``DIR/*_C01.tif``), applied in every folder. Folders
    are returned in natural order of their path below ``root``; hidden folders (``.name``,
    e.g. temporary outputs) are skipped.
    """
    import tifffile

    folder, pattern = split_pattern(root)
    if not folder.is_dir():
        raise RestoreInputError(f"Folder not found: {folder}")
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        here = Path(dirpath)
        if _is_zarr_dir(here):
            dirnames[:] = []
            continue
        names = [n for n in filenames if not n.startswith(".")]
        if pattern:
            names = [n for n in names if fnmatch.fnmatch(n, pattern)]
        if any(Path(n).suffix.lower() in TIFF_SUFFIXES for n in names):
            found[here.relative_to(folder).as_posix()] = here
    return [found[k] for k in tifffile.natural_sorted(found)]


# ---------------------------------------------------------------------------------------------
# Output


def folder_state(path: str | os.PathLike[str]) -> str:
    """``"missing"``, ``"complete"``, ``"partial"`` (an interrupted napari-restore output),
    ``"empty"`` or ``"foreign"`` (a folder with other content)."""
    p = Path(path)
    if not p.exists():
        return "missing"
    if (p / COMPLETE_MARKER).exists():
        return "complete"
    if (p / PROGRESS_MARKER).exists():
        return "partial"
    if p.is_dir() and not any(p.iterdir()):
        return "empty"
    return "foreign"


def check_output(path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse to replace an existing output unless ``overwrite``.

    A folder output that an interrupted run left unfinished is not refused: writing to it
    again resumes it; with ``overwrite`` its progress marker is removed, so that it is written
    again from the first plane. An empty folder is not refused either.

    Raises
    ------
    RestoreInputError
        If ``path`` exists, is not resumable, and ``overwrite`` is false.
    """
    if not Path(path).exists():
        return
    if overwrite:
        if is_folder_output(path) and folder_state(path) == "partial":
            (Path(path) / PROGRESS_MARKER).unlink()
        return
    if is_folder_output(path) and folder_state(path) in ("partial", "empty"):
        return
    raise RestoreInputError(f"{path} exists; pass --overwrite to replace it.")


def input_folder(path: str | os.PathLike[str]) -> Path:
    """The folder holding an input's data (a pattern's folder; the path itself otherwise)."""
    return split_pattern(path)[0] if is_pattern(path) else Path(path)


def plane_names(shape: tuple[int, ...], source: Any = None) -> list[str]:
    """File names of the planes of a folder output of ``shape``.

    The input's names where ``source`` is a :class:`TiffPlaneStack` with as many planes (so
    ``z0001.tif`` in gives ``z0001.tif`` out); else ``plane_00000.tif`` ... in C order of the
    leading axes (``plane_0_00012.tif`` for 4D).
    """
    lead = tuple(shape[:-2])
    count = int(np.prod(lead)) if lead else 1
    names = getattr(source, "names", None)
    if names is not None and len(names) == count:
        return [Path(n).with_suffix(".tif").name if Path(n).suffix == "" else n for n in names]
    if not lead:
        return ["plane_00000.tif"]
    widths = [max(5 if i == len(lead) - 1 else 1, len(str(s - 1))) for i, s in enumerate(lead)]
    return [
        "plane_" + "_".join(f"{v:0{w}d}" for v, w in zip(idx, widths, strict=True)) + ".tif"
        for idx in np.ndindex(*lead)
    ]


def _write_json_atomic(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)


class FolderPlaneWriter:
    """Write an image into a folder, one 2D TIFF per plane (use through
    :class:`napari_restore.io.PlaneWriter`).

    Each plane goes to a hidden temporary file that is renamed into place when written, so a
    file under its final name is complete. :data:`PROGRESS_MARKER` describes the output while
    it is written; :data:`COMPLETE_MARKER` replaces it once every plane is there. Opening a
    folder that holds a matching progress marker resumes it: planes already there (with the
    right shape and dtype) are kept, listed in :attr:`done`, and writes to them are skipped.
    A completed or foreign folder is written over plane by plane (the caller has checked
    ``--overwrite``); files of other names are left alone.

    Parameters
    ----------
    path : path-like
        The folder (created with its parents if missing).
    shape : tuple of int
        Shape of the whole image, ``(..., Y, X)``.
    dtype : dtype-like
        Pixel type of every plane file.
    source : optional
        The opened input; a :class:`TiffPlaneStack` gives its file names to the planes.
    """

    def __init__(
        self, path: str | os.PathLike[str], shape: tuple[int, ...], dtype: Any, source: Any = None
    ) -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) < 2:
            raise RestoreInputError(f"A folder of planes needs a 2D or larger image, not {shape}.")
        self.dtype = np.dtype(dtype)
        self.names = plane_names(self.shape, source)
        self.lead = self.shape[:-2]
        self.done: set[int] = set()

    def _description(self) -> dict[str, Any]:
        return {
            "format": "napari-restore folder of TIFF planes",
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "planes": self.names,
        }

    def __enter__(self) -> FolderPlaneWriter:
        state = folder_state(self.path)
        if state != "missing" and not self.path.is_dir():
            raise RestoreInputError(f"{self.path} exists and is not a folder.")
        self.path.mkdir(parents=True, exist_ok=True)
        description = self._description()
        if state == "partial":
            try:
                previous = json.loads((self.path / PROGRESS_MARKER).read_text())
            except (OSError, ValueError):
                previous = None
            if previous != description:
                raise RestoreInputError(
                    f"{self.path} holds an unfinished output of another image (its progress "
                    f"file {PROGRESS_MARKER} describes other planes); pass --overwrite to start "
                    "it again, or choose another output folder."
                )
            self.done = set(self._complete_planes())
            self._remove_stale_temporaries()
        else:
            (self.path / COMPLETE_MARKER).unlink(missing_ok=True)
            _write_json_atomic(self.path / PROGRESS_MARKER, description)
        return self

    def _remove_stale_temporaries(self) -> None:
        """Delete the temporary files of planes a killed run was writing (never renamed, so
        never counted as written)."""
        names = set(self.names) | {PROGRESS_MARKER, COMPLETE_MARKER}
        for f in self.path.glob(".*.part"):
            if f.name[1:].rsplit(".", 2)[0] in names:
                f.unlink(missing_ok=True)

    def _complete_planes(self) -> Iterator[int]:
        """Planes already in the folder under their final name, with the right header."""
        expected = (self.shape[-2], self.shape[-1])
        for i, name in enumerate(self.names):
            f = self.path / name
            if not f.is_file():
                continue
            try:
                shape, dtype = _plane_header(f)
            except RestoreInputError:
                continue
            if shape == expected and dtype == self.dtype:
                yield i

    def pending(self) -> list[tuple[int, ...]]:
        """Index tuples (over the leading axes) of the planes not written yet."""
        if not self.lead:
            return [] if 0 in self.done else [()]
        return [
            tuple(int(v) for v in np.unravel_index(i, self.lead))
            for i in range(len(self.names))
            if i not in self.done
        ]

    def _plane_ids(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        nd = len(self.shape)
        if Ellipsis in key:
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (nd - len(key) + 1) + key[at + 1 :]
        key = key + (slice(None),) * (nd - len(key))
        if any(not (isinstance(k, slice) and k == slice(None)) for k in key[-2:]):
            raise NotImplementedError(
                "A folder of planes is written whole planes at a time (index Y and X with ':')."
            )
        ids = np.arange(int(np.prod(self.lead)) if self.lead else 1).reshape(self.lead)
        return np.asarray(ids[key[:-2]])

    def __setitem__(self, key: Any, value: Any) -> None:
        ids = self._plane_ids(key)
        planes = np.broadcast_to(np.asarray(value), ids.shape + self.shape[-2:])
        for i, plane in zip(ids.ravel(), planes.reshape(-1, *self.shape[-2:]), strict=True):
            self.write_plane(int(i), plane)

    def write_plane(self, i: int, plane: np.ndarray) -> None:
        """Write plane ``i`` (flat index over the leading axes), unless already written."""
        import tifffile

        if i in self.done:
            return
        final = self.path / self.names[i]
        tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
        try:
            tifffile.imwrite(
                tmp, np.asarray(plane).astype(self.dtype, copy=False), photometric="minisblack"
            )
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.done.add(i)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None:
            return False  # keep the finished planes and the progress marker: a re-run resumes
        missing = len(self.names) - len(self.done)
        if missing:
            raise RuntimeError(
                f"{self.path}: {missing} of {len(self.names)} planes were never written; the "
                "folder is left unfinished."
            )
        _write_json_atomic(self.path / COMPLETE_MARKER, self._description())
        (self.path / PROGRESS_MARKER).unlink(missing_ok=True)
        return False


def iter_tiles(
    root_in: str | os.PathLike[str], root_out: str | os.PathLike[str]
) -> Iterable[tuple[Path, Path, str]]:
    """``(input, output, label)`` for every folder of planes below ``root_in``.

    The input keeps ``root_in``'s pattern, if any; the output mirrors the folder's place below
    ``root_in`` under ``root_out``; the label is that relative path (``.`` for the root).
    """
    folder, pattern = split_pattern(root_in)
    out = Path(root_out)
    for leaf in plane_folders(root_in):
        rel = leaf.relative_to(folder)
        yield (leaf / pattern if pattern else leaf), out / rel, rel.as_posix()
