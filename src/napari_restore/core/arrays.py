"""Array checks, dtype resolution and casting: the one place where intensities meet dtypes.

Every capability (stripes, noise, destriping, denoising) checks its input and casts its output
through these functions, so integers are always rounded and clipped (never wrapped) and a bad
dtype gets the same message everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_restore.errors import RestoreInputError


def check_real_image(image: Any, *, min_ndim: int = 2, name: str = "image") -> None:
    """Raise :class:`RestoreInputError` for input that is not a real-valued greyscale array.

    Parameters
    ----------
    image : array_like
        Anything with ``dtype`` and ``ndim`` (numpy, dask, zarr, memory-mapped TIFF).
    min_ndim : int
        Fewest axes accepted (default 2: Y and X).
    name : str
        How the message names the input.
    """
    dtype = np.dtype(image.dtype)
    if dtype.kind == "c":
        raise RestoreInputError(f"{name} is complex ({dtype}); pass its magnitude or real part.")
    if dtype.kind not in "buif":
        raise RestoreInputError(f"{name} has dtype {dtype}; a numeric image is needed.")
    if image.ndim < min_ndim:
        raise RestoreInputError(
            f"{name} has shape {image.shape}; at least {min_ndim} dimensions (Y, X) are needed."
        )


def as_array_like(image: Any) -> Any:
    """``image`` itself if it has ``shape`` and ``dtype`` (kept lazy), else ``np.asarray``."""
    if hasattr(image, "shape") and hasattr(image, "dtype"):
        return image
    return np.asarray(image)


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
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
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
    arr = np.asarray(image)
    stride = max(1, int(np.ceil((arr.size / max_samples) ** (1 / max(arr.ndim, 1)))))
    sample = np.asarray(arr[(slice(None, None, stride),) * arr.ndim], dtype=np.float64)
    lo, hi = np.percentile(sample, [0.1, 99.9])
    return float(hi - lo) if hi > lo else 1.0
