"""Destriping volumes block by block on a dask.distributed cluster, into OME-Zarr.

Destriping works plane by plane, with tiles in y and x. A block is a run of whole planes, or,
when one plane is too big for a worker, a y/x part of some planes; a part is computed with the
tiles of the *whole plane's* grid that touch it
(:func:`~napari_restore.engine.tiling.region_tiling`), so the output equals the single-process
result of the network (:func:`~napari_restore.destripe.infer.destripe_file` with
``only_striped=False, cleanup=False``) whatever the blocks: the single-process path's per-plane
stripe-evidence check and spectral clean-up (:mod:`napari_restore.destripe.spectral`) need the
whole plane's spectrum and are not applied here yet. The
normalisation range and the stripe direction are measured once, on the client, from the whole
input, exactly as the single-process path measures them.

Each worker opens the input itself (TIFF memory-mapped or through zarr, zarr, OME-Zarr) and
writes its blocks straight into the output store: only block coordinates and a small report
travel through the scheduler.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_restore.core.arrays import cast_clipped, check_real_image, resolve_output_dtype
from napari_restore.core.progress import ProgressGenerator, run_to_end
from napari_restore.destripe.data import NORM_PERCENTILES, denormalise, intensity_range, normalise
from napari_restore.destripe.infer import (
    DEFAULT_TILE,
    Direction,
    ModelSpec,
    detect_stripe_direction,
    load_destripe_model,
    tile_settings_for,
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
from napari_restore.errors import RestoreInputError

# Output chunk edge in y and x: blocks split planes only at chunk borders.
CHUNK_YX = 512
# Working memory per voxel of a block: the input, its float32 copy, the blending sums (2 ×
# float32), the float32 result, its denormalised copy and the cast output, with a margin.
BYTES_PER_VOXEL = 40
# Upper bound of one block's working memory: small blocks spread evenly over the workers,
# lose little when a worker dies, and keep each worker's memory flat.
MAX_BLOCK_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class _BlockTask:
    """What a worker needs for every block of a run (plain data, sent with each block)."""

    input_path: str
    output_array: str
    store: str
    model: str
    device: str
    tile: int
    overlap: int
    batch_size: int | None
    amp: bool
    lo: float
    hi: float
    vertical: bool
    dtype: str


def destripe_block(index: int, block: tuple[slice, ...], task: _BlockTask) -> dict[str, Any]:
    """On a worker: destripe one block of the output, write it and record it.

    Returns
    -------
    dict
        ``index`` and ``pid`` (the worker process that computed it).
    """
    from napari_restore.engine.tiling import region_tiling, tile_predict_region

    image = worker_input(task.input_path)
    net, _ = worker_model(task.model, task.device)
    from napari_restore.core.device import autocast

    dev = next(net.parameters()).device
    settings = tile_settings_for(
        net, dev, tile=task.tile, overlap=task.overlap, batch_size=task.batch_size
    )
    lead, yx = block[:-2], block[-2:]
    plane = tuple(int(s) for s in image.shape[-2:])
    work_plane = plane[::-1] if task.vertical else plane
    work_block = yx[::-1] if task.vertical else yx
    region = region_tiling(work_plane, settings, work_block)
    read = region.read[::-1] if task.vertical else region.read
    data = np.asarray(image[(*lead, *read)])
    planes = data.reshape(-1, *data.shape[-2:])
    if task.vertical:
        planes = planes.swapaxes(-1, -2)
    x = normalise(planes, task.lo, task.hi)

    def predict(batch: torch.Tensor) -> torch.Tensor:
        with autocast(dev, enabled=task.amp):
            return net(batch)

    y = run_to_end(tile_predict_region(predict, x, region, device=dev), progress_bar=False)
    y = denormalise(y, task.lo, task.hi)
    if task.vertical:
        y = y.swapaxes(-1, -2)
    out_shape = tuple(s.stop - s.start for s in block)
    worker_array(task.output_array)[block] = cast_clipped(y, np.dtype(task.dtype)).reshape(
        out_shape
    )
    BlockRecord(task.store).mark(index)
    return {"index": index, "pid": os.getpid(), "threads": worker_threads()}


def destripe_volume_progress(
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: ModelSpec = None,
    options: InferenceOptions | None = None,
    *,
    client: Any,
    direction: Direction = "horizontal",
    block_shape: Sequence[int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    pyramid: int = 0,
    **option_fields: Any,
) -> ProgressGenerator[BlockRun]:
    """Destripe a volume block by block on a dask.distributed cluster into OME-Zarr.

    Parameters
    ----------
    inp : path-like
        OME-Zarr (NGFF 0.4 or 0.5), zarr, TIFF, ``.npy`` or a folder of TIFF planes: any input
        :func:`~napari_restore.io.open_image` reads lazily. The workers read it, so it must be
        on a file system they see.
    out : path-like
        ``DIR.ome.zarr``: written with the input's axes, scale and units (uncalibrated axes
        for inputs that have none).
    model, options, direction, **option_fields
        As for :func:`~napari_restore.destripe.infer.destripe_progress`; ``options.device`` is
        resolved on each worker (``"auto"``: its GPU, else its CPU).
    client : distributed.Client
        The cluster (see :func:`~napari_restore.engine.blockwise.cluster_client`).
    block_shape : sequence of int, optional
        Block size per axis (rounded to whole output chunks by the grid). Default: from the
        workers' memory limit, at most :data:`MAX_BLOCK_BYTES` of working memory a block.
    resume : bool
        Take up an unfinished output of the same run: finished blocks are not computed again.
    overwrite : bool
        Replace an existing output.
    pyramid : int
        Extra resolution levels (each 2× smaller in y and x) written at the end.

    Yields
    ------
    Progress
        ``stage="blocks"``, one per finished block.

    Returns
    -------
    BlockRun
        Blocks computed and skipped, time, blocks per worker.
    """
    from napari_restore.io import (
        create_ome_zarr,
        finish_ome_zarr,
        open_image,
        read_image_metadata,
    )

    options = InferenceOptions.of(options, **option_fields)
    inp, out = Path(inp), Path(out)
    old = prepare_output(out, inp, resume=resume, overwrite=overwrite)
    image = open_image(inp)
    check_real_image(image)
    shape = tuple(int(s) for s in image.shape)
    dtype = resolve_output_dtype(options.output_dtype, image.dtype)
    net, meta = load_destripe_model(model, "cpu")
    blob = ModelBlob.from_module(net, meta)
    percentiles = tuple(meta.get("normalisation", {}).get("percentiles", NORM_PERCENTILES))
    lo, hi = intensity_range(image, percentiles)
    if direction not in ("horizontal", "vertical", "auto"):
        raise RestoreInputError(f"direction={direction!r}: horizontal, vertical or auto.")
    if direction == "auto":
        direction = detect_stripe_direction(image)
    vertical = direction == "vertical"
    if options.tile is not None and not np.isscalar(options.tile):
        raise RestoreInputError(f"tile={options.tile!r}: destriping takes one tile edge.")
    # The grid follows tile and overlap; they are fixed here (not per worker device) so that
    # every worker cuts planes the same way as the single-process path on the CPU.
    fixed = tile_settings_for(
        net,
        torch.device("cpu"),
        tile=options.tile or DEFAULT_TILE,
        overlap=options.overlap,
        batch_size=1,
    )
    chunks, blocks_shape = plan_blocks(
        shape,
        CHUNK_YX,
        block_shape,
        old,
        client,
        bytes_per_voxel=BYTES_PER_VOXEL,
        max_block_bytes=MAX_BLOCK_BYTES,
    )
    blocks = block_grid(shape, blocks_shape)
    description = {
        "task": "destripe",
        "input": str(inp.resolve()),
        "shape": list(shape),
        "input_dtype": str(image.dtype),
        "dtype": str(dtype),
        "model": blob.digest,
        "tile": fixed.tile[0],
        "overlap": fixed.overlap[0],
        "range": [lo, hi],
        "vertical": vertical,
        "pyramid": pyramid,
    }
    run = {
        "fingerprint": fingerprint(description),
        "description": description,
        "block_shape": list(blocks_shape),
        "chunks": list(chunks),
        "blocks": len(blocks),
    }
    if old is None:
        metadata = read_image_metadata(inp, len(shape))
        array = create_ome_zarr(out, shape, dtype, chunks, metadata, pyramid=pyramid)
        run["array"] = array
    else:
        run["array"] = old["array"]
    record = BlockRecord(out)
    done = resume_or_start(record, run, resume=old is not None, n_blocks=len(blocks))
    task = _BlockTask(
        input_path=str(inp.resolve()),
        output_array=str(Path(run["array"]).resolve()),
        store=str(out.resolve()),
        model=share_model(client, blob),
        device=str(options.device),
        tile=fixed.tile[0],
        overlap=fixed.overlap[0],
        batch_size=options.batch_size,
        amp=options.amp,
        lo=float(lo),
        hi=float(hi),
        vertical=vertical,
        dtype=str(dtype),
    )
    result = yield from run_blocks(client, destripe_block, blocks, done, task)
    if len(record.finished()) < len(blocks):
        raise RuntimeError(f"{out}: blocks are missing after the run; run again with --resume.")
    finish_ome_zarr(out)
    record.complete()
    return result


def destripe_volume(
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: ModelSpec = None,
    options: InferenceOptions | None = None,
    *,
    client: Any,
    progress_bar: bool = False,
    **kwargs: Any,
) -> BlockRun:
    """Run :func:`destripe_volume_progress` to the end (same arguments, plus
    ``progress_bar``)."""
    return run_to_end(
        destripe_volume_progress(inp, out, model, options, client=client, **kwargs),
        desc="destripe blocks",
        progress_bar=progress_bar,
    )


__all__ = ["destripe_block", "destripe_volume", "destripe_volume_progress"]
