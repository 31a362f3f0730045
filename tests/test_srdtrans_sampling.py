"""Spatial redundancy sampling: inputs and targets are edge neighbours inside 2x2 cells."""

from __future__ import annotations

import pytest
import torch

from napari_restore.denoise.sampling import TRIPLETS, spatial_redundancy_sample


def coordinate_stack(t: int, h: int, w: int) -> torch.Tensor:
    """Every voxel holds its own flat index, so a sampled value says where it came from."""
    return torch.arange(t * h * w, dtype=torch.int64).view(t, h, w)


def decode(values: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, ...]:
    return values // (h * w), (values % (h * w)) // w, values % w


def test_targets_are_the_horizontal_and_vertical_neighbours_in_the_cell() -> None:
    t, h, w = 6, 20, 34
    gen = torch.Generator().manual_seed(0)
    s1, s2, s3 = spatial_redundancy_sample(coordinate_stack(t, h, w)[None], gen)
    assert s1.shape == s2.shape == s3.shape == (1, t, h // 2, w // 2)
    (t1, y1, x1), (t2, y2, x2), (t3, y3, x3) = (decode(s[0], h, w) for s in (s1, s2, s3))
    # Output cell (f, i, j) holds pixels of frame f and of cell (i, j) only.
    ff, ii, jj = torch.meshgrid(
        torch.arange(t), torch.arange(h // 2), torch.arange(w // 2), indexing="ij"
    )
    for tt, yy, xx in ((t1, y1, x1), (t2, y2, x2), (t3, y3, x3)):
        assert torch.equal(tt, ff)
        assert torch.equal(yy // 2, ii)
        assert torch.equal(xx // 2, jj)
    # One target differs from the input in x only, the other in y only: never the diagonal,
    # never the input pixel itself.
    horiz2 = (y2 == y1) & (x2 != x1)
    vert2 = (x2 == x1) & (y2 != y1)
    horiz3 = (y3 == y1) & (x3 != x1)
    vert3 = (x3 == x1) & (y3 != y1)
    assert bool(((horiz2 & vert3) | (vert2 & horiz3)).all())


def test_all_eight_triplets_occur_and_are_drawn_evenly() -> None:
    t, h, w = 4, 64, 64
    s1, s2, s3 = spatial_redundancy_sample(
        coordinate_stack(t, h, w), torch.Generator().manual_seed(3)
    )

    def cell_index(s: torch.Tensor) -> torch.Tensor:
        _, y, x = decode(s, h, w)
        return 2 * (y % 2) + (x % 2)

    codes = cell_index(s1) * 16 + cell_index(s2) * 4 + cell_index(s3)
    counts = {trip: int((codes == trip[0] * 16 + trip[1] * 4 + trip[2]).sum()) for trip in TRIPLETS}
    assert sum(counts.values()) == codes.numel()  # nothing outside the eight triplets
    expected = codes.numel() / 8
    assert all(abs(c - expected) < 0.15 * expected for c in counts.values()), counts


def test_each_frame_and_batch_item_is_sampled_independently() -> None:
    x = coordinate_stack(1, 32, 32).expand(3, 4, 32, 32) % (32 * 32)  # identical frames
    s1, _, _ = spatial_redundancy_sample(x, torch.Generator().manual_seed(0))
    flat = s1.reshape(12, -1)
    assert all(not torch.equal(flat[0], flat[i]) for i in range(1, 12))


def test_seeded_draws_repeat_and_float_values_are_kept_exactly() -> None:
    x = torch.randn(2, 5, 16, 18)
    a = spatial_redundancy_sample(x, torch.Generator().manual_seed(7))
    b = spatial_redundancy_sample(x, torch.Generator().manual_seed(7))
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)
    values = set(x.flatten().tolist())
    assert set(a[0].flatten().tolist()) <= values


def test_odd_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        spatial_redundancy_sample(torch.zeros(4, 9, 10))
