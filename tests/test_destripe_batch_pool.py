"""Training batches made in worker processes (the training script's ``--data-workers``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore.destripe.batch_pool import PooledBatches
from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer
from napari_restore.errors import RestoreInputError


def test_pooled_batches_are_the_same_for_any_number_of_workers():
    rng = np.random.default_rng(0)
    images = [rng.random((2, 70, 80)).astype(np.float32) * 100, rng.random((60, 60)) * 5]
    config = DestripeTrainConfig(
        patch_size=32, batch_size=3, base_channels=4, depth=2, val_patches=0, device="cpu"
    ).replace(bright_fraction=0.3, clean_fraction=0.2)
    streams = []
    for workers in (1, 2):
        pool = PooledBatches(images, config, first_step=7, workers=workers)
        try:
            streams.append([pool() for _ in range(4)])
        finally:
            pool.close()
    # Batch k is drawn from its own generator seeded by (seed, k): what the k-th step of a
    # trainer in the parent process would draw with that generator.
    local = DestripeTrainer(images, config)
    for k, (one, two) in enumerate(zip(*streams, strict=True)):
        expected = local._pairs(
            np.random.default_rng(np.random.SeedSequence([0, 7 + k])), local.sources, 3
        )
        for a, b, c in zip(one, two, expected, strict=True):
            assert a.shape == (3, 1, 32, 32) and a.dtype == np.float32
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
    assert not np.array_equal(streams[0][0][0], streams[0][1][0])  # a fresh batch every step


def test_pooled_batches_need_a_worker():
    config = DestripeTrainConfig(patch_size=32, base_channels=4, depth=2, device="cpu")
    with pytest.raises(RestoreInputError, match="at least one worker"):
        PooledBatches([np.ones((40, 40), np.float32)], config, first_step=0, workers=0)
