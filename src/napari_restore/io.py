"""Reading and writing images for the CLI and for volumes larger than memory.

Formats: TIFF (tifffile; memory-mapped or read through its zarr interface, so big files are read
plane by plane), folders of 2D TIFF planes (:mod:`napari_restore.io_folders`: one file per z
plane, read plane by plane), PNG/JPEG (imageio, greyscale), ``.npy``, zarr arrays and OME-Zarr
images (the full-resolution level). Writers never leave a half-written file: output goes to a
temporary path beside the target and is renamed into place only when complete (a folder of
planes: each plane file, and a completion marker once all are there).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_restore.core.files import atomic_path, check_outputs
from napari_restore.errors import RestoreInputError
from napari_restore.io_folders import (
    FolderPlaneWriter,
    check_output,
    input_folder,
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
        return _check_plane_fits(open_plane_folder(p), p)
    _check_exists(p)
    try:
        if _is_zarr(p):
            return _check_plane_fits(_open_zarr(p), p)
        suffix = p.suffix.lower()
        if suffix in TIFF_SUFFIXES:
            return _check_plane_fits(_open_tiff(p), p)
        if suffix == ".npy":
            return _check_plane_fits(np.load(p, mmap_mode="r", allow_pickle=False), p)
        if suffix in RASTER_SUFFIXES:
            import imageio.v3 as iio

            arr = np.asarray(iio.imread(p))
            return _grey_from_rgb(arr, p) if arr.ndim == 3 and arr.shape[-1] in (3, 4) else arr
    except RestoreInputError:
        raise
    except PermissionError as err:
        raise RestoreInputError(f"Cannot read {p}: permission denied.") from err
    except Exception as err:
        raise RestoreInputError(f"Could not read {p}: {type(err).__name__}: {err}") from err
    raise RestoreInputError(
        f"Unsupported file type {p.suffix!r} ({p}); use TIFF, a folder of TIFF planes, "
        "zarr/OME-Zarr, .npy or PNG."
    )


# A page may claim at most this many times the bytes it stores (zlib tops out near 1032:1):
# a 768-byte file that claims 40000 x 50000 pixels is refused before anything is allocated.
_MAX_TIFF_EXPANSION = 4096


class _TiffWarnings(logging.Handler):
    """Collects tifffile's warnings, which is how it reports damaged files that it reads
    anyway (a truncated file comes back as fewer planes)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_tiff_complete(tif: Any, p: Path, warnings: list[str]) -> None:
    """Refuse a TIFF whose pages point past its end, claim far more pixels than it stores,
    or that tifffile could only read in part."""
    size = p.stat().st_size
    for k, page in enumerate(tif.pages):
        offsets, counts = page.dataoffsets, page.databytecounts
        if any(o + c > size for o, c in zip(offsets, counts, strict=False)):
            raise RestoreInputError(
                f"{p} is truncated or damaged: page {k} has data beyond the end of the file "
                f"({size} bytes). Copy or export the file again."
            )
        claimed = int(np.prod(page.shape, dtype=np.int64)) * page.dtype.itemsize
        stored = int(sum(counts))
        if claimed > _MAX_TIFF_EXPANSION * max(stored, 1024):
            raise RestoreInputError(
                f"{p}: page {k} claims {page.shape} pixels ({claimed / 1e6:.0f} MB) but stores "
                f"only {stored} bytes; the file header is damaged."
            )
    # Only the messages of a file cut short: tifffile also warns of harmless metadata quirks.
    signs = ("invalid page offset", "failed to reshape", "truncat")
    damaged = [m for m in warnings if any(s in m for s in signs)]
    if damaged:
        raise RestoreInputError(
            f"{p} is truncated or damaged ({damaged[0].split('> ', 1)[-1]}). Copy or export "
            "the file again."
        )


