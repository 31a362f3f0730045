"""Reading and writing images for the CLI and for volumes larger than memory.

Formats: TIFF (tifffile; memory-mapped or read through its zarr interface, so big files are read
plane by plane), folders of 2D TIFF planes (:mod:`napari_restore.io_folders`: one file per z
plane, read plane by plane), PNG/JPEG (imageio, greyscale), ``.npy``, zarr arrays and OME-Zarr
images (the full-resolution level). Writers never leave a half-written file: output goes to a
temporary path beside the target and is renamed into place only when complete (a folder of
planes: each plane file, and a completion marker once all are there).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from napari_restore.core.files import atomic_path
from napari_restore.errors import RestoreInputError
from napari_restore.io_folders import (
    FolderPlaneWriter,
    check_output,
    is_folder_output,
    is_plane_folder_input,
    open_plane_folder,
)

TIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (
        path.is_dir()
        and any((path / name).exists() for name in (".zarray", ".zgroup", "zarr.json"))
    )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise RestoreInputError(f"File not found: {path}")


def _grey_from_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
    """Accept colour files that hold grey content (channels equal to within 2 % of the range,
    as in screenshots and web PNGs): their channel mean. Refuse real colour images."""
    colour = arr[..., :3].astype(np.float64)
    spread = float(np.ptp(colour)) or 1.0
    if np.abs(colour - colour[..., :1]).max() <= 0.02 * spread:
        return colour.mean(axis=-1).round().astype(arr.dtype)
    raise RestoreInputError(
        f"{path} is a colour image (shape {arr.shape}); napari-restore works on greyscale "
        "fluorescence channels. Save one channel as its own file first."
    )


def open_image(path: str | os.PathLike[str]) -> Any:
    """Open an image lazily where the format allows it.

    Parameters
    ----------
    path : path-like
        TIFF, zarr / OME-Zarr directory, ``.npy``, PNG/JPEG, or a folder of 2D TIFF planes
        (``DIR``, or ``DIR/PATTERN`` such as ``raw/*_C01.tif`` to pick files).

    Returns
    -------
    array_like
        A numpy array, ``numpy.memmap``, zarr array or
        :class:`~napari_restore.io_folders.TiffPlaneStack` with ``shape``/``dtype``; indexing
        one plane reads only that plane for memory-mapped TIFF, zarr, ``.npy`` and folders.

    Raises
    ------
    RestoreInputError
        For a missing, unreadable or unsupported file.
    """
    p = Path(path)
    if is_plane_folder_input(p):
        return open_plane_folder(p)
    _check_exists(p)
    try:
        if _is_zarr(p):
            return _open_zarr(p)
        suffix = p.suffix.lower()
        if suffix in TIFF_SUFFIXES:
            return _open_tiff(p)
        if suffix == ".npy":
            return np.load(p, mmap_mode="r", allow_pickle=False)
        if suffix in RASTER_SUFFIXES:
            import imageio.v3 as iio

            arr = np.asarray(iio.imread(p))
            return _grey_from_rgb(arr, p) if arr.ndim == 3 and arr.shape[-1] in (3, 4) else arr
    except RestoreInputError:
        raise
    except Exception as err:
        raise RestoreInputError(f"Could not read {p}: {type(err).__name__}: {err}") from err
    raise RestoreInputError(
        f"Unsupported file type {p.suffix!r} ({p}); use TIFF, a folder of TIFF planes, "
        "zarr/OME-Zarr, .npy or PNG."
    )


def _open_tiff(p: Path) -> Any:
    import tifffile

    with tifffile.TiffFile(p) as tif:
        series = tif.series[0]
        axes = series.axes
        if "S" in axes:  # samples per pixel: RGB(A)
            return _grey_from_rgb(series.asarray(), p)
        try:
            return tifffile.memmap(p, mode="r")
        except ValueError:
            pass  # compressed or tiled: read through the zarr interface instead
    import zarr

    store = tifffile.imread(p, aszarr=True)
    z = zarr.open(store, mode="r")
    if hasattr(z, "shape"):
        return z
    return z["0"]  # pyramidal TIFF: full resolution


def _open_zarr(p: Path) -> Any:
    import zarr

    node = zarr.open(str(p), mode="r")
    if hasattr(node, "shape"):
        return node
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if multiscales:
        return node[multiscales[0]["datasets"][0]["path"]]
    arrays = list(node.array_keys())
    if len(arrays) == 1:
        return node[arrays[0]]
    raise RestoreInputError(
        f"{p} is a zarr group with {len(arrays)} arrays and no OME-Zarr metadata; give the path "
        "of one array inside it."
    )


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a whole image into memory (see :func:`open_image` for the formats)."""
    arr = open_image(path)
    try:
        return np.asarray(arr[...])
    except Exception as err:
        raise RestoreInputError(f"Could not read {path}: {type(err).__name__}: {err}") from err


class PlaneWriter:
    """Write a big image plane by plane (any order), committed atomically on success.

    TIFF outputs are created as a memory-mapped, uncompressed (Big)TIFF of the final shape;
    ``.zarr`` outputs as a zarr array chunked by plane; ``.ome.zarr`` as a single-level OME-Zarr
    image; ``.npy`` as a memory-mapped array. Nothing appears at ``path`` unless the ``with``
    block finishes without an exception.

    A path without a suffix (or an existing folder that is not a zarr store) is a folder of
    2D TIFF planes (:class:`~napari_restore.io_folders.FolderPlaneWriter`): planes appear one
    by one, each complete, and the folder is marked complete when the block finishes. An
    unfinished folder from an interrupted run is resumed: :meth:`pending` lists the planes
    still to write, and writes to the others are skipped.

    Parameters
    ----------
    path : path-like
        Output path; the suffix picks the format.
    shape : tuple of int
        Shape of the whole image.
    dtype : dtype-like
        Pixel type.
    source : optional
        The opened input (from :func:`open_image`); a folder output takes its plane file
        names from a folder input.

    Examples
    --------
    >>> with PlaneWriter("out.tif", shape, np.uint16) as w:  # doctest: +SKIP
    ...     for index, plane in planes:
    ...         w[index] = plane
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        shape: tuple[int, ...],
        dtype: Any,
        *,
        source: Any = None,
    ) -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        name = self.path.name.lower()
        self._folder: FolderPlaneWriter | None = None
        if is_folder_output(self.path):
            self._folder = FolderPlaneWriter(self.path, self.shape, self.dtype, source)
        elif not (name.endswith(TIFF_SUFFIXES) or name.endswith((".zarr", ".npy"))):
            raise RestoreInputError(
                f"Cannot write {self.path.suffix!r}; name the output .tif, .zarr, .ome.zarr, "
                ".npy, or a folder (a name without a suffix) for one TIFF per plane."
            )
        self._ctx: Any = None
        self._array: Any = None

    def pending(self) -> list[tuple[int, ...]]:
        """Index tuples over the leading axes of the planes still to write (inside ``with``):
        all of them, except in a resumed folder output."""
        if self._folder is not None:
            return self._folder.pending()
        lead = self.shape[:-2]
        return list(np.ndindex(*lead)) if lead else [()]

    def __enter__(self) -> PlaneWriter:
        if self._folder is not None:
            self._array = self._folder.__enter__()
            return self
        self._ctx = atomic_path(self.path)
        target = self._ctx.__enter__()
        name = self.path.name.lower()
        try:
            if name.endswith(TIFF_SUFFIXES):
                import tifffile

                self._array = tifffile.memmap(
                    target, shape=self.shape, dtype=self.dtype, photometric="minisblack"
                )
            elif name.endswith(".npy"):
                self._array = np.lib.format.open_memmap(
                    target, mode="w+", dtype=self.dtype, shape=self.shape
                )
            else:
                self._array = _create_zarr(
                    target, self.shape, self.dtype, ome=name.endswith(".ome.zarr")
                )
        except BaseException:
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self

    def __setitem__(self, index: Any, value: np.ndarray) -> None:
        self._array[index] = value

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self._folder is not None:
            self._array = None
            return self._folder.__exit__(exc_type, exc, tb)
        if isinstance(self._array, np.memmap):
            self._array.flush()
        self._array = None  # release the memory map before the rename
        return bool(self._ctx.__exit__(exc_type, exc, tb))


def _create_zarr(target: Path, shape: tuple[int, ...], dtype: np.dtype, *, ome: bool) -> Any:
    import zarr

    chunks = (1,) * (len(shape) - 2) + tuple(min(s, 1024) for s in shape[-2:])
    if not ome:
        return zarr.open_array(
            str(target), mode="w", shape=shape, dtype=dtype, chunks=chunks, zarr_format=2
        )
    group = zarr.open_group(str(target), mode="w", zarr_format=2)
    axes_names = ("t", "c", "z", "y", "x")[-len(shape) :] if len(shape) <= 5 else None
    if axes_names is None:
        raise RestoreInputError("OME-Zarr images have at most 5 axes (t, c, z, y, x).")
    axes = [
        {"name": a, "type": "time" if a == "t" else "channel" if a == "c" else "space"}
        for a in axes_names
    ]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": target.name,
            "axes": axes,
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(shape)}],
                }
            ],
        }
    ]
    return group.create_array("0", shape=shape, dtype=dtype, chunks=chunks)


def write_image(path: str | os.PathLike[str], data: np.ndarray, *, source: Any = None) -> Path:
    """Write an in-memory array (TIFF, zarr, OME-Zarr, .npy or a folder of planes) atomically.

    Parameters
    ----------
    path : path-like
        Output path; the suffix picks the format (none: a folder of TIFF planes).
    data : numpy.ndarray
        Image to write.
    source : optional
        The opened input, whose plane file names a folder output reuses (see
        :class:`PlaneWriter`).

    Returns
    -------
    pathlib.Path
    """
    data = np.asarray(data)
    p = Path(path)
    name = p.name.lower()
    if name.endswith(TIFF_SUFFIXES) and not is_folder_output(p):
        import tifffile

        with atomic_path(p) as target:
            tifffile.imwrite(target, data, photometric="minisblack", compression="zlib")
        return p
    with PlaneWriter(p, data.shape, data.dtype, source=source) as w:
        w[...] = data
    return p


__all__ = [
    "PlaneWriter",
    "check_output",
    "open_image",
    "read_image",
    "write_image",
]
