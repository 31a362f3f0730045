"""Denoising workflows built from the trainer and inference: one model per stack of 4D/5D data,
and train-then-apply (what the command line and the dock's "Train & apply" run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_restore.core.progress import ProgressGenerator
from napari_restore.denoise.config import DenoiseTrainConfig
from napari_restore.denoise.infer import Flips, denoise_progress
from napari_restore.denoise.train import DenoiseTrainer
from napari_restore.engine.options import InferenceOptions
from napari_restore.engine.stacks import StackView, leading_items, resolve_stack_axis


def per_stack(image: Any, stack_axis: int) -> list[tuple[str, Any]]:
    """``(label, (T, Y, X) stack)`` for every stack of an image: one for 2D/3D data, one per
    index of the other leading axes (e.g. channels) for 4D/5D data, read lazily.

    Parameters
    ----------
    image : array_like
        2D to 5D data with Y and X last (numpy, memory-mapped TIFF, zarr).
    stack_axis : int
        The T or Z axis of 4D/5D data.

    Returns
    -------
    list of (str, array_like)
        Labels such as ``" [axis 1 = 0]"`` (empty for 2D/3D data) and the stacks.
    """
    shape = tuple(int(s) for s in image.shape)
    axis = resolve_stack_axis(len(shape), stack_axis)
    if len(shape) <= 3:
        return [("", image)]
    out = []
    for index in leading_items(shape, axis):
        where = ", ".join(f"axis {a} = {i}" for a, i in enumerate(index) if isinstance(i, int))
        out.append((f" [{where}]", StackView(image, index, axis)))
    return out


def per_stack_model_paths(save: Path | None, stacks: list[tuple[str, Any]]) -> list[Path | None]:
    """Where each stack's model is saved: ``save`` itself for one stack, else ``save`` with the
    stack's leading indices appended (``srd`` -> ``srd_0``, ``srd_1`` ...; ``srd_0_1`` in 5D)."""
    if save is None:
        return [None] * len(stacks)
    if len(stacks) == 1:
        return [save]
    base = save.with_suffix("") if save.suffix in (".safetensors", ".json") else save
    paths = []
    for _, view in stacks:
        tag = "_".join(str(i) for i in view.index if isinstance(i, int))
        paths.append(base.with_name(f"{base.name}_{tag}"))
    return paths


def stack_trainers(
    image: Any, config: DenoiseTrainConfig, *, stack_axis: int = 0, source: str = ""
) -> Iterator[tuple[str, DenoiseTrainer]]:
    """One new trainer per stack (each channel has its own structures and intensities), made
    when the caller gets to it, so a stack's data is read only while it trains.

    Yields
    ------
    (str, DenoiseTrainer)
        The stack's label (see :func:`per_stack`) and its trainer, whose ``source`` is
        ``source`` plus the label.
    """
    for label, stack in per_stack(image, stack_axis):
        yield label, DenoiseTrainer(stack, config, source=f"{source}{label}")


def train_then_apply(
    trainer: DenoiseTrainer,
    data: Any,
    options: InferenceOptions | None = None,
    *,
    stack_axis: int = 0,
    steps: int | None = None,
    minutes: float | None = None,
    flips: Flips = "auto",
) -> ProgressGenerator[np.ndarray]:
    """Train further, then denoise ``data`` with the trained network (one generator).

    Parameters
    ----------
    trainer : DenoiseTrainer
        A new or partly trained trainer (e.g. on one stack of ``data``).
    data : array_like
        What to denoise (see :func:`~napari_restore.denoise.infer.denoise_progress`).
    options : InferenceOptions, optional
        Inference settings.
    stack_axis : int
        T or Z axis of 4D/5D ``data``.
    steps, minutes : optional
        Training limits of :meth:`DenoiseTrainer.train`.
    flips : {"auto", 1, 2, 4}
        Flip-ensemble passes of the denoising (see
        :func:`~napari_restore.denoise.infer.denoise_progress`).

    Yields
    ------
    Progress
        ``stage="train"`` per step, then ``stage="denoise"`` per batch of tiles.

    Returns
    -------
    numpy.ndarray
        The denoised data.
    """
    yield from trainer.train(steps=steps, minutes=minutes)
    return (
        yield from denoise_progress(
            data, trainer.model, options, stack_axis=stack_axis, flips=flips
        )
    )
