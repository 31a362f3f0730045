"""Array checks, dtype resolution and casting: the one place where intensities meet dtypes.

Every capability (stripes, noise, destriping, denoising) checks its input and casts its output
through these functions, so integers are always rounded and clipped (never wrapped) and a bad
dtype gets the same message everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_restore.errors import RestoreInputError

# Finite values above this are refused: the networks and statistics compute in float32
# (max 3.4e38), where sums and differences of such values overflow to Inf and NaN.
MAX_ABS_VALUE = 1e30
# Values read at once by the whole-image checks (lazy data is read a block of planes at a time).
_BLOCK_VALUES = 1 << 24


def check_real_image(
    image: Any, *, min_ndim: int = 2, name: str = "image", finite: bool = True
) -> None:
    """Raise :class:`RestoreInputError` for input that is not a real-valued greyscale array.

    Parameters
    ----------
    image : array_like
        Anything with ``dtype`` and ``ndim`` (numpy, dask, zarr, memory-mapped TIFF).
    min_ndim : int
        Fewest axes accepted (default 2: Y and X).
    name : str
        How the message names the input.
    finite : bool
        Also check every value (see :func:`check_finite`; reads the whole image).
    """
    check_dtype(image.dtype, name=name)
    if image.ndim < min_ndim:
        need = "a 2D image (Y, X) or a stack (..., Y, X)" if min_ndim == 2 else ""
        raise RestoreInputError(
            f"{name} has shape {image.shape}; at least {min_ndim} dimensions (Y, X) are needed"
            + (f": {need}." if need else ".")
        )
    check_not_rgb(image.shape, name=name)
    check_not_empty(image.shape, name=name)
    if finite:
        check_finite(image, name=name)


def check_dtype(dtype: Any, *, name: str = "image") -> None:
    """Refuse dtypes that are not real intensities, saying what to do instead."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise RestoreInputError(f"{name} is complex ({dtype}); pass its magnitude or real part.")
    if dtype.kind == "b":
        raise RestoreInputError(
            f"{name} is boolean (a mask, not intensities); if it is an image, convert it first "
            "(e.g. image.astype(np.uint8) * 255)."
        )
    if dtype.kind not in "uif":
        raise RestoreInputError(f"{name} has dtype {dtype}; a numeric image is needed.")


def check_not_rgb(shape: tuple[int, ...], *, name: str = "image") -> None:
    """Refuse colour arrays (last axis of 3 or 4: RGB/RGBA), which would otherwise be taken as
    stacks of 3-4 pixel wide planes."""
    if len(shape) >= 3 and shape[-1] in (3, 4):
        raise RestoreInputError(
            f"{name} has shape {tuple(shape)}: its last axis of {shape[-1]} looks like RGB(A) "
            "colour channels. napari-restore works on greyscale channels: pass one channel "
            "(image[..., 0]) or a greyscale conversion."
        )


def check_not_empty(shape: tuple[int, ...], *, name: str = "image") -> None:
    """Refuse arrays with an axis of length 0 (they hold no pixels to process)."""
    if any(int(s) == 0 for s in shape):
        raise RestoreInputError(f"{name} has shape {tuple(shape)}: it holds no pixels.")


