"""Spatial redundancy sampling: SRDTrans training pairs from a single noisy stack.

Every frame is cut into 2×2 cells with pixel indices ``0=(0,0), 1=(0,1), 2=(1,0), 3=(1,1)``.
For every cell of every frame one of eight triplets ``(a, b, c)`` is drawn: ``a`` becomes the
network input, ``b`` and ``c`` (its horizontal and its vertical neighbour inside the cell, in
either order, never the diagonal pixel) the two targets. With independent noise in neighbouring
pixels and a signal that is smooth at the pixel scale, the network can only learn the signal.
Temporal neighbours are never used as targets, so fast motion or low frame rates do no harm.

Everything is vectorised on the tensor's device: no loop over cells or frames.
"""

from __future__ import annotations

import torch

# (a, b, c): a is the input pixel, b and c its two edge neighbours inside the cell.
TRIPLETS: tuple[tuple[int, int, int], ...] = (
    (0, 1, 2),
    (0, 2, 1),
    (1, 0, 3),
    (1, 3, 0),
    (2, 0, 3),
    (2, 3, 0),
    (3, 2, 1),
    (3, 1, 2),
)


def spatial_redundancy_sample(
    x: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw the input sub-stack and the two target sub-stacks of SRDTrans training.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., t, h, w)`` of any dtype, ``h`` and ``w`` even.
    generator : torch.Generator, optional
        Random generator on ``x.device`` (for reproducible draws).

    Returns
    -------
    (torch.Tensor, torch.Tensor, torch.Tensor)
        ``S1`` (input pixels ``a``), ``S2`` and ``S3`` (targets ``b`` and ``c``), each
        ``(..., t, h // 2, w // 2)``, on ``x.device`` with ``x.dtype``.
    """
    *lead, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"spatial redundancy sampling needs even h and w, got {h}x{w}.")
    # (..., h/2, 2, w/2, 2) -> (..., h/2, w/2, 4) with the last axis the cell index 2*dy + dx.
    cells = x.reshape(*lead, h // 2, 2, w // 2, 2).transpose(-3, -2)
    cells = cells.reshape(*lead, h // 2, w // 2, 4)
    table = torch.tensor(TRIPLETS, dtype=torch.long, device=x.device)  # (8, 3)
    choice = torch.randint(0, len(TRIPLETS), cells.shape[:-1], generator=generator, device=x.device)
    picks = table[choice]  # (..., h/2, w/2, 3)
    s1, s2, s3 = torch.gather(cells, -1, picks).unbind(-1)
    return s1, s2, s3
