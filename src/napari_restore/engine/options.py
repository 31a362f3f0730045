"""The settings every inference run takes, in one frozen object."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a trained network over an image (the same fields for every task).

    Attributes
    ----------
    device : str or torch.device
        ``"auto"`` (default: the first GPU, else the CPU), ``"cpu"``, ``"cuda:N"`` or ``"mps"``.
    tile : int or tuple of int, optional
        Tile edge (lateral); default: the task's, sized for the device.
    overlap : int or tuple of int, optional
        Overlap of neighbouring tiles; default: the task's.
    batch_size : int, optional
        Tiles per network call; default: 1 on the CPU, what fits on a GPU.
    output_dtype : "input" or dtype
        ``"input"`` (default: the input's dtype, rounded and clipped to its range) or e.g.
        ``"float32"``.
    amp : bool
        bf16 mixed precision on CUDA (default True; no effect elsewhere).
    """

    device: Any = "auto"
    tile: int | tuple[int, ...] | None = None
    overlap: int | tuple[int, ...] | None = None
    batch_size: int | None = None
    output_dtype: Any = "input"
    amp: bool = True

    @classmethod
    def of(cls, options: InferenceOptions | None = None, **fields: Any) -> InferenceOptions:
        """``options`` (default: the defaults) with some fields replaced.

        The public inference functions take their options either as one object or as keyword
        arguments of the same names (``destripe(image, device="cpu", tile=256)``).

        Raises
        ------
        TypeError
            For a keyword that is not a field.
        """
        base = options if options is not None else cls()
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unexpected inference option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(base, **fields) if fields else base