def check_finite(image: Any, *, name: str = "image") -> None:
    """Refuse NaN, infinite or huge (> ``MAX_ABS_VALUE``) values anywhere in a float image.

    Reads the image a block of planes at a time (about 16 M values), so lazy and
    memory-mapped data are never loaded whole. Integer images pass without reading.

    Raises
    ------
    RestoreInputError
        Naming the first bad value's index.
    """
    if np.dtype(image.dtype).kind != "f":
        return
    shape = tuple(int(s) for s in image.shape)
    plane = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    per = max(1, _BLOCK_VALUES // max(1, plane))
    blocks = (
        [(0, image)]
        if len(shape) < 3
        else ((s, image[s : s + per]) for s in range(0, shape[0], per))
    )
    for start, block in blocks:
        arr = np.asarray(block)
        bad = ~np.isfinite(arr)
        if bad.any():
            where = np.unravel_index(int(np.argmax(bad)), arr.shape)
            where = (where[0] + start, *where[1:]) if len(shape) >= 3 else where
            raise RestoreInputError(
                f"{name} contains NaN or infinite values (first at index "
                f"{tuple(int(i) for i in where)}); replace them (e.g. np.nan_to_num) or crop "
                "them out first."
            )
        if arr.size and float(np.abs(arr).max()) > MAX_ABS_VALUE:
            raise RestoreInputError(
                f"{name} has values up to {float(np.abs(arr).max()):.3g}; napari-restore "
                f"computes in float32 and accepts magnitudes up to {MAX_ABS_VALUE:g}: rescale "
                "the image first."
            )


def as_array_like(image: Any) -> Any:
    """``image`` itself if it has ``shape`` and ``dtype`` (kept lazy), else ``np.asarray``
    (nested lists; ragged ones are refused)."""
    if hasattr(image, "shape") and hasattr(image, "dtype"):
        return image
    try:
        return np.asarray(image)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise RestoreInputError(
            f"Cannot read {type(image).__name__} as an image ({err}); pass a numpy array."
        ) from err


def resolve_output_dtype(output_dtype: str | np.dtype | type, input_dtype: Any) -> np.dtype:
    """The dtype of a result: ``"input"`` means the input's, anything else must be real.

    Parameters
    ----------
    output_dtype : "input" or dtype-like
        What the caller asked for.
    input_dtype : dtype-like
        The input's dtype.

    Returns
    -------
    numpy.dtype

    Raises
    ------
    RestoreInputError
        If ``output_dtype`` is not a dtype, or not an integer or floating type.
    """
    if isinstance(output_dtype, str) and output_dtype == "input":
        return np.dtype(input_dtype)
    try:
        dt = np.dtype(output_dtype)
    except TypeError as err:
        raise RestoreInputError(f"output dtype {output_dtype!r} is not a dtype.") from err
    if dt.kind not in "uif":
        raise RestoreInputError(f"output dtype {dt} is not a real number type.")
    return dt


def cast_clipped(values: np.ndarray, dtype: Any) -> np.ndarray:
    """Cast to ``dtype``, clipping to its range for integers (never wrapping around).

    Parameters
    ----------
    values : numpy.ndarray
        Floating-point values.
    dtype : dtype-like
        Target dtype.

    Returns
    -------
    numpy.ndarray
        ``values`` rounded and clipped for integer dtypes, cast otherwise.
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    if dtype.kind in "ui":
        # Clip in the integer domain: float(info.max) rounds up for 32/64-bit integers
        # (float32(2**32 - 1) == 2**32), and casting such a value wraps around.
        info = np.iinfo(dtype)
        rounded = np.rint(values)
        high = rounded >= info.max
        low = rounded <= info.min
        out = np.where(high | low, 0, rounded).astype(dtype)
        out[high] = info.max
        out[low] = info.min
        return out
    if dtype.kind == "f" and values.dtype.kind == "f" and dtype.itemsize < values.itemsize:
        info = np.finfo(dtype)  # narrowing (e.g. to float16): saturate instead of giving Inf
        return np.clip(values, info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


def robust_range(image: Any, max_samples: int = 1_000_000) -> float:
    """0.1th to 99.9th percentile range of an image (strided subsample for big arrays).

    Parameters
    ----------
    image : array_like
        Image or stack; only a strided subsample of at most ``max_samples`` values is read.
    max_samples : int
        Upper bound on the number of values read.

    Returns
    -------
    float
        The range, or 1.0 where the image is constant (so additive stripes stay visible).
    """
    arr = as_array_like(image)  # lazy data stay lazy: only the strided sample is read
    size = int(np.prod(arr.shape, dtype=np.float64))
    stride = max(1, int(np.ceil((size / max_samples) ** (1 / max(arr.ndim, 1)))))
    sample = np.asarray(arr[(slice(None, None, stride),) * arr.ndim], dtype=np.float64)
    lo, hi = np.percentile(sample, [0.1, 99.9])
    return float(hi - lo) if hi > lo else 1.0


def finite_float64(data: Any, message: str) -> np.ndarray:
    """``data`` as a float64 array, or :class:`RestoreInputError` with ``message`` if it holds
    NaN or infinite values (metrics on such data would be NaN without saying why), or
    magnitudes above ``MAX_ABS_VALUE`` (whose squares and spectra overflow)."""
    out = np.asarray(data, dtype=np.float64)
    if not np.isfinite(out).all():
        raise RestoreInputError(message)
    if out.size and float(np.abs(out).max()) > MAX_ABS_VALUE:
        raise RestoreInputError(
            f"The data have values up to {float(np.abs(out).max()):.3g}; magnitudes up to "
            f"{MAX_ABS_VALUE:g} are accepted: rescale the image first."
        )
    return out