def _open_tiff(p: Path) -> Any:
    import tifffile

    handler = _TiffWarnings()
    log = logging.getLogger("tifffile")
    log.addHandler(handler)
    try:
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]  # reading the series is what warns of a damaged file
            _check_tiff_complete(tif, p, handler.messages)
            if "S" in series.axes:  # samples per pixel: RGB(A)
                return _grey_from_rgb(series.asarray(), p)
            try:
                return tifffile.memmap(p, mode="r")
            except ValueError:
                pass  # compressed or tiled: read through the zarr interface instead
    finally:
        log.removeHandler(handler)
    import zarr

    store = tifffile.imread(p, aszarr=True)
    z = zarr.open(store, mode="r")
    if hasattr(z, "shape"):
        return z
    return z["0"]  # pyramidal TIFF: full resolution


def available_memory() -> int:
    """Bytes of memory available to this process now (``MemAvailable`` on Linux, else the
    physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 62


def _nbytes(shape: tuple[int, ...], itemsize: int) -> int:
    return int(np.prod([int(s) for s in shape], dtype=object)) * int(itemsize)


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def _check_plane_fits(arr: Any, p: Path) -> Any:
    """Refuse an image whose single plane (in float64, as the processing holds it) cannot fit
    in the memory available: every path reads at least one plane at a time."""
    shape = tuple(int(s) for s in arr.shape)
    if len(shape) >= 2:
        plane = _nbytes(shape[-2:], 8)
        free = available_memory()
        if plane > free:
            raise RestoreInputError(
                f"{p}: planes of {shape[-2]} x {shape[-1]} pixels need {_gb(plane)} each to "
                f"process, more than the {_gb(free)} of memory available. Crop or tile the "
                "image first."
            )
    return arr


# A zarr array may claim at most this many times the bytes its chunk files store, once it
# claims more than _ZARR_CHECKED_BYTES. Missing chunks are legal (they read as the fill
# value), but a header that claims 4 PB over a few bytes of chunks is damaged or malicious,
# and every reader would fill planes of the claimed size.
_MAX_ZARR_EXPANSION = 4096
_ZARR_CHECKED_BYTES = 1 << 30


def _check_zarr_size(arr: Any, folder: Path, p: Path) -> Any:
    """Refuse a zarr array whose header claims far more bytes than its chunk files hold;
    the files are counted only until they hold enough (a few stat calls for real data)."""
    claimed = _nbytes(tuple(arr.shape), np.dtype(arr.dtype).itemsize)
    if claimed <= _ZARR_CHECKED_BYTES or not folder.is_dir():
        return arr
    need = claimed // _MAX_ZARR_EXPANSION
    stored = 0
    metadata = {".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"}
    for root, _, files in os.walk(folder):
        for name in files:
            if name not in metadata:
                stored += (Path(root) / name).stat().st_size
        if stored >= need:
            return arr
    raise RestoreInputError(
        f"{p}: the zarr header claims shape {tuple(int(s) for s in arr.shape)} "
        f"({_gb(claimed)}) but its chunk files hold only {stored} bytes; the header is "
        "damaged, or the array was never written."
    )


def _open_zarr(p: Path) -> Any:
    import zarr

    _refuse_unfinished_store(p)
    node = zarr.open(str(p), mode="r")
    if hasattr(node, "shape"):
        return _check_zarr_size(node, p, p)
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if multiscales:
        key = multiscales[0]["datasets"][0]["path"]
        return _check_zarr_size(node[key], p / key, p)
    arrays = list(node.array_keys())
    if len(arrays) == 1:
        return _check_zarr_size(node[arrays[0]], p / arrays[0], p)
    raise RestoreInputError(
        f"{p} is a zarr group with {len(arrays)} arrays and no OME-Zarr metadata; give the path "
        "of one array inside it."
    )


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a whole image into memory (see :func:`open_image` for the formats).

    Raises
    ------
    RestoreInputError
        Also when the image needs more memory than is available (before reading it).
    """
    arr = open_image(path)
    need, free = _nbytes(tuple(arr.shape), np.dtype(arr.dtype).itemsize), available_memory()
    if need > free:
        raise RestoreInputError(
            f"{path} has shape {tuple(int(s) for s in arr.shape)} ({_gb(need)}); this needs it "
            f"in memory, and only {_gb(free)} is available. Crop it, or process it plane by "
            "plane (destripe and simulate read one plane at a time)."
        )
    try:
        return np.asarray(arr[...])
    except Exception as err:
        raise RestoreInputError(f"Could not read {path}: {type(err).__name__}: {err}") from err


