"""Helpers shared by SRDTrans training and inference: stack checks, means, time padding."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_restore.core.arrays import check_dtype, check_finite, check_not_rgb
from napari_restore.errors import RestoreInputError

# Frames read at once when a statistic runs over a (possibly memory-mapped) stack.
_CHUNK_VOXELS = 1 << 24


def as_stack(data: Any, name: str = "The image") -> Any:
    """Check a ``(T, Y, X)`` stack (a 2D image becomes a one-frame stack, see below).

    A 2D image ``(Y, X)`` is accepted as a stack of one frame: SRDTrans then learns from the
    spatial redundancy inside that frame only (the temporal transformer sees copies of it).
    Data are not read here: memory-mapped and zarr arrays stay lazy.
    """
    shape = tuple(int(s) for s in getattr(data, "shape", np.shape(data)))
    dtype = np.dtype(getattr(data, "dtype", np.asarray(data).dtype))
    check_dtype(dtype, name=name)
    check_not_rgb(shape, name=name)
    if len(shape) == 2:
        data = np.asarray(data)[None]  # 2D images are small: read them
        shape = (1, *shape)
    if len(shape) != 3:
        raise RestoreInputError(
            f"{name} has shape {shape}; SRDTrans needs a stack (T, Y, X) of time points or "
            "z-slices (a 2D image is treated as a one-frame stack). For 4D/5D data choose the "
            "stack axis (stack_axis / --stack-axis); the other leading axes are processed "
            "one by one."
        )
    if min(shape[1:]) < 4:
        raise RestoreInputError(
            f"{name} has frames of {shape[1]}x{shape[2]} pixels; SRDTrans needs at least 4x4."
        )
    if min(shape) == 0:
        raise RestoreInputError(f"{name} is empty (shape {shape}).")
    return data


def stack_mean(stack: Any) -> float:
    """Mean of a ``(T, Y, X)`` array, read a block of frames at a time (float64 sums)."""
    t = stack.shape[0]
    per = max(1, _CHUNK_VOXELS // max(1, int(np.prod(stack.shape[1:]))))
    total = 0.0
    for s in range(0, t, per):
        block = np.asarray(stack[s : s + per])
        check_finite(block, name=f"The stack (frames {s}-{s + len(block) - 1})")
        total += float(block.sum(dtype=np.float64))
    return total / float(np.prod(stack.shape))


def stack_std(stack: Any, mean: float | None = None) -> float:
    """Standard deviation of a ``(T, Y, X)`` array about ``mean`` (default: its mean), read a
    block of frames at a time (float64 sums). 1.0 for a constant stack, so that dividing by it
    is always safe."""
    if mean is None:
        mean = stack_mean(stack)
    t = stack.shape[0]
    per = max(1, _CHUNK_VOXELS // max(1, int(np.prod(stack.shape[1:]))))
    total = 0.0
    for s in range(0, t, per):
        block = (np.asarray(stack[s : s + per], dtype=np.float64) - mean).ravel()
        total += float(block @ block)
    std = float(np.sqrt(total / float(np.prod(stack.shape))))
    return std if std > 0 and np.isfinite(std) else 1.0


def reflect_index(n: int, target: int) -> np.ndarray:
    """Indices ``0..n-1`` extended to length ``target`` by repeated mirror reflection.

    ``reflect_index(3, 8) -> [0 1 2 1 0 1 2 1]``; a single frame is repeated.
    """
    return np.pad(np.arange(n), (0, max(0, target - n)), mode="reflect")


def resolve_stack_axis(ndim: int, stack_axis: int) -> int:
    """Validate ``stack_axis`` for an array with ``ndim`` axes (the last two are Y and X)."""
    if ndim < 3:
        return 0
    axis = stack_axis + ndim if stack_axis < 0 else stack_axis
    if not 0 <= axis < ndim - 2:
        raise RestoreInputError(
            f"stack_axis={stack_axis} is not a leading axis of this {ndim}D image: the last two "
            f"axes are Y and X, so choose one of 0..{ndim - 3} (the T or Z axis)."
        )
    return axis


def leading_items(shape: tuple[int, ...], stack_axis: int) -> list[tuple[Any, ...]]:
    """Index tuples selecting every ``(T, Y, X)`` stack of an N-D array.

    Every leading axis other than ``stack_axis`` (e.g. channels) is iterated; the stack axis,
    Y and X are kept whole and in that order.
    """
    if len(shape) <= 3:
        return [(slice(None),) * len(shape)]
    others = [a for a in range(len(shape) - 2) if a != stack_axis]
    items = []
    for combo in np.ndindex(*[shape[a] for a in others]):
        index: list[Any] = [slice(None)] * len(shape)
        for a, i in zip(others, combo, strict=True):
            index[a] = int(i)
        items.append(tuple(index))
    return items


def with_frames(index: tuple[Any, ...], axis: int, frames: Any) -> tuple[Any, ...]:
    """``index`` (from :func:`leading_items`) with ``frames`` on the stack axis."""
    return tuple(frames if a == axis else i for a, i in enumerate(index))


class StackView:
    """Lazy ``(T, Y, X)`` view of one stack of an N-D array (memory-mapped TIFF, zarr, numpy).

    Indexing reads only what is asked for, so training and statistics on one channel of a big
    file never load the rest.

    Parameters
    ----------
    arr : array_like
        N-D array (``ndim >= 3``) with Y and X last.
    index : tuple
        One item of :func:`leading_items`: integers on the other leading axes.
    axis : int
        The stack axis (T or Z).
    """

    def __init__(self, arr: Any, index: tuple[Any, ...], axis: int) -> None:
        self.arr, self.index, self.axis = arr, index, axis
        self.shape = (int(arr.shape[axis]), *(int(s) for s in arr.shape[-2:]))
        self.dtype = np.dtype(arr.dtype)
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 3 or any(k is Ellipsis or k is None for k in key):
            raise IndexError(f"StackView takes up to 3 plain indices, got {key!r}.")
        full = list(with_frames(self.index, self.axis, key[0] if key else slice(None)))
        for j, k in enumerate(key[1:]):
            full[len(full) - 2 + j] = k
        return np.asarray(self.arr[tuple(full)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)
