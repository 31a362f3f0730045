"""Destriping images and volumes with a trained ResCBAM U-Net.

The image is normalised as in training (1st/99.9th percentiles of the *whole* image or stack,
never per tile: :mod:`napari_restore.destripe.data`), cut into overlapping tiles that are
blended without seams (:func:`~napari_restore.engine.tiling.tile_predict`), run in batches with
bf16 mixed precision on CUDA, mapped back to the input's intensities, clipped to the output dtype
and cast. Stacks ``(..., Y, X)`` are processed plane by plane, a group of planes at a time.
The network removes horizontal stripes (along x); vertical stripes are handled by transposing
each plane, and ``direction="auto"`` decides from the power spectrum
(:func:`detect_stripe_direction`).

CBAM's channel attention pools over a whole input, so the tile size is part of what the network
sees: a tile much larger than the training patches (128 px) dilutes those statistics (on sparse
objects on black, with mostly background, the network then over-corrects). The default tile is
therefore :data:`DEFAULT_TILE` (256 px) on every device, so results do not depend on the
hardware; a GPU gets its speed from large batches of such tiles, not from larger tiles.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from napari_restore.core.arrays import (
    as_array_like,
    cast_clipped,
    check_real_image,
    resolve_output_dtype,
)
from napari_restore.core.device import (
    autocast,
    free_memory_bytes,
    module_on,
    resolve_device,
)
from napari_restore.core.progress import Progress, ProgressGenerator, nested_progress, run_to_end
from napari_restore.destripe.adapt import (
    ADAPT_MAX_PLANES,
    check_adapt_steps,
    fine_tune_progress,
)
from napari_restore.destripe.data import (
    NORM_PERCENTILES,
    denormalise,
    intensity_range,
    normalisation_description,
    normalise,
    sample_plane_indices,
)
from napari_restore.destripe.spectral import finish_plane, stripe_evidence
from napari_restore.engine.model_files import load_model, model_paths
from napari_restore.engine.options import InferenceOptions
from napari_restore.engine.tiling import TileSettings, auto_tile_size, count_tiles, tile_predict
from napari_restore.errors import RestoreInputError

Direction = Literal["horizontal", "vertical", "auto"]
ModelSpec = str | os.PathLike[str] | nn.Module | tuple[nn.Module, dict[str, Any]] | None

BUILTIN_MODEL = "destripe_default"
# Planes are sent to the tiler in groups of at most this many voxels (64 MiB of float32).
GROUP_VOXELS = 16 * 1024 * 1024
# Estimated peak inference memory per input voxel and per base channel (float32 activations
# alive at once across the U-Net levels, with a margin); sizes tiles from free GPU memory.
BYTES_PER_VOXEL_PER_CHANNEL = 64
# Default tile edge on every device: twice the training patch. Built-in model on the held-out
# benchmark crops (mean PSNR dB, regular / Gaussian / tilted stripes): tiles of 512 px 32.3 /
# 33.9 / 33.1, 256 px 32.9 / 34.9 / 34.1 (192 px the same within 0.1 dB; 128 px worse on
# light-sheet planes). CPU speed, 2048² image, 1 thread, s/MP: 256 px 2.6, 384 px 2.5,
# 512 px 2.6, 768 px 3.5, 1024 px 4.2 (balanced tiles, overlap 1/8).
DEFAULT_TILE = 256
# Most tiles in one batch on a GPU (256 px tiles: about 4 GiB of activations for 64).
MAX_GPU_BATCH = 64


def builtin_model_path() -> Path:
    """Path of the shipped default model (``pretrained/destripe_default.safetensors``)."""
    root = resources.files("napari_restore") / "pretrained" / f"{BUILTIN_MODEL}.safetensors"
    return Path(str(root))


def load_destripe_model(
    model: ModelSpec = None, device: str | torch.device = "auto"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a destriping network for inference.

    Parameters
    ----------
    model : None, "builtin", path-like, torch.nn.Module or (module, metadata)
        ``None`` or ``"builtin"``: the default model shipped with the package; a path: a model
        file written by :meth:`DestripeTrainer.save <napari_restore.destripe.train.
        DestripeTrainer.save>` or ``napari-restore train-destripe``; a network (e.g. a
        trainer's ``model``) is used as it is, with the default normalisation.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    (torch.nn.Module, dict)
        The network in eval mode on the device, and its metadata.

    Raises
    ------
    RestoreInputError
        For a missing or unreadable file, a model of another task, or an unknown device.
    """
    dev = resolve_device(device)
    if isinstance(model, tuple):
        net, meta = model
        return module_on(net, dev).eval(), dict(meta)
    if isinstance(model, nn.Module):
        arch = model.architecture() if hasattr(model, "architecture") else {}
        meta = {
            "task": "destripe",
            "architecture": arch,
            "normalisation": normalisation_description(),
        }
        return module_on(model, dev).eval(), meta
    if model is None or (isinstance(model, str) and model == "builtin"):
        path = builtin_model_path()
        if not path.is_file():
            raise RestoreInputError(
                f"The built-in destriping model is not installed ({path} is missing). Train one "
                "with `napari-restore train-destripe CLEAN.tif ... -o MODEL` (or the training "
                "dock) and pass it with --model MODEL, or update napari-restore to a version "
                "that ships the default model."
            )
    else:
        path = model_paths(model)[0]
    return load_model(path, dev, task="destripe")