class PlaneWriter:
    """Write a big image plane by plane (any order), committed atomically on success.

    TIFF outputs are created as a memory-mapped, uncompressed (Big)TIFF of the final shape;
    ``.zarr`` outputs as a zarr array chunked by plane; ``.ome.zarr`` as a single-level OME-Zarr
    image (metadata through ngff-zarr: the axes, scale and units of ``metadata``); ``.npy`` as a
    memory-mapped array. Nothing appears at ``path`` unless the ``with`` block finishes without
    an exception.

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
    metadata : ImageMetadata, optional
        Axes and calibration of an OME-Zarr output (e.g. the input's, from
        :func:`read_image_metadata`); default uncalibrated axes.

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
        metadata: ImageMetadata | None = None,
    ) -> None:
        self.path = Path(path)
        self.metadata = metadata
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
                    target,
                    self.shape,
                    self.dtype,
                    ome=name.endswith(".ome.zarr"),
                    metadata=self.metadata,
                )
            self._target = target
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
        if exc_type is None and self.path.name.lower().endswith(".ome.zarr"):
            finish_ome_zarr(self._target)  # the multiscales metadata, now that it is complete
        return bool(self._ctx.__exit__(exc_type, exc, tb))


def _create_zarr(
    target: Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    *,
    ome: bool,
    metadata: ImageMetadata | None = None,
) -> Any:
    import zarr

    chunks = (1,) * (len(shape) - 2) + tuple(min(s, 1024) for s in shape[-2:])
    if not ome:
        return zarr.open_array(
            str(target), mode="w", shape=shape, dtype=dtype, chunks=chunks, zarr_format=2
        )
    if len(shape) > 5:
        raise RestoreInputError("OME-Zarr images have at most 5 axes (t, c, z, y, x).")
    meta = metadata if metadata is not None else ImageMetadata.default(len(shape))
    if len(meta.dims) != len(shape):  # e.g. the input's axes for an output of another shape
        meta = ImageMetadata.default(len(shape))
    return zarr.open_array(create_ome_zarr(target, shape, dtype, chunks, meta), mode="r+")


# ---------------------------------------------------------------------------- OME-Zarr metadata
NGFF_AXES = ("t", "c", "z", "y", "x")
_RECORD = (".napari-restore", "run.json")  # engine.blockwise.BlockRecord's file in a store


def _refuse_unfinished_store(p: Path) -> None:
    """An output store of a blockwise run that has not finished holds zeros where blocks are
    missing: refuse it rather than read it as data."""
    run_file = p.joinpath(*_RECORD)
    if run_file.is_file():
        import json

        if not json.loads(run_file.read_text(encoding="utf-8")).get("complete"):
            raise RestoreInputError(
                f"{p} is the output of a run that has not finished (some blocks are missing). "
                "Finish it with the same command and --resume, or start it again."
            )


@dataclass(frozen=True)
class ImageMetadata:
    """Axes and physical calibration of an image, as OME-Zarr describes them.

    Attributes
    ----------
    dims : tuple of str
        Axis names (``t``, ``c``, ``z``, ``y``, ``x``).
    scale, translation : dict of str to float
        Pixel size and origin per axis.
    units : dict of str to str
        Unit per axis (``micrometer``, ``second``; missing when unknown).
    version : str or None
        NGFF version of an OME-Zarr input (``"0.4"``, ``"0.5"``), else None.
    name : str
        Image name.
    """

    dims: tuple[str, ...]
    scale: dict[str, float] = field(default_factory=dict)
    translation: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    name: str = "image"

    @classmethod
    def default(cls, ndim: int, *, stack_axis: str = "z") -> ImageMetadata:
        """Uncalibrated axes for an image of ``ndim`` axes: ``(y, x)``, ``(z, y, x)`` (or
        ``(t, y, x)`` with ``stack_axis="t"``), ``(t, z, y, x)``, ``(t, c, z, y, x)``."""
        if not 2 <= ndim <= 5:
            raise RestoreInputError(f"OME-Zarr images have 2 to 5 axes, not {ndim}.")
        dims = {2: ("y", "x"), 3: (stack_axis, "y", "x"), 4: ("t", "z", "y", "x")}.get(
            ndim, NGFF_AXES
        )
        return cls(dims, {d: 1.0 for d in dims}, {d: 0.0 for d in dims})


def read_image_metadata(path: str | os.PathLike[str], ndim: int | None = None) -> ImageMetadata:
    """Axes, scale, translation and units of an image file (through ngff-zarr for OME-Zarr).

    Parameters
    ----------
    path : path-like
        OME-Zarr (NGFF 0.4 or 0.5) gives its own metadata; any other input (TIFF, plain zarr,
        .npy) gets uncalibrated axes (:meth:`ImageMetadata.default`).
    ndim : int, optional
        Axes of the image (read from the file when not given).
    """
    p = Path(path)
    if _is_zarr(p) and p.is_dir():
        import zarr

        node = zarr.open(str(p), mode="r")
        attrs = {} if hasattr(node, "shape") else dict(node.attrs)
        if "multiscales" in attrs or "multiscales" in attrs.get("ome", {}):
            import ngff_zarr

            ms = ngff_zarr.from_ome_zarr(str(p))
            image = ms.images[0]
            version = str(
                attrs.get("ome", {}).get("version") or attrs["multiscales"][0].get("version", "0.4")
            )
            units = {k: str(v) for k, v in (image.axes_units or {}).items() if v}
            return ImageMetadata(
                tuple(image.dims),
                {k: float(v) for k, v in image.scale.items()},
                {k: float(v) for k, v in image.translation.items()},
                units,
                version,
                str(image.name or "image"),
            )
    if ndim is None:
        ndim = len(open_image(p).shape)
    return ImageMetadata.default(ndim)


def output_metadata(
    inp: str | os.PathLike[str], out: str | os.PathLike[str], ndim: int, *, stack_axis: str = "z"
) -> ImageMetadata | None:
    """The input's axes and calibration for an OME-Zarr output (None for other outputs)."""
    if not str(out).lower().endswith(".ome.zarr"):
        return None
    meta = read_image_metadata(inp, ndim)
    if meta.version is None and ndim == 3:
        return ImageMetadata.default(3, stack_axis=stack_axis)
    return meta


