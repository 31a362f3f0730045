"""Overlapping tiles with smooth blending, batched on the device, with out-of-memory back-off.

A network that maps ``(B, 1, *tile)`` to ``(B, 1, *tile)`` is applied to arrays of any size:
the array is padded (reflect) up to at least one tile, cut into tiles that overlap by
``overlap`` voxels, the tiles are run in batches, and the outputs are summed with a separable
window that ramps down (raised cosine) across the overlaps, then divided by the summed window.
Every output voxel is thus a convex combination of the tiles that saw it, weighted away from tile
borders, where a convolutional network lacks context: no seams.

Works for any number of spatial dimensions: 2D planes for destriping, 3D ``(t, y, x)`` blocks
for SRDTrans. Accumulation happens on the compute device when the output fits there (no
device-to-host copy per tile), else on the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_restore.core.device import free_memory_bytes, is_out_of_memory
from napari_restore.core.progress import Progress, ProgressGenerator

Predict = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TileSettings:
    """How an array is cut into tiles.

    Attributes
    ----------
    tile : tuple of int
        Tile size per spatial axis (rounded to ``multiple`` and shrunk to the data).
    overlap : tuple of int
        Overlap between neighbouring tiles per axis.
    batch_size : int
        Tiles per network call.
    multiple : tuple of int
        The network's required size multiple per axis (e.g. 16 for a 4-level U-Net).
    """

    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    batch_size: int = 4
    multiple: tuple[int, ...] = ()

    def describe(self) -> str:
        """E.g. ``"tiles 512x512, overlap 64x64, batch 8"``."""
        t = "x".join(map(str, self.tile))
        o = "x".join(map(str, self.overlap))
        return f"tiles {t}, overlap {o}, batch {self.batch_size}"


def round_up(n: int, m: int) -> int:
    """Smallest multiple of ``m`` that is >= ``n``."""
    return int(math.ceil(n / m) * m)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of full tiles covering ``[0, size)``; the last one ends exactly at ``size``.

    Parameters
    ----------
    size, tile, overlap : int
        Extent of the axis (``size >= tile``), tile size, and overlap (``< tile``).
    """
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(tile: int, overlap: int) -> torch.Tensor:
    """1D weights: raised-cosine ramps over ``overlap`` at both ends, 1 in between, never 0."""
    w = torch.ones(tile, dtype=torch.float32)
    if overlap > 0:
        x = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        ramp = 0.5 - 0.5 * torch.cos(math.pi * x)
        w[:overlap] = ramp
        w[tile - overlap :] = ramp.flip(0)
    return w


def blend_window(tile: Sequence[int], overlap: Sequence[int]) -> torch.Tensor:
    """Separable N-D blending window of shape ``tile`` (product of 1D ramps)."""
    w = torch.ones((), dtype=torch.float32)
    for t, o in zip(tile, overlap, strict=True):
        w = w[..., None] * _ramp(t, o)
    return w


def balanced_tile(size: int, tile: int, overlap: int, multiple: int) -> int:
    """Smallest tile (a multiple of ``multiple``, at most ``tile``) that covers ``size`` with as
    few tiles as ``tile`` needs.

    With the last tile aligned to the far edge, a fixed tile wastes up to a whole tile of work
    (2048 px in tiles of 1024 overlapping by 64 takes three tiles, 3072 px of work); spreading
    the same number of tiles evenly needs tiles of only 736 px (2208 px of work).
    """
    if size <= tile:
        return tile
    n = math.ceil((size - overlap) / max(1, tile - overlap))
    even = math.ceil((size + (n - 1) * overlap) / n)
    return min(tile, round_up(even, multiple))


