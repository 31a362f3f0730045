"""Destriping training batches made in worker processes, for a GPU that outruns one CPU core
drawing stripes (about 7 ms per 256-px patch on one core)."""

from __future__ import annotations

import collections
import multiprocessing
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from napari_restore.destripe.config import DestripeTrainConfig
from napari_restore.destripe.train import DestripeTrainer
from napari_restore.errors import RestoreInputError


class PooledBatches:
    """Training batches ``(striped, clean)`` made in ``workers`` processes.

    Set an instance as :attr:`DestripeTrainer.batch_source`. Batch ``k`` (the step it feeds)
    is drawn from its own generator, seeded by ``(config.seed, k)``, so the stream is the same
    for any number of workers; at most ``2 * workers`` batches wait. Workers are spawned (not
    forked: the parent may hold a CUDA context), and each builds a CPU trainer over the same
    images and settings to draw from.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        The clean training images (as for :class:`DestripeTrainer`); copied to every worker.
    config : DestripeTrainConfig
        The run's settings (patch and batch size, stripe mix, seed...).
    first_step : int
        Index of the first batch: the trainer's step count when the pool starts.
    workers : int
        Worker processes (at least 1).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        config: DestripeTrainConfig,
        first_step: int,
        workers: int,
    ) -> None:
        if workers < 1:
            raise RestoreInputError(f"workers={workers}: use at least one worker process.")
        worker_config = config.replace(device="cpu", val_patches=0, perceptual_weight=0.0)
        context = multiprocessing.get_context("spawn")
        self._pool = context.Pool(workers, _worker_init, (list(images), worker_config))
        self._next = first_step
        self._depth = 2 * workers
        self._pending: collections.deque[Any] = collections.deque()

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch, each ``(batch, 1, patch, patch)`` float32."""
        while len(self._pending) < self._depth:
            self._pending.append(self._pool.apply_async(_worker_batch, (self._next,)))
            self._next += 1
        return self._pending.popleft().get()

    def close(self) -> None:
        """Stop the workers (batches still waiting are dropped)."""
        self._pool.terminate()
        self._pool.join()


_WORKER: DestripeTrainer | None = None


def _worker_init(images: list[np.ndarray], config: DestripeTrainConfig) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = DestripeTrainer(images, config)


def _worker_batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    assert _WORKER is not None
    cfg = _WORKER.config
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, step]))
    return _WORKER._pairs(rng, _WORKER.sources, cfg.batch_size)