def create_ome_zarr(
    path: str | os.PathLike[str],
    shape: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...],
    metadata: ImageMetadata,
    *,
    pyramid: int = 0,
    version: str | None = None,
) -> str:
    """Create an empty OME-Zarr image (ngff-zarr writes the metadata and the arrays), to be
    filled region by region.

    The multiscales metadata is kept aside (under ``napari_restore.multiscales``) until
    :func:`finish_ome_zarr`: until then the store is no OME-Zarr image, so no viewer mistakes
    an unfinished output (zeros where blocks are missing) for a result.

    Parameters
    ----------
    path : path-like
        The store (a directory; must not exist).
    shape, dtype, chunks
        Full-resolution array.
    metadata : ImageMetadata
        Axes and calibration (usually the input's).
    pyramid : int
        Extra levels, each 2× smaller in y and x (written by :func:`finish_ome_zarr`).
    version : str, optional
        NGFF version; default the input's, else ``"0.4"`` (zarr format 2, read by every tool).

    Returns
    -------
    str
        Path of the full-resolution array inside the store.
    """
    import dask.array as da
    import ngff_zarr

    version = version or metadata.version or "0.4"
    if len(metadata.dims) != len(shape):
        raise RestoreInputError(f"axes {metadata.dims} do not fit shape {shape}.")
    image = ngff_zarr.to_ngff_image(
        da.zeros(shape, dtype=dtype, chunks=chunks),
        dims=list(metadata.dims),
        scale=dict(metadata.scale) or None,
        translation=dict(metadata.translation) or None,
        axes_units=dict(metadata.units) or None,
        name=metadata.name,
    )
    factors = _pyramid_factors(metadata.dims, pyramid)
    ms = ngff_zarr.to_multiscales(
        image, scale_factors=factors, chunks=chunks, method=ngff_zarr.Methods.ITKWASM_BIN_SHRINK
    )
    ngff_zarr.to_ome_zarr(
        str(path), ms, version=version, metadata_only=True, consolidate_metadata=False
    )
    group = _open_group(path)
    attrs = dict(group.attrs)
    owned = {k: attrs.pop(k) for k in ("ome", "multiscales", "omero") if k in attrs}
    group.attrs.clear()
    group.attrs.update(
        {
            **attrs,
            "napari_restore": {
                "complete": False,
                "ome": owned,
                "pyramid": pyramid,
                "version": version,
                "chunks": list(chunks),
            },
        }
    )
    return str(Path(path) / ms.metadata.datasets[0].path)


