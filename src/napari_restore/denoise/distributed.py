"""Denoising ``(T, Y, X)`` stacks block by block on a dask.distributed cluster, into OME-Zarr.

SRDTrans sees ``(patch_t, tile, tile)`` tiles that overlap in time and space. A block of the
output is computed with the tiles of the *whole stack's* grid that touch it
(:func:`~napari_restore.engine.tiling.region_tiling`), normalised with the whole stack's mean
and scale (measured once, on the client), so every voxel gets exactly the tiles and weights of
the single-process, in-memory run (:func:`~napari_restore.denoise.infer.denoise` with the same
options); tiles that cross a block border are computed by both blocks.

``intensity="mean"`` shifts the whole output so that its mean equals the input's, and that
shift is known only once every block is done: the run then has two stages. The first writes
the network's output (float32) into a scratch array inside the store and records each block's
sums; the second shifts, rescales and casts every block into the output and removes the
scratch array. Both stages resume block by block. ``intensity="none"`` writes the output in
one stage.

The result equals the in-memory path up to float rounding (the shift is summed in another
order); :func:`~napari_restore.denoise.infer.denoise_file`, which matches means chunk by chunk,
can differ from both by that chunk-wise shift.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_restore.core.arrays import cast_clipped, resolve_output_dtype
from napari_restore.core.progress import ProgressGenerator, run_to_end
from napari_restore.denoise.infer import (
    INTENSITY_MODES,
    Intensity,
    inference_settings,
    load_denoise_model,
    model_normalization,
    stack_statistics,
)
from napari_restore.engine.blockwise import (
    BlockRecord,
    BlockRun,
    ModelBlob,
    block_grid,
    fingerprint,
    plan_blocks,
    prepare_output,
    resume_or_start,
    run_blocks,
    share_model,
    worker_array,
    worker_input,
    worker_model,
    worker_threads,
)
from napari_restore.engine.options import InferenceOptions
from napari_restore.engine.stacks import reflect_index
from napari_restore.errors import RestoreInputError

CHUNK_YX = 512
# Working memory per voxel of a block: input, float32 copy, blending sums, outputs (SRDTrans
# activations are per tile and bounded by the tile size).
BYTES_PER_VOXEL = 48
MAX_BLOCK_BYTES = 512 * 1024**2
SCRATCH = "raw"  # float32 network output of stage 1, inside the record folder


@dataclass(frozen=True)
class _DenoiseTask:
    input_path: str
    output_array: str
    scratch_array: str
    store: str
    model: str
    device: str
    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    multiple: tuple[int, ...]
    batch_size: int
    amp: bool
    mean: float
    scale: float
    frames: int
    dtype: str
    intensity: str
    shift: float = 0.0


def _finish(y: np.ndarray, task: _DenoiseTask) -> np.ndarray:
    """The last steps of ``denoise.infer._denoise_one``, on float32 in the same order."""
    if task.intensity == "mean":
        y = y - np.float32(task.shift)
    y = y * np.float32(task.scale)
    y += np.float32(task.mean)
    return cast_clipped(y, np.dtype(task.dtype))


def denoise_block(index: int, block: tuple[slice, ...], task: _DenoiseTask) -> dict[str, Any]:
    """On a worker, stage 1: run the network on one block (write the output, or the raw output
    and its sums when the mean is matched afterwards) and record it."""
    from napari_restore.core.device import autocast
    from napari_restore.engine.tiling import TileSettings, region_tiling, tile_predict_region

    image = worker_input(task.input_path)
    net, _ = worker_model(task.model, task.device)
    dev = next(net.parameters()).device
    settings = TileSettings(task.tile, task.overlap, task.batch_size, task.multiple)
    frames = task.frames
    work = (max(frames, task.tile[0]), *image.shape[1:])
    region = region_tiling(work, settings, block)
    if frames < work[0]:  # a short stack is mirrored in time up to patch_t
        data = np.asarray(image[(slice(None), *region.read[1:])])[reflect_index(frames, work[0])]
    else:
        data = np.asarray(image[region.read])
    x = data.astype(np.float32)
    x -= np.float32(task.mean)
    x /= np.float32(task.scale)

    def predict(batch: torch.Tensor) -> torch.Tensor:
        with autocast(dev, task.amp):
            return net(batch)

    y = run_to_end(tile_predict_region(predict, x[None], region, device=dev), progress_bar=False)
    y = y[0]
    payload: dict[str, Any] = {}
    if task.intensity == "mean":
        # Sums over the block's own voxels: added up over all blocks, the whole stack's.
        own = x[region.crop]
        payload = {
            "out_sum": float(y.sum(dtype=np.float64)),
            "in_sum": float(own.sum(dtype=np.float64)),
            "n": int(own.size),
        }
        worker_array(task.scratch_array)[block] = y
    else:
        worker_array(task.output_array)[block] = _finish(y, task)
    BlockRecord(task.store).mark(index, payload)
    return {"index": index, "pid": os.getpid(), "threads": worker_threads()}


def shift_block(index: int, block: tuple[slice, ...], task: _DenoiseTask) -> dict[str, Any]:
    """On a worker, stage 2: shift, rescale and cast one block of the raw output."""
    y = np.asarray(worker_array(task.scratch_array)[block])
    worker_array(task.output_array)[block] = _finish(y, task)
    BlockRecord(task.store, "final").mark(index)
    return {"index": index, "pid": os.getpid()}


def denoise_volume_progress(
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: Any,
    options: InferenceOptions | None = None,
    *,
    client: Any,
    intensity: Intensity = "mean",
    block_shape: Sequence[int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    pyramid: int = 0,
    **option_fields: Any,
) -> ProgressGenerator[BlockRun]:
    """Denoise a ``(T, Y, X)`` stack block by block on a dask.distributed cluster into OME-Zarr.

    Parameters
    ----------
    inp : path-like
        OME-Zarr, zarr, TIFF or ``.npy`` holding one ``(T, Y, X)`` stack, read lazily by the
        workers (on a file system they see).
    out : path-like
        ``DIR.ome.zarr``, with the input's axes, scale and units.
    model : SRDTrans or path-like
        The network or its model file.
    options, **option_fields
        Device (resolved on each worker), tile, overlap, batch, output dtype, amp
        (:class:`~napari_restore.engine.options.InferenceOptions`); tile and overlap default
        as on the CPU (:func:`~napari_restore.denoise.infer.inference_settings`), the same for
        every worker.
    client : distributed.Client
        The cluster.
    intensity : {"mean", "none"}
        As for :func:`~napari_restore.denoise.infer.denoise` (whole-stack mean; two stages).
    block_shape, resume, overwrite, pyramid
        As for :func:`~napari_restore.destripe.distributed.destripe_volume_progress`.

    Yields
    ------
    Progress
        ``stage="blocks"`` per finished block of each stage.

    Returns
    -------
    BlockRun
        Of the network stage.
    """
    from napari_restore.io import create_ome_zarr, finish_ome_zarr, open_image, read_image_metadata

    options = InferenceOptions.of(options, **option_fields)
    if intensity not in INTENSITY_MODES:
        raise RestoreInputError(f"intensity={intensity!r}: one of {', '.join(INTENSITY_MODES)}.")
    inp, out = Path(inp), Path(out)
    old = prepare_output(out, inp, resume=resume, overwrite=overwrite)
    image = open_image(inp)
    shape = tuple(int(s) for s in image.shape)
    if len(shape) != 3:
        raise RestoreInputError(
            f"{inp} has shape {shape}; a run on a cluster denoises one (T, Y, X) stack (save "
            "each channel of 4D/5D data as its own stack)."
        )
    dtype = resolve_output_dtype(options.output_dtype, image.dtype)
    net = load_denoise_model(model, "cpu") if not isinstance(model, torch.nn.Module) else model
    meta = dict(getattr(net, "metadata", {}) or {})
    meta.setdefault("task", "denoise")
    blob = ModelBlob.from_module(net, meta)
    cpu = torch.device("cpu")
    settings = inference_settings(net, shape, cpu, options)
    if options.batch_size is None:
        settings = type(settings)(settings.tile, settings.overlap, 1, settings.multiple)
    mean, scale = stack_statistics(image, model_normalization(net))
    chunks, blocks_shape = plan_blocks(
        shape,
        CHUNK_YX,
        block_shape,
        old,
        client,
        bytes_per_voxel=BYTES_PER_VOXEL,
        max_block_bytes=MAX_BLOCK_BYTES,
    )
    if old is None and block_shape is None:
        # Blocks long in time: a tile that crosses a block border is computed twice.
        blocks_shape = (
            min(shape[0], max(blocks_shape[0], 4 * settings.tile[0])),
            *blocks_shape[1:],
        )
    blocks = block_grid(shape, blocks_shape)
    description = {
        "task": "denoise",
        "input": str(inp.resolve()),
        "shape": list(shape),
        "dtype": str(dtype),
        "model": blob.digest,
        "tile": list(settings.tile),
        "overlap": list(settings.overlap),
        "stats": [mean, scale],
        "intensity": intensity,
        "pyramid": pyramid,
    }
    run = {
        "fingerprint": fingerprint(description),
        "description": description,
        "block_shape": list(blocks_shape),
        "chunks": list(chunks),
        "blocks": len(blocks),
    }
    record = BlockRecord(out)
    scratch = out / ".napari-restore" / SCRATCH
    if old is None:
        metadata = read_image_metadata(inp, len(shape))
        if metadata.version is None:
            metadata = type(metadata).default(3, stack_axis="t")
        run["array"] = create_ome_zarr(out, shape, dtype, chunks, metadata, pyramid=pyramid)
    else:
        run["array"] = old["array"]
    done = resume_or_start(record, run, resume=old is not None, n_blocks=len(blocks))
    if intensity == "mean" and not scratch.exists():
        import zarr

        zarr.open_array(
            str(scratch), mode="w", shape=shape, dtype=np.float32, chunks=chunks, zarr_format=2
        )
    task = _DenoiseTask(
        input_path=str(inp.resolve()),
        output_array=str(Path(run["array"]).resolve()),
        scratch_array=str(scratch.resolve()),
        store=str(out.resolve()),
        model=share_model(client, blob),
        device=str(options.device),
        tile=tuple(settings.tile),
        overlap=tuple(settings.overlap),
        multiple=tuple(settings.multiple),
        batch_size=int(options.batch_size or settings.batch_size),
        amp=options.amp,
        mean=float(mean),
        scale=float(scale),
        frames=shape[0],
        dtype=str(dtype),
        intensity=intensity,
    )
    result = yield from run_blocks(client, denoise_block, blocks, done, task)
    if len(record.finished()) < len(blocks):
        raise RuntimeError(f"{out}: blocks are missing after the run; run again with --resume.")
    if intensity == "mean":
        sums = record.payloads().values()
        n = sum(p["n"] for p in sums)
        shift = (sum(p["out_sum"] for p in sums) - sum(p["in_sum"] for p in sums)) / n
        final = BlockRecord(out, "final")
        task = _DenoiseTask(**{**task.__dict__, "shift": float(shift)})
        yield from run_blocks(
            client, shift_block, blocks, final.finished(), task, key_prefix="napari-restore-shift"
        )
        if len(final.finished()) < len(blocks):
            raise RuntimeError(f"{out}: blocks are missing; run again with --resume.")
        shutil.rmtree(scratch, ignore_errors=True)
    finish_ome_zarr(out)
    record.complete()
    return result


def denoise_volume(
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: Any,
    options: InferenceOptions | None = None,
    *,
    client: Any,
    progress_bar: bool = False,
    **kwargs: Any,
) -> BlockRun:
    """Run :func:`denoise_volume_progress` to the end (same arguments, plus
    ``progress_bar``)."""
    return run_to_end(
        denoise_volume_progress(inp, out, model, options, client=client, **kwargs),
        desc="denoise blocks",
        progress_bar=progress_bar,
    )


__all__ = ["denoise_block", "denoise_volume", "denoise_volume_progress", "shift_block"]