def _spectrum_plane(plane: np.ndarray, max_edge: int = 1024) -> np.ndarray:
    """Hann-windowed power spectrum of the central crop (at most ``max_edge`` square)."""
    h, w = plane.shape
    y0, x0 = max(0, (h - max_edge) // 2), max(0, (w - max_edge) // 2)
    crop = np.asarray(plane[y0 : y0 + max_edge, x0 : x0 + max_edge], dtype=np.float64)
    crop = crop - crop.mean()
    # The window keeps the image borders from adding a bright cross along both axes.
    window = np.outer(np.hanning(crop.shape[0]), np.hanning(crop.shape[1]))
    return np.abs(np.fft.fft2(crop * window)) ** 2


def stripe_direction_scores(image: Any, *, max_planes: int = 8) -> tuple[float, float]:
    """How strongly the image shows horizontal and vertical stripes, from its power spectrum.

    Stripes are long and straight, so they put sharp angular peaks into the 2D power spectrum:
    horizontal stripes (constant along x) near the ky axis, vertical ones near the kx axis,
    tilted ones at their angle. The spectrum (Hann-windowed, central crop of at most 1024 px,
    averaged over up to ``max_planes`` planes) is split into 12 log-spaced rings between 0.01
    and 0.45 cycles/pixel and 1-degree angular bins; in each ring the angular profile is divided
    by its median (so the image's own fall-off and broad anisotropy cancel), and the highest
    peak within 30 degrees of each axis is taken. A score is the sum over rings of the log peak.

    Returns
    -------
    (float, float)
        ``(horizontal, vertical)`` scores; the larger one wins.
    """
    shape = tuple(image.shape)
    lead = shape[:-2]
    total = None
    for flat in sample_plane_indices(lead, max_planes):
        index = tuple(int(i) for i in np.unravel_index(flat, lead)) if lead else ()
        p = _spectrum_plane(np.asarray(image[index]))
        total = p if total is None else total + p
    assert total is not None
    fy = np.fft.fftfreq(total.shape[0])[:, None]
    fx = np.fft.fftfreq(total.shape[1])[None, :]
    radius = np.hypot(fy, fx)
    # Angle of the frequency vector in [0, 180): 90 = ky axis (horizontal stripes).
    angle_bin = np.minimum((np.degrees(np.arctan2(fy, fx)) % 180).astype(np.int64), 179)
    centres = np.arange(180) + 0.5
    near_ky = np.abs(centres - 90) <= 30
    near_kx = (centres <= 30) | (centres >= 150)
    scores = np.zeros(2)
    edges = np.geomspace(0.01, 0.45, 13)
    for lo, hi in itertools.pairwise(edges):
        ring = (radius > lo) & (radius <= hi)
        counts = np.bincount(angle_bin[ring], minlength=180)
        if (counts > 0).mean() < 0.5:
            continue  # too few frequencies in this ring (small images) to resolve angles
        profile = np.bincount(angle_bin[ring], total[ring], minlength=180) / np.maximum(counts, 1)
        filled = counts > 0
        profile = np.where(filled, profile / max(np.median(profile[filled]), 1e-300), 0.0)
        peaks = np.array([profile[near_ky].max(), profile[near_kx].max()])
        scores += np.log(np.maximum(peaks, 1e-12))
    return float(scores[0]), float(scores[1])


def detect_stripe_direction(image: Any, *, max_planes: int = 8) -> str:
    """Guess whether stripes run horizontally (along x) or vertically (along y).

    Parameters
    ----------
    image : array_like
        ``(Y, X)`` or ``(..., Y, X)``; up to ``max_planes`` evenly spaced planes are read.
    max_planes : int
        Planes whose spectra are averaged.

    Returns
    -------
    str
        ``"horizontal"`` or ``"vertical"``, whichever has the higher score of
        :func:`stripe_direction_scores`. Stripes should be the dominant long straight structure;
        where they are faint, set the direction by hand.
    """
    image = as_array_like(image)
    check_real_image(image)
    horizontal, vertical = stripe_direction_scores(image, max_planes=max_planes)
    return "horizontal" if horizontal >= vertical else "vertical"


def _resolve_direction(image: Any, direction: str) -> str:
    if direction == "auto":
        return detect_stripe_direction(image)
    if direction not in ("horizontal", "vertical"):
        raise RestoreInputError(f"direction={direction!r}: horizontal, vertical or auto.")
    return direction


def tile_settings_for(
    net: nn.Module,
    device: torch.device,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
) -> TileSettings:
    """Tile size, overlap and batch size for a network on a device.

    Defaults: tiles of :data:`DEFAULT_TILE` (256) px on every device (smaller only if a GPU
    has not the memory for one); overlap an eighth of the tile (at least 32 px); batch 1 on the
    CPU, on CUDA as many tiles as fit in half the free memory (up to :data:`MAX_GPU_BATCH`).
    """
    multiple = int(getattr(net, "multiple", 16))
    arch = net.architecture() if hasattr(net, "architecture") else {}
    base = int(arch.get("kwargs", {}).get("base_channels", 16))
    bytes_per_voxel = BYTES_PER_VOXEL_PER_CHANNEL * base
    if tile is None:
        tile = auto_tile_size(
            device, bytes_per_voxel, multiple=multiple, default=DEFAULT_TILE, largest=DEFAULT_TILE
        )
    if tile < multiple:
        raise RestoreInputError(f"tile={tile} is smaller than the network's multiple {multiple}.")
    if overlap is None:
        overlap = max(32, tile // 8)
    if overlap < 0:
        raise RestoreInputError(f"overlap={overlap} must be >= 0.")
    if batch_size is None:
        free = free_memory_bytes(device)
        per_tile = bytes_per_voxel * tile * tile
        batch_size = 1 if free is None else int(max(1, min(MAX_GPU_BATCH, 0.5 * free // per_tile)))
    if batch_size < 1:
        raise RestoreInputError(f"batch_size={batch_size} must be >= 1.")
    return TileSettings((tile, tile), (overlap, overlap), batch_size, (multiple, multiple))


def _plane_indices(lead: tuple[int, ...]) -> list[tuple[int, ...]]:
    return list(np.ndindex(*lead)) if lead else [()]


@dataclass(frozen=True)
class _Job:
    """Everything a destriping run needs, resolved before the first plane is read."""

    net: nn.Module
    device: torch.device
    settings: TileSettings
    lo: float
    hi: float
    vertical: bool
    dtype: np.dtype
    amp: bool
    only_striped: bool = True
    cleanup: bool = True
    #: Stripe modes, kind weights, share of absorber shadows and their cross-sections the
    #: model was trained with (adaptation draws its stripes the same way, but never brightening
    #: fields).
    modes: tuple[str, ...] = ("multiplicative",)
    mix: Any = (1.0, 1.0, 1.0)
    shadow_fraction: float = 0.0
    shadow_profiles: str = "classic"


def _prepare(
    image: Any,
    model: ModelSpec,
    options: InferenceOptions,
    direction: str,
    *,
    only_striped: bool = True,
    cleanup: bool = True,
) -> _Job:
    """Check the input and the options, load the model and fit the tiles (no plane is read
    beyond the normalisation sample)."""
    check_real_image(image)
    dtype = resolve_output_dtype(options.output_dtype, image.dtype)
    net, meta = load_destripe_model(model, options.device)
    dev = next(net.parameters()).device
    percentiles = tuple(meta.get("normalisation", {}).get("percentiles", NORM_PERCENTILES))
    lo, hi = intensity_range(image, percentiles)
    tile = options.tile
    if tile is not None and not np.isscalar(tile):
        raise RestoreInputError(f"tile={tile!r}: destriping takes one tile edge (square tiles).")
    settings = tile_settings_for(
        net, dev, tile=tile, overlap=options.overlap, batch_size=options.batch_size
    )
    vertical = _resolve_direction(image, direction) == "vertical"
    trained = meta.get("training", {}).get("config", {})
    return _Job(
        net,
        dev,
        settings,
        lo,
        hi,
        vertical,
        dtype,
        options.amp,
        bool(only_striped),
        bool(cleanup),
        tuple(trained.get("modes", ("multiplicative",))),
        trained.get("stripe_mix", (1.0, 1.0, 1.0)),
        float(trained.get("shadow_fraction", 0.0)),
        str(trained.get("shadow_profiles", "classic")),
    )


def _adapted(image: Any, job: _Job, steps: int) -> ProgressGenerator[_Job]:
    """``job`` with its network fine-tuned on the image's own destriped planes
    (:mod:`napari_restore.destripe.adapt`); unchanged when no plane shows stripes."""
    lead = tuple(image.shape[:-2])
    indices = _plane_indices(lead)
    # Stripe evidence on the planes the normalisation samples (at most 16, evenly spaced; each
    # is read), then up to ADAPT_MAX_PLANES of the striped ones go through the pipeline.
    candidates = [indices[i] for i in sample_plane_indices(lead)]
    striped = []
    for i in candidates:
        plane = np.asarray(image[i])
        if not job.only_striped or stripe_evidence(plane.T if job.vertical else plane).striped:
            striped.append(i)
    # No plane shows stripes in its spectrum: the pipeline's second look at the network's
    # correction (spectral.finish_plane) may still find some; those planes are the targets.
    second_look = not striped and job.cleanup
    pool = candidates if second_look else striped
    chosen = [pool[k] for k in sample_plane_indices((len(pool),), ADAPT_MAX_PLANES)]
    targets: list[np.ndarray] = []

    def keep(index: tuple[int, ...], plane: np.ndarray) -> None:
        if second_look and np.array_equal(plane, np.asarray(image[index])):
            return  # left as it was: no stripes to learn from
        work = plane.T if job.vertical else plane
        targets.append(normalise(work, job.lo, job.hi).astype(np.float32))

    if chosen:
        estimate = dataclasses.replace(job, dtype=np.dtype(np.float32))
        yield from nested_progress(
            _destripe_planes(image, estimate, keep, chosen),
            done=0,
            units=len(chosen),
            total=len(chosen),
            stage="adapt: first pass",
            message=f"destriping {len(chosen)} plane(s) to adapt to",
        )
    if not targets:
        yield Progress(0, 0, stage="adapt", message="no stripes found: nothing to adapt to")
        return job
    tuned = yield from fine_tune_progress(
        job.net,
        targets,
        steps,
        modes=job.modes,
        mix=job.mix,
        shadow_fraction=job.shadow_fraction,
        shadow_profiles=job.shadow_profiles,
        amp=job.amp,
    )
    return dataclasses.replace(job, net=tuned)


def _unchanged(plane: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A plane left as it is (no stripe evidence), in the output dtype."""
    if plane.dtype == dtype:
        return plane.copy()
    return cast_clipped(plane.astype(np.float64), dtype)


def _destripe_planes(
    image: Any,
    job: _Job,
    sink: Callable[[tuple[int, ...], np.ndarray], None],
    plane_indices: Sequence[tuple[int, ...]] | None = None,
) -> ProgressGenerator[None]:
    """Run every plane of ``image`` (or those in ``plane_indices``) through the network and hand
    the results to ``sink``."""
    shape = tuple(image.shape)
    lead = shape[:-2]
    work = shape[-2:][::-1] if job.vertical else shape[-2:]
    per_plane = count_tiles(work, job.settings)
    indices = _plane_indices(lead) if plane_indices is None else list(plane_indices)
    if not indices:
        return None
    total = per_plane * len(indices)
    group = max(1, min(len(indices), GROUP_VOXELS // max(1, work[0] * work[1])))

    def predict(batch: torch.Tensor) -> torch.Tensor:
        with autocast(job.device, enabled=job.amp):
            return job.net(batch)

    done = 0
    for g0 in range(0, len(indices), group):
        chunk = indices[g0 : g0 + group]
        raw = np.stack([np.asarray(image[i]) for i in chunk])
        planes = raw.swapaxes(-1, -2) if job.vertical else raw
        wedges = [stripe_evidence(p) if job.only_striped or job.cleanup else None for p in planes]
        # With the clean-up every plane goes through the network: a plane without stripe
        # evidence may still get a stripe-shaped correction (spectral.finish_plane).
        run = [
            k
            for k, w in enumerate(wedges)
            if job.cleanup or not job.only_striped or (w is not None and w.striped)
        ]
        units = per_plane * len(chunk)
        y = planes.astype(np.float32)
        kept: set[int] = set()
        if run:
            x = normalise(planes[run], job.lo, job.hi)
            result = yield from nested_progress(
                tile_predict(predict, x, job.settings, device=job.device),
                done=done,
                units=per_plane * len(run),
                total=total,
                stage="tiles",
                message=f"planes {g0 + 1}-{g0 + len(chunk)} of {len(indices)}",
            )
            y[run] = denormalise(result, job.lo, job.hi)
            kept = set(run)
            if job.cleanup:
                for k in run:
                    finished = finish_plane(y[k], planes[k], wedges[k])
                    if finished is not None:
                        y[k] = finished
                    elif job.only_striped:
                        kept.discard(k)
            skipped = len(chunk) - len(kept)
            if skipped:
                yield Progress(
                    done + units,
                    total,
                    stage="tiles",
                    message=f"planes {g0 + 1}-{g0 + len(chunk)} of {len(indices)}: "
                    f"{skipped} without stripes left unchanged",
                )
        if job.vertical:
            y = y.swapaxes(-1, -2)
        for k, (i, plane) in enumerate(zip(chunk, y, strict=True)):
            sink(i, cast_clipped(plane, job.dtype) if k in kept else _unchanged(raw[k], job.dtype))
        done += units
    return None


def destripe_progress(
    image: Any,
    model: ModelSpec = None,
    options: InferenceOptions | None = None,
    *,
    direction: Direction = "horizontal",
    only_striped: bool = True,
    cleanup: bool = True,
    adapt_steps: int = 0,
    **option_fields: Any,
) -> ProgressGenerator[np.ndarray]:
    """Remove stripes from an image or stack (generator form of :func:`destripe`).

    Parameters
    ----------
    image : array_like
        ``(Y, X)`` or ``(..., Y, X)`` (numpy, dask, zarr); planes are read a group at a time.
    model : None, "builtin", path-like, torch.nn.Module or (module, metadata)
        The network (see :func:`load_destripe_model`); default the built-in model.
    options : InferenceOptions, optional
        Device, tiling, batch, output dtype, mixed precision
        (:class:`~napari_restore.engine.options.InferenceOptions`). Tiles default to
        :func:`tile_settings_for`; they are blended, so the result does not depend much on
        them; smaller tiles use less memory.
    direction : {"horizontal", "vertical", "auto"}
        Direction in which the stripes run; ``"auto"`` uses :func:`detect_stripe_direction`.
    only_striped : bool
        Leave planes without stripes unchanged (default): those whose spectrum shows no
        stripes and whose correction by the network is no stripe pattern either (with
        ``cleanup``; see :func:`napari_restore.destripe.spectral.finish_plane`). ``False``
        keeps the network's output on every plane.
    cleanup : bool
        After the network, keep only the stripe-shaped part of its correction (the band of
        the spectrum around the input's stripe angles, in the log domain), then scale the
        stripe wedge down to its neighbours' level on the rings where the input shows stripes
        (default; drops what the network changed at other orientations and removes fine long
        stripes it leaves), then give the plane's unstriped majority its input intensity back
        (the level step; see :mod:`napari_restore.destripe.spectral`).
    adapt_steps : int
        Adapt the network to this image first: a fine-tune of this many steps on the image's
        own destriped planes with fresh random stripes (:mod:`napari_restore.destripe.adapt`;
        0, the default, uses the network as it is; 40 steps take about a minute on two CPU
        cores). The model passed in is not changed.
    **option_fields
        Fields of ``options`` given one by one instead, e.g. ``device="cpu", tile=256``.

    Yields
    ------
    Progress
        With ``adapt_steps``: ``stage="adapt: first pass"``, then ``stage="adapt"`` after every
        fine-tuning step; then ``stage="tiles"`` after every batch of tiles.

    Returns
    -------
    numpy.ndarray
        The destriped image, same shape as ``image``.
    """
    options = InferenceOptions.of(options, **option_fields)
    image = as_array_like(image)
    adapt_steps = check_adapt_steps(adapt_steps)
    job = _prepare(image, model, options, direction, only_striped=only_striped, cleanup=cleanup)
    if adapt_steps:
        job = yield from _adapted(image, job, adapt_steps)
    out = np.empty(tuple(image.shape), dtype=job.dtype)

    def sink(index: tuple[int, ...], plane: np.ndarray) -> None:
        out[index] = plane

    yield from _destripe_planes(image, job, sink)
    return out


def destripe(
    image: Any,
    model: ModelSpec = None,
    options: InferenceOptions | None = None,
    *,
    direction: Direction = "horizontal",
    only_striped: bool = True,
    cleanup: bool = True,
    adapt_steps: int = 0,
    progress_bar: bool = False,
    **option_fields: Any,
) -> np.ndarray:
    """Remove stripe artifacts from an image or stack with a trained ResCBAM U-Net.

    Same parameters as :func:`destripe_progress`, plus ``progress_bar`` (a tqdm bar).

    Examples
    --------
    >>> clean = destripe(striped, "my_model.safetensors", device="cuda:0")  # doctest: +SKIP
    """
    gen = destripe_progress(
        image,
        model,
        options,
        direction=direction,
        only_striped=only_striped,
        cleanup=cleanup,
        adapt_steps=adapt_steps,
        **option_fields,
    )
    return run_to_end(gen, desc="destripe", progress_bar=progress_bar)


def destripe_file_progress(
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: ModelSpec = None,
    options: InferenceOptions | None = None,
    *,
    direction: Direction = "horizontal",
    only_striped: bool = True,
    cleanup: bool = True,
    adapt_steps: int = 0,
    overwrite: bool = False,
    **option_fields: Any,
) -> ProgressGenerator[Path]:
    """Destripe an image file into a new file, streaming plane by plane.

    The input is opened lazily (:func:`~napari_restore.io.open_image`: memory-mapped TIFF,
    zarr, OME-Zarr, .npy), so volumes larger than memory work. The normalisation statistic is
    estimated from a subsample (at most 16 evenly spaced planes, strided to at most 4 million
    values: :func:`~napari_restore.destripe.data.intensity_range`), the same estimate
    as for an in-memory array. The output (.tif, .zarr, .ome.zarr, .npy) is written through
    :class:`~napari_restore.io.PlaneWriter` and appears only when complete. A folder output
    (one TIFF per plane) that an interrupted run left unfinished is resumed: only its missing
    planes are computed.

    Parameters
    ----------
    inp, out : path-like
        Input and output paths.
    model, options, direction, only_striped, cleanup, adapt_steps, **option_fields
        As for :func:`destripe_progress` (adaptation reads at most 16 planes to find striped
        ones and destripes up to four of them before the output is created).
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    pathlib.Path
        The output path.
    """
    from napari_restore.io import PlaneWriter, check_output_paths, open_image, output_metadata

    options = InferenceOptions.of(options, **option_fields)
    inp, out = Path(inp), Path(out)
    adapt_steps = check_adapt_steps(adapt_steps)
    check_output_paths([out], [inp], overwrite=overwrite)
    image = open_image(inp)
    job = _prepare(image, model, options, direction, only_striped=only_striped, cleanup=cleanup)
    if adapt_steps:
        job = yield from _adapted(image, job, adapt_steps)
    meta = output_metadata(inp, out, len(image.shape))  # OME-Zarr: the input's axes, scale
    with PlaneWriter(out, tuple(image.shape), job.dtype, source=image, metadata=meta) as writer:
        yield from _destripe_planes(image, job, writer.__setitem__, writer.pending())
    return out


def destripe_file(
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: ModelSpec = None,
    options: InferenceOptions | None = None,
    *,
    progress_bar: bool = False,
    **kwargs: Any,
) -> Path:
    """Run :func:`destripe_file_progress` to the end (same arguments, plus ``progress_bar``)."""
    return run_to_end(
        destripe_file_progress(inp, out, model, options, **kwargs),
        desc="destripe",
        progress_bar=progress_bar,
    )


__all__: Sequence[str] = (
    "builtin_model_path",
    "destripe",
    "destripe_file",
    "destripe_file_progress",
    "destripe_progress",
    "detect_stripe_direction",
    "load_destripe_model",
    "stripe_direction_scores",
    "tile_settings_for",
)
