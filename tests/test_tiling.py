"""Overlapping tiles with blending: exactness, no seams, tile counts, out-of-memory back-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_restore.core.progress import run_to_end
from napari_restore.engine.tiling import (
    TileSettings,
    balanced_tile,
    blend_window,
    fit_settings,
    iter_tiles,
    tile_predict,
    tile_starts,
)


def run(predict, data, settings):
    return run_to_end(tile_predict(predict, data, settings), progress_bar=False)


@pytest.mark.parametrize(
    ("shape", "settings"),
    [
        ((2, 300, 517), TileSettings((128, 128), (32, 32), 3, (16, 16))),
        ((1, 40, 70, 90), TileSettings((16, 32, 32), (8, 8, 8), 2, (16, 1, 1))),
        ((1, 20, 20), TileSettings((64, 64), (16, 16), 2, (16, 16))),  # smaller than a tile
    ],
)
def test_pointwise_network_is_reproduced_exactly(rng, shape, settings):
    x = rng.random(shape).astype(np.float32)
    y = run(lambda b: 2 * b + 1, x, settings)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, 2 * x + 1, atol=2e-6)


def test_blending_has_no_seams_for_a_context_dependent_network(rng):
    """A network whose output depends on the whole tile (its mean) changes between tiles; the
    raised-cosine blend keeps the result continuous across tile borders."""
    x = np.ones((1, 200, 200), np.float32) + np.linspace(0, 1, 200, dtype=np.float32)[None, None]
    y = run(
        lambda b: b * 0 + b.mean(dim=(-1, -2), keepdim=True),
        x,
        TileSettings((64, 64), (32, 32), 4, (16, 16)),
    )[0]
    steps = np.abs(np.diff(y, axis=1))
    assert steps.max() < 3 * np.median(steps[steps > 0]) + 1e-4, "no jump at tile borders"


def test_window_is_positive_and_flat_in_the_middle():
    w = blend_window((64, 64), (16, 16))
    assert w.min() > 0 and w[20:44, 20:44].eq(1).all()


def test_tiles_cover_the_axis_and_are_balanced():
    assert tile_starts(100, 128, 16) == [0]
    starts = tile_starts(2048, 736, 64)
    assert starts[0] == 0 and starts[-1] == 2048 - 736 and len(starts) == 3
    assert balanced_tile(2048, 1024, 64, 16) == 736  # not three 1024-px tiles
    assert balanced_tile(1000, 1024, 64, 16) == 1024
    # 512-px tiles overlapping by 64 need three per 1024 px: three of 384 px suffice.
    fitted = fit_settings((1024, 1024), TileSettings((512, 512), (64, 64), 1, (16, 16)))
    assert fitted.tile == (384, 384)
    assert sum(1 for _ in iter_tiles(1, (1024, 1024), fitted)) == 9


def test_out_of_memory_halves_the_batch_then_the_tile(rng):
    calls = []

    def flaky(b):
        calls.append(tuple(b.shape))
        if b.shape[0] > 1 or b.shape[-1] > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return b

    x = rng.random((1, 200, 200)).astype(np.float32)
    y = run(flaky, x, TileSettings((128, 128), (32, 32), 4, (16, 16)))
    np.testing.assert_allclose(y, x, atol=1e-6)
    assert calls[0] == (4, 1, 128, 128) and (2, 1, 128, 128) in calls
    assert calls[-1][-1] == 64, "fell back to smaller tiles"


def test_other_errors_are_not_swallowed(rng):
    def broken(b):
        raise ValueError("bug in the network")

    with pytest.raises(ValueError, match="bug"):
        run(
            broken,
            rng.random((1, 32, 32)).astype(np.float32),
            TileSettings((32, 32), (8, 8), 1, (16, 16)),
        )