def _pyramid_factors(dims: Sequence[str], levels: int) -> list[dict[str, int]]:
    """Scale factors of pyramid levels: 2, 4, ... in y and x, 1 along z."""
    return [
        {d: 2**k if d in ("y", "x") else 1 for d in dims if d in ("z", "y", "x")}
        for k in range(1, levels + 1)
    ]


def _open_group(path: str | os.PathLike[str]) -> Any:
    import zarr

    return zarr.open_group(str(path), mode="r+")


def finish_ome_zarr(path: str | os.PathLike[str]) -> None:
    """Make a store from :func:`create_ome_zarr` an OME-Zarr image, once its full-resolution
    array is filled: write the pyramid levels (ngff-zarr, from the stored level; on the
    current dask scheduler) and put the multiscales metadata in place."""
    group = _open_group(path)
    attrs = dict(group.attrs)
    own = dict(attrs.pop("napari_restore", {}))
    pending = own.pop("ome", {})
    if own.get("pyramid"):
        import ngff_zarr

        group.attrs.clear()
        group.attrs.update({**attrs, **pending})
        level0 = ngff_zarr.from_ome_zarr(str(path)).images[0]
        factors = _pyramid_factors(level0.dims, int(own["pyramid"]))
        ms = ngff_zarr.to_multiscales(
            level0,
            scale_factors=factors,
            chunks=tuple(own["chunks"]),
            method=ngff_zarr.Methods.ITKWASM_BIN_SHRINK,
        )
        import dask

        # ngff-zarr's writer tasks do not serialise to a distributed cluster: the pyramid is
        # computed here, chunk by chunk, with threads (it reads level 0 once).
        with dask.config.set(scheduler="threads"):
            ngff_zarr.to_ome_zarr(
                str(path),
                ms,
                version=own["version"],
                start_level=1,
                overwrite=False,
                consolidate_metadata=False,
            )
        group = _open_group(path)
        attrs = {k: v for k, v in dict(group.attrs).items() if k != "napari_restore"}
        pending = {}
    group.attrs.clear()
    group.attrs.update({**attrs, **pending, "napari_restore": {"complete": True}})


def check_output_paths(
    outputs: Iterable[str | os.PathLike[str] | None],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    *,
    overwrite: bool = False,
) -> None:
    """Refuse outputs that clash with an input or each other, cannot be written, or exist.

    :func:`~napari_restore.core.files.check_outputs` with the folder rules of
    :func:`~napari_restore.io_folders.check_output`: an unfinished folder of planes is resumed,
    not refused. Clashes are checked first, so nothing is changed when they refuse.
    """
    outs = [Path(o) for o in outputs if o is not None]
    check_outputs(outs, [input_folder(i) for i in inputs if i is not None], overwrite=True)
    for out in outs:
        check_output(out, overwrite)


def write_image(
    path: str | os.PathLike[str], data: np.ndarray, *, source: Any = None, overwrite: bool = False
) -> Path:
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
    overwrite : bool
        Replace an existing output (else :class:`RestoreInputError`, before writing; an
        unfinished folder output is resumed).

    Returns
    -------
    pathlib.Path
    """
    data = np.asarray(data)
    p = Path(path)
    check_output_paths([p], overwrite=overwrite)
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
    "ImageMetadata",
    "PlaneWriter",
    "check_output",
    "create_ome_zarr",
    "finish_ome_zarr",
    "open_image",
    "output_metadata",
    "read_image",
    "read_image_metadata",
    "write_image",
]
