"""SRDTrans inference: denoise full-resolution stacks of any size with a trained network.

The network was trained on 2×-subsampled patches but is applied to the full-resolution stack
(as in the paper). Per ``(T, Y, X)`` stack:

1. subtract the stack mean and scale to a standard deviation of 10 (float32), exactly as
   in training (networks from older model files, trained without the division, get the mean
   subtracted only: see :func:`model_normalization`);
2. a stack shorter than the network's ``patch_t`` is extended by mirror reflection in time (the
   same padding training uses), and cut back afterwards;
3. overlapping 3D tiles ``(patch_t, tile, tile)`` are run in batches and blended on the device
   with :func:`~napari_restore.engine.tiling.tile_predict` (bf16 on CUDA);
4. with ``flips`` > 1, steps 2-3 run again on mirrored copies of the stack (left-right,
   up-down, both) and the mirrored-back outputs are averaged (a flip ensemble, the "geometric
   self-ensemble" of Lim et al., CVPR Workshops 2017), see :data:`FLIP_SETS`;
5. the scaling is undone, an intensity correction is applied (``intensity``, below), and the
   result is cast to the input dtype (clipped) or float32.

Intensity: the reference implementation rescales every tile by ``sqrt(sum(raw) / sum(out))``,
which moves each tile's level by an amount that depends on the tile's content (and leaves the
offset bias of the network in place). Here ``intensity="mean"`` (default) shifts the whole
output so that its mean equals the input's mean: the stack mean of the noisy input is an
unbiased, extremely precise estimate of the mean of the truth (zero-mean noise, millions of
voxels), so this removes the global offset bias of the network without touching contrast, and
it is the same for every tile (no seams). ``"none"`` keeps the raw network output.
``tests/test_denoise_infer.py`` measures ``output ≈ a·truth + b`` on synthetic data for both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from napari_restore.core.arrays import cast_clipped, check_finite, resolve_output_dtype
from napari_restore.core.device import autocast, module_on, resolve_device
from napari_restore.core.progress import ProgressGenerator, nested_progress, run_to_end
from napari_restore.engine.model_files import load_model
from napari_restore.engine.options import InferenceOptions
from napari_restore.engine.stacks import (
    StackView,
    as_stack,
    leading_items,
    reflect_index,
    resolve_stack_axis,
    stack_mean,
    stack_std,
    with_frames,
)
from napari_restore.engine.tiling import (
    ChunkBlender,
    TileSettings,
    auto_tile_size,
    count_tiles,
    tile_predict,
    tile_starts,
)
from napari_restore.errors import RestoreInputError

NORMALIZATIONS: tuple[str, ...] = ("mean_std", "mean")
# "mean_std" maps a stack to zero mean and this standard deviation. Not 1: the paper's loss
# 0.5·L1 + 0.5·MSE is then dominated by its L1 term, which pulls photon-limited pixels towards
# their median (below the mean at a few photons); the paper works in camera units, where MSE
# dominates. Measured (tiny network, 60 steps, 2 photons/px, error relative to the input's):
# standard deviation 1: 1.12 (worse than the input), 4: 0.59, 10: 0.53, 30: 0.57.
TARGET_STD = 10.0
Intensity = Literal["mean", "none"]
INTENSITY_MODES: tuple[str, ...] = ("mean", "none")

# Peak inference memory per input voxel (bytes, bf16 on CUDA), rough upper estimate used only to
# size tiles; out-of-memory errors still shrink tiles and batches automatically.
_BYTES_PER_VOXEL = 400
_CPU_TILE_VOXELS = 1 << 21
# Progress units per chunk when a file is denoised chunk by chunk (chunks differ in tiles).
_FILE_UNITS = 1000

#: Flip ensembles: the mirrorings (axes of a ``(T, Y, X)`` stack) whose outputs are averaged.
#: A network after a few CPU minutes of fine-tuning errs differently on a mirrored stack, so
#: the average is cleaner: on the held-out dense-filament stack after 3 min, 41.66 dB with one
#: pass, 42.17 with 2 (plain, left-right), 42.30 with 4; time reversal and transposition on top
#: added 0.05 dB for twice the time (benchmarks/results/denoise_cpu, docs/denoise.md).
FLIP_SETS: dict[int, tuple[tuple[int, ...], ...]] = {
    1: ((),),
    2: ((), (2,)),
    4: ((), (2,), (1,), (1, 2)),
}
Flips = int | Literal["auto"]
#: ``flips="auto"``: 4 on the CPU for stacks up to this many voxels (64 x 256 x 256: a few
#: CPU minutes for the 4 passes), else 1 (larger stacks, and GPUs: the paper's inference).
AUTO_FLIPS_MAX_VOXELS = 64 * 256 * 256


def normalization_from_metadata(meta: dict[str, Any]) -> str:
    """How the network of a model file expects its input: ``"mean_std"`` or ``"mean"``.

    Files written before the division by the standard deviation was introduced store a plain
    sentence under ``"normalization"``; their networks work in the units of the data.
    """
    norm = meta.get("normalization")
    if isinstance(norm, dict) and norm.get("method") in NORMALIZATIONS:
        return str(norm["method"])
    return "mean"


def model_normalization(model: nn.Module) -> str:
    """``"mean_std"`` or ``"mean"``: see :class:`~napari_restore.models.srdtrans.SRDTrans`."""
    norm = getattr(model, "normalization", "mean")
    if norm not in NORMALIZATIONS:
        raise RestoreInputError(f"Unknown input normalization {norm!r} of the network.")
    return str(norm)


def stack_statistics(stack: Any, normalization: str) -> tuple[float, float]:
    """``(mean, scale)`` that map a ``(T, Y, X)`` stack to the network's input,
    ``(x - mean) / scale``: for ``"mean_std"`` the stack's standard deviation over
    :data:`TARGET_STD`, else 1."""
    mean = stack_mean(stack)
    scale = stack_std(stack, mean) / TARGET_STD if normalization == "mean_std" else 1.0
    return mean, scale


def load_denoise_model(
    path: str | os.PathLike[str], device: str | torch.device = "auto"
) -> nn.Module:
    """Load a trained SRDTrans network from a model file (safetensors + JSON; never unpickles).

    Parameters
    ----------
    path : path-like
        ``x``, ``x.safetensors`` or ``x.json``.
    device : str or torch.device
        Where to put it (``"auto"``: the first GPU, else the CPU).

    Returns
    -------
    SRDTrans
        In eval mode; its metadata (training settings, data, losses) is in ``model.metadata``.
    """
    net, meta = load_model(path, device, task="denoise")
    net.metadata = meta
    net.normalization = normalization_from_metadata(meta)
    return net


def _as_model(model: nn.Module | str | os.PathLike[str], device: torch.device) -> nn.Module:
    if isinstance(model, nn.Module):
        return module_on(model, device)
    return load_denoise_model(model, device)


ModelOrModels = nn.Module | str | os.PathLike[str] | Sequence[nn.Module | str | os.PathLike[str]]


def _models_per_stack(model: ModelOrModels, n_stacks: int, device: torch.device) -> list[nn.Module]:
    """One network per stack: the same one for all, or one each (e.g. a model per channel)."""
    if isinstance(model, (list, tuple)):
        if len(model) != n_stacks:
            raise RestoreInputError(
                f"{len(model)} models for {n_stacks} stacks: give one model, or one per stack "
                "(in the order of the leading axes other than the stack axis)."
            )
        return [_as_model(m, device) for m in model]
    return [_as_model(model, device)] * n_stacks


def inference_settings(
    model: nn.Module,
    shape: Sequence[int],
    device: torch.device,
    options: InferenceOptions | None = None,
) -> TileSettings:
    """Tiles for a ``(T, Y, X)`` stack: ``(patch_t, tile_y, tile_x)`` blocks.

    Parameters
    ----------
    model : SRDTrans
        The network (its ``patch_t`` is the tile length in time).
    shape : sequence of int
        ``(T, Y, X)``.
    device : torch.device
        Compute device (sizes the default tiles).
    options : InferenceOptions, optional
        Its ``tile``, ``overlap`` and ``batch_size`` (the rest is not used here):

    tile : int or (int, int), optional
        Lateral tile size. Default: on CUDA from the free memory, elsewhere about 2 M voxels
        per tile.
    overlap : int or (int, int) or (int, int, int), optional
        Overlap of neighbouring tiles: lateral, or ``(t, y, x)``. Default half a tile in time
        (as in the paper) and a quarter of the tile laterally (wider than where the network's
        context is cut off at a tile border, which the blending ramps hide).
    batch_size : int, optional
        Tiles per network call (default 4 on CUDA, 1 elsewhere).
    """
    options = options if options is not None else InferenceOptions()
    tile, overlap, batch_size = options.tile, options.overlap, options.batch_size
    pt = int(model.patch_t)
    if tile is None:
        if device.type == "cuda":
            edge = auto_tile_size(
                device, _BYTES_PER_VOXEL * pt * 4, ndim=2, multiple=8, default=256, largest=1024
            )
        else:
            edge = int(np.clip(math.sqrt(_CPU_TILE_VOXELS / pt) // 8 * 8, 64, 512))
        tile_yx = (edge, edge)
    else:
        tile_yx = (int(tile), int(tile)) if np.isscalar(tile) else tuple(int(v) for v in tile)
    if len(tile_yx) != 2 or min(tile_yx) < 8:
        raise RestoreInputError(f"tile={tile!r}: give a lateral tile size (or two) of >= 8.")
    if overlap is None:
        ov: tuple[int, ...] = (pt // 2, tile_yx[0] // 4, tile_yx[1] // 4)
    elif np.isscalar(overlap):
        ov = (pt // 2, int(overlap), int(overlap))
    else:
        ov = tuple(int(v) for v in overlap)
        ov = (pt // 2, *ov) if len(ov) == 2 else ov
    if len(ov) != 3 or min(ov) < 0:
        raise RestoreInputError(f"overlap={overlap!r}: give non-negative sizes.")
    if batch_size is None:
        batch_size = 4 if device.type == "cuda" else 1
    return TileSettings(
        tile=(pt, *tile_yx),
        overlap=(min(ov[0], pt // 2), *ov[1:]),
        batch_size=int(batch_size),
        multiple=(int(getattr(model, "time_multiple", 16)), 1, 1),
    )


def _stack_voxels(shape: Sequence[int], axis: int) -> int:
    """Voxels of one ``(T, Y, X)`` stack of data of ``shape`` (a plane: one frame)."""
    return math.prod(shape[-2:]) * (shape[axis] if len(shape) > 2 else 1)


def resolve_flips(flips: Flips, n_voxels: int, device: torch.device) -> int:
    """The number of flip-ensemble passes: ``flips`` itself, or what ``"auto"`` means here.

    Parameters
    ----------
    flips : {1, 2, 4} or "auto"
        Passes whose outputs are averaged (:data:`FLIP_SETS`). ``"auto"``: 4 on the CPU for a
        stack of at most :data:`AUTO_FLIPS_MAX_VOXELS` voxels, else 1.
    n_voxels : int
        Voxels of one ``(T, Y, X)`` stack (the whole stack, also when it is processed in
        chunks).
    device : torch.device
        The compute device.

    Returns
    -------
    int
        1, 2 or 4.
    """
    if flips == "auto":
        return 4 if device.type == "cpu" and n_voxels <= AUTO_FLIPS_MAX_VOXELS else 1
    if isinstance(flips, bool) or flips not in FLIP_SETS:
        raise RestoreInputError(
            f"flips={flips!r}: choose 'auto' or one of {', '.join(map(str, FLIP_SETS))}."
        )
    return int(flips)


def denoise_centered(
    x: np.ndarray,
    model: nn.Module,
    settings: TileSettings,
    device: torch.device,
    amp: bool = True,
    flips: int = 1,
) -> ProgressGenerator[np.ndarray]:
    """Run the network on a mean-subtracted float32 ``(T, Y, X)`` stack (no intensity steps).

    Stacks shorter than ``patch_t`` are mirrored in time up to ``patch_t`` and cut back. With
    ``flips`` > 1 (see :data:`FLIP_SETS`) the outputs of mirrored copies, mirrored back, are
    averaged. Yields a Progress per batch of tiles; returns the float32 output of shape
    ``x.shape``.
    """
    t = x.shape[0]
    pt = int(model.patch_t)
    if t < pt:
        x = x[reflect_index(t, pt)]
    was_training = model.training
    model.eval()

    def predict(batch: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            return model(batch)

    mirrorings = FLIP_SETS[flips]
    tiles = count_tiles(x.shape, settings)
    try:
        for k, axes in enumerate(mirrorings):
            xi = np.ascontiguousarray(np.flip(x, axes)) if axes else x
            out = yield from nested_progress(
                tile_predict(predict, xi[None], settings, device=device),
                done=k * tiles,
                units=tiles,
                total=len(mirrorings) * tiles,
                stage="denoise",
                message=f"flip {k + 1}/{len(mirrorings)}" if len(mirrorings) > 1 else "",
            )
            if k == 0:  # the identity (FLIP_SETS starts with it): a fresh array to sum into
                total = out[0]
            else:
                total += np.flip(out[0], axes)
    finally:
        model.train(was_training)
    if len(mirrorings) > 1:
        total *= np.float32(1.0 / len(mirrorings))
    return total[:t]


def _check_intensity(intensity: str) -> None:
    if intensity not in INTENSITY_MODES:
        raise RestoreInputError(
            f"intensity={intensity!r}: choose one of {', '.join(INTENSITY_MODES)}."
        )


def _denoise_one(
    stack: Any,
    model: nn.Module,
    settings: TileSettings,
    device: torch.device,
    amp: bool,
    intensity: str,
    stats: tuple[float, float] | None = None,
    flips: int = 1,
) -> ProgressGenerator[np.ndarray]:
    """Denoise one ``(T, Y, X)`` stack; returns float32 in the units of the input.

    ``stats``: the ``(mean, scale)`` of the whole stack when ``stack`` is a chunk of it;
    ``flips``: passes of the flip ensemble."""
    x = np.asarray(stack)
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        check_finite(x)  # float64 beyond float32's range would turn into Inf in the cast
    x = x.astype(np.float32)
    mean, scale = stats if stats is not None else stack_statistics(x, model_normalization(model))
    x -= np.float32(mean)
    x /= np.float32(scale)
    out = yield from denoise_centered(x, model, settings, device, amp, flips)
    if intensity == "mean":
        # Same mean as the input block (the whole stack in memory, a chunk when streaming).
        out -= np.float32(out.mean(dtype=np.float64) - x.mean(dtype=np.float64))
    out *= np.float32(scale)
    out += np.float32(mean)
    return out


def denoise_progress(
    stack: Any,
    model: ModelOrModels,
    options: InferenceOptions | None = None,
    *,
    stack_axis: int = 0,
    intensity: Intensity = "mean",
    flips: Flips = "auto",
    **option_fields: Any,
) -> ProgressGenerator[np.ndarray]:
    """Denoise a stack with a trained SRDTrans network (generator form of :func:`denoise`).

    Parameters
    ----------
    stack : array_like
        ``(T, Y, X)`` time-lapse or z-stack; ``(Y, X)`` (a one-frame stack: only sensible with a
        network trained on single frames); or 4D/5D data whose stack axis is ``stack_axis`` and
        whose other leading axes (e.g. channels) are denoised one by one, each with its own mean.
    model : SRDTrans or path-like, or a sequence of them
        The network, or a model file (see :func:`load_denoise_model`); or one per stack of
        4D/5D data, in the order of the other leading axes (e.g. a model per channel).
    options : InferenceOptions, optional
        Device, tiling (see :func:`inference_settings`), batch, output dtype (default: the
        input's, rounded and clipped to its range) and bf16 autocast on CUDA
        (:class:`~napari_restore.engine.options.InferenceOptions`).
    stack_axis : int
        Axis of T or Z for 4D/5D data (any leading axis; the last two are Y and X). Default 0.
    intensity : {"mean", "none"}
        ``"mean"`` (default): shift the output so that its mean equals the input's (removes
        the network's offset bias; see the module notes). ``"none"``: raw network output.
    **option_fields
        Fields of ``options`` given one by one instead, e.g. ``device="cpu", tile=64``.

    Yields
    ------
    Progress
        ``stage="denoise"``, once per batch of tiles.

    Returns
    -------
    numpy.ndarray
        Denoised data, same shape as ``stack``.
    """
    options = InferenceOptions.of(options, **option_fields)
    _check_intensity(intensity)
    if not hasattr(stack, "shape"):
        stack = np.asarray(stack)
    shape = tuple(int(s) for s in stack.shape)
    dtype = resolve_output_dtype(options.output_dtype, stack.dtype)
    if len(shape) < 2:
        raise RestoreInputError(f"The image has shape {shape}; SRDTrans denoises stacks (T, Y, X).")
    axis = resolve_stack_axis(len(shape), stack_axis)
    dev = resolve_device(options.device)
    # Every index selects one (T, Y, X) stack: the stack axis is the only leading axis kept.
    items = leading_items(shape, axis) if len(shape) > 3 else [None]
    nets = _models_per_stack(model, len(items), dev)
    n_flips = resolve_flips(flips, _stack_voxels(shape, axis), dev)
    out = np.empty(shape, dtype=dtype)
    done = 0
    for n, (index, net) in enumerate(zip(items, nets, strict=True)):
        sub = as_stack(stack if index is None else stack[index])
        settings = inference_settings(net, sub.shape, dev, options)
        per_item = n_flips * count_tiles(
            (max(sub.shape[0], int(net.patch_t)), *sub.shape[1:]), settings
        )
        result = yield from nested_progress(
            _denoise_one(sub, net, settings, dev, options.amp, intensity, flips=n_flips),
            done=done,
            units=per_item,
            total=per_item * len(items),
            stage="denoise",
            message=f"stack {n + 1}/{len(items)}" if len(items) > 1 else "",
        )
        done += per_item
        if index is None:
            out[...] = cast_clipped(result.reshape(shape), dtype)
        else:
            out[index] = cast_clipped(result, dtype)
    return out


def denoise(
    stack: Any,
    model: ModelOrModels,
    options: InferenceOptions | None = None,
    *,
    stack_axis: int = 0,
    intensity: Intensity = "mean",
    flips: Flips = "auto",
    progress_bar: bool = False,
    **option_fields: Any,
) -> np.ndarray:
    """Denoise a stack with a trained SRDTrans network.

    Same parameters as :func:`denoise_progress`, plus ``progress_bar`` (a tqdm bar).

    Returns
    -------
    numpy.ndarray
        Denoised data, same shape as ``stack``, dtype ``options.output_dtype``.

    Examples
    --------
    >>> model = load_denoise_model("my_model.safetensors")     # doctest: +SKIP
    >>> clean = denoise(noisy_stack, model, device="cuda:0")   # doctest: +SKIP
    """
    gen = denoise_progress(
        stack,
        model,
        options,
        stack_axis=stack_axis,
        intensity=intensity,
        flips=flips,
        **option_fields,
    )
    return run_to_end(gen, desc="denoise", progress_bar=progress_bar)


def denoise_file_progress(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model: ModelOrModels,
    options: InferenceOptions | None = None,
    *,
    stack_axis: int = 0,
    chunk_t: int | None = None,
    intensity: Intensity = "mean",
    overwrite: bool = False,
    flips: Flips = "auto",
    **option_fields: Any,
) -> ProgressGenerator[Path]:
    """Denoise an image file chunk by chunk along the stack axis (generator form).

    The input is opened lazily (:func:`~napari_restore.io.open_image`: memory-mapped TIFF,
    zarr, OME-Zarr, ``.npy``); blocks of ``chunk_t`` frames overlapping by ``patch_t / 2`` are
    denoised in turn and blended across their overlaps with raised-cosine weights, and finished
    frames are written with :class:`~napari_restore.io.PlaneWriter`. Memory holds about two
    chunks, never the whole stack. The output appears only when complete.

    Parameters
    ----------
    input_path, output_path : path-like
        Noisy input and denoised output (``.tif``, ``.zarr``, ``.ome.zarr`` or ``.npy``).
    model : SRDTrans or path-like, or a sequence of them
        The network or its model file; or one per stack (see :func:`denoise_progress`).
    stack_axis : int
        Axis of T or Z (for 4D/5D files; other leading axes are processed one by one).
    chunk_t : int, optional
        Frames per chunk (at least ``2 * patch_t``). Default: about 64 M voxels per chunk.
    options, **option_fields
        As in :func:`denoise_progress`.
    intensity : {"mean", "none"}
        As in :func:`denoise_progress`, except that ``"mean"`` matches the means chunk by chunk
        (the stack mean that is subtracted is still the whole stack's).
    overwrite : bool
        Replace an existing output (never the input: that is always refused).
    flips : {"auto", 1, 2, 4}
        As in :func:`denoise_progress` (``"auto"`` judges the whole stack's size).

    Yields
    ------
    Progress
        ``stage="denoise"`` per batch of tiles, over all chunks.

    Returns
    -------
    pathlib.Path
        The output path.
    """
    from napari_restore.io import PlaneWriter, check_output_paths, open_image, output_metadata

    check_output_paths([output_path], [input_path], overwrite=overwrite)
    options = InferenceOptions.of(options, **option_fields)
    _check_intensity(intensity)
    arr = open_image(input_path)
    shape = tuple(int(s) for s in arr.shape)
    dtype = resolve_output_dtype(options.output_dtype, arr.dtype)
    if len(shape) < 3:
        # A single plane is small: denoise it in memory.
        result = yield from denoise_progress(
            arr, model, options, intensity=intensity, flips=flips, output_dtype=dtype
        )
        with PlaneWriter(output_path, shape, dtype, source=arr) as writer:
            writer[...] = result
        return Path(output_path)
    axis = resolve_stack_axis(len(shape), stack_axis)
    dev = resolve_device(options.device)
    items = leading_items(shape, axis)
    nets = _models_per_stack(model, len(items), dev)
    n_flips = resolve_flips(flips, _stack_voxels(shape, axis), dev)
    pt = max(int(net.patch_t) for net in nets)
    n_frames = shape[axis]
    frame_voxels = shape[-1] * shape[-2]
    if chunk_t is None:
        chunk_t = max(2 * pt, (1 << 26) // frame_voxels)
    if chunk_t < 2 * pt:
        raise RestoreInputError(f"chunk_t={chunk_t} must be at least 2 * patch_t = {2 * pt}.")
    seam = pt // 2
    starts = tile_starts(n_frames, chunk_t, seam)
    units = len(items) * len(starts)
    unit = 0
    # OME-Zarr: the input's axes, scale and units.
    meta = output_metadata(input_path, output_path, len(shape), stack_axis="t")
    with PlaneWriter(output_path, shape, dtype, source=arr, metadata=meta) as writer:
        for index, net in zip(items, nets, strict=True):
            settings = inference_settings(net, (min(n_frames, chunk_t), *shape[-2:]), dev, options)
            view = as_stack(StackView(arr, index, axis), str(input_path))
            stats = stack_statistics(view, model_normalization(net))
            blender = ChunkBlender(starts, n_frames, seam)
            for k, s in enumerate(starts):
                e = min(n_frames, s + chunk_t)
                out = yield from nested_progress(
                    _denoise_one(
                        view[s:e], net, settings, dev, options.amp, intensity, stats, n_flips
                    ),
                    done=unit * _FILE_UNITS,
                    units=_FILE_UNITS,
                    total=units * _FILE_UNITS,
                    stage="denoise",
                    message=f"frames {s}-{e}",
                )
                unit += 1
                finished = blender.add(k, out)
                if finished is not None:
                    frames, final = finished
                    writer[with_frames(index, axis, frames)] = cast_clipped(final, dtype)
    return Path(output_path)


def denoise_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model: ModelOrModels,
    options: InferenceOptions | None = None,
    *,
    progress_bar: bool = False,
    **kwargs: Any,
) -> Path:
    """Denoise an image file that may be larger than memory; see :func:`denoise_file_progress`
    (same arguments, plus ``progress_bar``).

    Returns
    -------
    pathlib.Path
        The output path.
    """
    gen = denoise_file_progress(input_path, output_path, model, options, **kwargs)
    return run_to_end(gen, desc="denoise", progress_bar=progress_bar)


# input ≈ a·output + b: a ≈ 1 when the output keeps the input's contrast; a flat output (an
# undertrained network) gives a ≫ 1. Blurring a little gives a slightly above 1.
CONTRAST_LIMITS = (0.67, 1.5)


def contrast_fit(noisy: Any, denoised: Any, max_frames: int = 16) -> tuple[float, float]:
    """Least-squares ``noisy ≈ a·denoised + b`` on up to ``max_frames`` frames spread along
    the first axis (both arrays may be lazy: only those frames are read).

    Returns
    -------
    (float, float)
        ``(a, b)``; ``a`` is infinite when the output is constant.
    """
    n = int(noisy.shape[0]) if len(noisy.shape) > 2 else 1
    idx = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))

    def frames(a: Any) -> np.ndarray:
        # One frame at a time: lazy readers (folders of planes, zarr) take integer indices.
        if len(a.shape) <= 2:
            return np.asarray(a, dtype=np.float64).ravel()
        return np.concatenate([np.asarray(a[int(i)], dtype=np.float64).ravel() for i in idx])

    x, y = frames(noisy), frames(denoised)
    yc = y - y.mean()
    var = float(yc @ yc)
    if var <= 1e-12 * max(1.0, float(np.abs(y).max()) ** 2) * y.size:
        return float("inf"), float(x.mean())
    a = float(yc @ (x - x.mean())) / var
    return a, float(x.mean() - a * y.mean())


def output_warnings(noisy: Any, denoised: Any) -> list[str]:
    """Warnings about a denoised result, each with what to do (empty when it looks sound).

    The check: fit the input as ``a·output + b`` (:func:`contrast_fit`). A good denoiser keeps
    the contrast (a ≈ 1); an undertrained network returns a flattened image (a ≫ 1).
    """
    a, _ = contrast_fit(noisy, denoised)
    lo, hi = CONTRAST_LIMITS
    if a > hi:
        amount = "is flat" if not np.isfinite(a) else f"has 1/{a:.1f} of the input's contrast"
        return [
            f"The output {amount} (fit input ≈ a·output + b gives a = {a:.2f}): the network "
            "is undertrained. Train longer (or start from the pretrained network) before "
            "trusting the result."
        ]
    if a < lo:
        return [
            f"The output has more contrast than the input (fit input ≈ a·output + b gives "
            f"a = {a:.2f}): the network is likely unreliable. Train longer, or check that the "
            "stack axis is right."
        ]
    return []