def fit_settings(shape: Sequence[int], settings: TileSettings) -> TileSettings:
    """Fit tiles to the data: shrink them to the data or to the fewest evenly spread tiles
    (rounded up to the network multiple), and clamp the overlap to half a tile."""
    nd = len(shape)
    multiple = settings.multiple or (1,) * nd
    tile = tuple(
        max(m, min(balanced_tile(s, round_up(t, m), o, m), round_up(s, m)))
        for s, t, o, m in zip(shape, settings.tile, settings.overlap, multiple, strict=True)
    )
    overlap = tuple(
        min(o, t // 2) if s > t else 0
        for s, t, o in zip(shape, tile, settings.overlap, strict=True)
    )
    return TileSettings(tile, overlap, max(1, settings.batch_size), tuple(multiple))


def _pad_to(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Pad the trailing spatial axes of an ``(N, *spatial)`` tensor up to ``shape``: reflect
    where possible, replicate where the pad exceeds the data."""
    pads: list[int] = []
    for s, target in zip(reversed(x.shape[1:]), reversed(tuple(shape)), strict=True):
        pads += [0, max(0, target - s)]
    if not any(pads):
        return x
    reflect_ok = all(p < s for p, s in zip(pads[1::2], reversed(x.shape[1:]), strict=True))
    mode = "reflect" if reflect_ok else "replicate"
    nd = x.dim() - 1
    # F.pad's reflect/replicate modes need (N, C, *spatial) with 1 to 3 spatial dims.
    y = F.pad(x.unsqueeze(1), pads, mode=mode) if nd <= 3 else _pad_constant_edges(x, shape)
    return y.squeeze(1) if nd <= 3 else y


def _pad_constant_edges(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    out = x
    for axis, target in enumerate(shape, start=1):
        extra = target - out.shape[axis]
        if extra > 0:
            edge = out.narrow(axis, out.shape[axis] - 1, 1)
            out = torch.cat(
                [out, edge.expand(*[extra if d == axis else -1 for d in range(out.dim())])], axis
            )
    return out


def iter_tiles(
    n_items: int,
    shape: Sequence[int],
    settings: TileSettings,
    grids: Sequence[Sequence[int]] | None = None,
) -> Iterator[tuple[int, tuple[slice, ...]]]:
    """``(item, spatial slices)`` of every tile of every item, in batch order (``grids``: the
    tile starts per axis, default :func:`tile_starts`)."""
    if grids is None:
        grids = [
            tile_starts(s, t, o)
            for s, t, o in zip(shape, settings.tile, settings.overlap, strict=True)
        ]
    for item in range(n_items):
        for starts in np.ndindex(*[len(g) for g in grids]):
            yield (
                item,
                tuple(
                    slice(g[i], g[i] + t)
                    for g, i, t in zip(grids, starts, settings.tile, strict=True)
                ),
            )


class TileTooLargeError(RuntimeError):
    """Even one tile per batch does not fit in device memory."""


def _predict_batch(predict: Predict, batch: torch.Tensor) -> torch.Tensor:
    """Run ``predict``, splitting the batch in halves on out-of-memory errors."""
    try:
        return predict(batch).float()
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        if batch.device.type == "cuda":
            torch.cuda.empty_cache()
        if batch.shape[0] == 1:
            raise TileTooLargeError(str(err)) from err
    half = batch.shape[0] // 2
    return torch.cat([_predict_batch(predict, batch[:half]), _predict_batch(predict, batch[half:])])


def tile_predict(
    predict: Predict,
    data: np.ndarray | torch.Tensor,
    settings: TileSettings,
    *,
    device: torch.device | str = "cpu",
    min_tile: int = 32,
) -> ProgressGenerator[np.ndarray]:
    """Apply a network to items of any size with overlapping, blended tiles.

    Parameters
    ----------
    predict : callable
        Maps a float32 ``(B, 1, *tile)`` tensor on ``device`` to a tensor of the same shape (it
        may use autocast; its output is cast back to float32).
    data : numpy.ndarray or torch.Tensor
        ``(N, *spatial)``: ``N`` independent items (e.g. planes), each tiled on its own.
    settings : TileSettings
        Tile size, overlap, batch size and size multiple, per spatial axis.
    device : torch.device or str
        Device to compute on.
    min_tile : int
        Smallest tile edge tried when tiles must shrink after an out-of-memory error.

    Yields
    ------
    Progress
        ``stage="tiles"``, once per batch (a place to stop).

    Returns
    -------
    numpy.ndarray
        float32 ``(N, *spatial)`` output.
    """
    device = torch.device(device)
    x = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data)
    x = x.to(torch.float32)
    spatial = tuple(x.shape[1:])
    settings = fit_settings(spatial, settings)
    while True:
        try:
            result = yield from _tile_pass(predict, x, spatial, settings, device)
            return result
        except TileTooLargeError:
            smaller = tuple(
                max(min_tile, round_up(t // 2, m))
                for t, m in zip(settings.tile, settings.multiple, strict=True)
            )
            if smaller == settings.tile:
                raise
            settings = fit_settings(
                spatial,
                TileSettings(
                    smaller, tuple(o // 2 for o in settings.overlap), 1, settings.multiple
                ),
            )


def _tile_pass(
    predict: Predict,
    x: torch.Tensor,
    spatial: tuple[int, ...],
    settings: TileSettings,
    device: torch.device,
    grids: Sequence[Sequence[int]] | None = None,
) -> ProgressGenerator[np.ndarray]:
    padded_shape = tuple(max(s, t) for s, t in zip(spatial, settings.tile, strict=True))
    xp = _pad_to(x, padded_shape)
    n = xp.shape[0]
    out_bytes = 2 * xp.numel() * 4
    free = free_memory_bytes(device)
    acc_device = device if (free is None or out_bytes < 0.3 * free) else torch.device("cpu")
    out = torch.zeros(xp.shape, dtype=torch.float32, device=acc_device)
    weight = torch.zeros(xp.shape, dtype=torch.float32, device=acc_device)
    window = blend_window(settings.tile, settings.overlap).to(device)
    tiles = list(iter_tiles(n, padded_shape, settings, grids))
    total = len(tiles)
    done = 0
    for b in range(0, total, settings.batch_size):
        chunk = tiles[b : b + settings.batch_size]
        batch = torch.stack([xp[(i, *sl)] for i, sl in chunk]).to(device, non_blocking=True)
        with torch.inference_mode():
            pred = _predict_batch(predict, batch[:, None])[:, 0] * window
        pred = pred.to(acc_device)
        w = window.to(acc_device)
        for k, (i, sl) in enumerate(chunk):
            out[(i, *sl)] += pred[k]
            weight[(i, *sl)] += w
        done += len(chunk)
        yield Progress(done, total, stage="tiles")
    result = out / weight
    crop = (slice(None), *tuple(slice(0, s) for s in spatial))
    return result[crop].cpu().numpy()


@dataclass(frozen=True)
class RegionTiling:
    """The tiles of a whole array's grid that a block of its output needs.

    Attributes
    ----------
    read : tuple of slice
        Spatial region to read: the union of the tiles that overlap the block.
    crop : tuple of slice
        The block, relative to ``read``.
    grids : tuple of tuple of int
        Tile starts per axis, relative to ``read``.
    settings : TileSettings
        The tile settings fitted to the *whole* array.
    """

    read: tuple[slice, ...]
    crop: tuple[slice, ...]
    grids: tuple[tuple[int, ...], ...]
    settings: TileSettings


def region_tiling(
    shape: Sequence[int], settings: TileSettings, block: Sequence[slice]
) -> RegionTiling:
    """Tiles of the whole-array grid that overlap ``block`` (for blockwise runs).

    Running :func:`tile_predict_region` on the returned region gives, inside the block, exactly
    what :func:`tile_predict` gives for the whole array: the same tiles, blended in the same
    order, so a volume cut into blocks is processed bit-identically to one piece.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape of the whole array.
    settings : TileSettings
        Tile settings before fitting (fitted here to ``shape``, as :func:`tile_predict` does).
    block : sequence of slice
        The output block (spatial axes, steps of 1).
    """
    fitted = fit_settings(shape, settings)
    read, crop, grids = [], [], []
    for s, t, o, b in zip(shape, fitted.tile, fitted.overlap, block, strict=True):
        b0, b1, _ = b.indices(s)
        if s <= t:  # one (padded) tile covers the axis: read all of it
            read.append(slice(0, s))
            crop.append(slice(b0, b1))
            grids.append((0,))
            continue
        starts = [g for g in tile_starts(s, t, o) if g < b1 and g + t > b0]
        r0, r1 = starts[0], starts[-1] + t
        read.append(slice(r0, r1))
        crop.append(slice(b0 - r0, b1 - r0))
        grids.append(tuple(g - r0 for g in starts))
    return RegionTiling(tuple(read), tuple(crop), tuple(grids), fitted)


def tile_predict_region(
    predict: Predict,
    data: np.ndarray | torch.Tensor,
    region: RegionTiling,
    *,
    device: torch.device | str = "cpu",
) -> ProgressGenerator[np.ndarray]:
    """:func:`tile_predict` on the region of a whole array that :func:`region_tiling` chose.

    Parameters
    ----------
    predict : callable
        As for :func:`tile_predict`.
    data : numpy.ndarray or torch.Tensor
        ``(N, *spatial)``: the items cut to ``region.read``.
    region : RegionTiling
        From :func:`region_tiling`.
    device : torch.device or str
        Device to compute on.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, *block)``: the output inside the block, as the whole-array run gives it
        (no out-of-memory shrinking of tiles here: that would change the grid).
    """
    device = torch.device(device)
    x = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data)
    x = x.to(torch.float32)
    spatial = tuple(x.shape[1:])
    out = yield from _tile_pass(predict, x, spatial, region.settings, device, region.grids)
    return out[(slice(None), *region.crop)]


def auto_tile_size(
    device: torch.device,
    bytes_per_voxel: float,
    *,
    ndim: int = 2,
    multiple: int = 16,
    default: int = 512,
    largest: int = 2048,
    share: float = 0.5,
) -> int:
    """Tile edge that fits a share of the free device memory.

    Parameters
    ----------
    device : torch.device
        Target device; on the CPU (or MPS) ``default`` is returned.
    bytes_per_voxel : float
        Peak inference memory of the network per input voxel (measured for each model).
    ndim : int
        Number of tiled axes.
    multiple : int
        Tile edges are multiples of this.
    default, largest : int
        Edge on devices without a memory query, and upper bound.
    share : float
        Fraction of the free memory one tile may use.
    """
    free = free_memory_bytes(device)
    if free is None:
        return default
    edge = (share * free / bytes_per_voxel) ** (1.0 / ndim)
    edge = int(edge // multiple * multiple)
    return int(max(multiple, min(largest, edge)))


def count_tiles(shape: Sequence[int], settings: TileSettings) -> int:
    """Tiles :func:`tile_predict` cuts one item of spatial ``shape`` into (before any
    out-of-memory shrinking): the unit of its progress reports."""
    fitted = fit_settings(shape, settings)
    n = 1
    for s, t, o in zip(shape, fitted.tile, fitted.overlap, strict=True):
        n *= len(tile_starts(max(s, t), t, o))
    return n


def chunk_window(length: int, ramp: int, first: bool, last: bool) -> np.ndarray:
    """Blending weights of a chunk along its first axis: raised-cosine ramps at inner borders."""
    w = np.ones(length, dtype=np.float32)
    ramp = min(ramp, length // 2)
    if ramp > 0:
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp, dtype=np.float32) + 0.5) / ramp)
        if not first:
            w[:ramp] = r
        if not last:
            w[length - ramp :] = r[::-1]
    return w


class ChunkBlender:
    """Blend results of overlapping chunks along the first axis, handing out finished frames.

    For data too long to process at once (e.g. a time-lapse streamed from a file): chunk ``k``
    starts at ``starts[k]`` (from :func:`tile_starts` with the overlap ``ramp``); chunks are
    added in order, and every frame is returned as soon as no later chunk covers it, so memory
    holds about two chunks.

    Parameters
    ----------
    starts : sequence of int
        First frame of every chunk.
    length : int
        Frames in all.
    ramp : int
        Overlap of neighbouring chunks (width of the raised-cosine ramps).
    """

    def __init__(self, starts: Sequence[int], length: int, ramp: int) -> None:
        self.starts, self.length, self.ramp = list(starts), int(length), int(ramp)
        self._acc: np.ndarray | None = None  # weighted sums of frames [_acc_start, ...)
        self._wsum = np.zeros(0, np.float32)
        self._acc_start = 0

    def add(self, k: int, out: np.ndarray) -> tuple[slice, np.ndarray] | None:
        """Add the float32 result of chunk ``k``.

        Returns
        -------
        (slice, numpy.ndarray) or None
            The frames that are now final and their blended values, or None.
        """
        s = self.starts[k]
        last = k == len(self.starts) - 1
        w = chunk_window(out.shape[0], self.ramp, first=k == 0, last=last)
        if self._acc is None:
            self._acc = np.zeros((0, *out.shape[1:]), np.float32)
            self._acc_start = s
        grow = s + out.shape[0] - (self._acc_start + self._acc.shape[0])
        if grow > 0:
            self._acc = np.concatenate([self._acc, np.zeros((grow, *out.shape[1:]), np.float32)])
            self._wsum = np.concatenate([self._wsum, np.zeros(grow, np.float32)])
        expand = (slice(None),) + (None,) * (out.ndim - 1)
        self._acc[s - self._acc_start :] += out * w[expand]
        self._wsum[s - self._acc_start :] += w
        done_to = self.length if last else self.starts[k + 1]
        if done_to <= self._acc_start:
            return None
        n = done_to - self._acc_start
        final = self._acc[:n] / self._wsum[:n][expand]
        frames = slice(self._acc_start, done_to)
        self._acc, self._wsum, self._acc_start = self._acc[n:], self._wsum[n:], done_to
        return frames, final
