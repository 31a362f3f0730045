"""Settings of SRDTrans training (no torch here: the command line reads its defaults)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from napari_restore.engine.trainer import TrainConfig
from napari_restore.errors import RestoreInputError

TIME_MULTIPLE = 16  # SRDTrans patches are a multiple of this many frames long


@dataclass(frozen=True)
class DenoiseTrainConfig(TrainConfig):
    """Settings of SRDTrans training.

    Attributes
    ----------
    patch_t : int
        Frames per training patch, a multiple of 16 (default 128). Clamped to the largest
        multiple of 16 that the stack holds (at least 16; shorter stacks are mirrored in time).
        It is fixed in the network (its temporal position embedding) and used at inference.
    patch_xy : int
        Lateral size of the crop taken from the stack (even; default 128). The network trains
        on ``patch_xy / 2`` after spatial redundancy sampling. Clamped to the frame size.
    batch_size : int
        Patches per step (default 1, as in the paper).
    learning_rate : float
        Adam learning rate (default 1e-4).
    betas : tuple of float
        Adam betas (default (0.5, 0.999)).
    epochs : int or None
        Length of a run in epochs of ``patches_per_epoch`` patches (default 10). None: only the
        time budget limits it.
    minutes : float or None
        Time budget of a run in minutes (default None). Training stops at whichever of
        ``epochs`` and ``minutes`` comes first.
    patches_per_epoch : int
        Patches per epoch (default 6000, as in the paper).
    seed : int
        Seed of the initial weights and of every random draw (default 0).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda:N"`` or ``"mps"``.
    amp : bool
        bf16 mixed precision on CUDA (default True; no effect elsewhere).
    preview_every : int
        Steps between previews (a denoised crop of the middle frame); 0 disables them.
    model_kwargs : dict
        Extra :class:`~napari_restore.models.srdtrans.SRDTrans` arguments (e.g. smaller
        ``channels`` for tests); empty for the published architecture.
    """

    patch_t: int = 128
    patch_xy: int = 128
    batch_size: int = 1
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    epochs: int | None = 10
    minutes: float | None = None
    patches_per_epoch: int = 6000
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    preview_every: int = 100
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.patch_t < TIME_MULTIPLE or self.patch_t % TIME_MULTIPLE:
            raise RestoreInputError(f"patch_t={self.patch_t} must be a multiple of 16.")
        if self.patch_xy < 8 or self.patch_xy % 2:
            raise RestoreInputError(f"patch_xy={self.patch_xy} must be an even number >= 8.")
        if self.batch_size < 1 or self.patches_per_epoch < 1:
            raise RestoreInputError("batch_size and patches_per_epoch must be at least 1.")
        if not self.learning_rate > 0:
            raise RestoreInputError(f"learning_rate={self.learning_rate} must be positive.")
        if self.epochs is None and self.minutes is None:
            raise RestoreInputError("Give epochs or minutes (or both) to bound training.")
        if self.epochs is not None and self.epochs < 1:
            raise RestoreInputError(f"epochs={self.epochs} must be at least 1.")
        if self.minutes is not None and not self.minutes > 0:
            raise RestoreInputError(f"minutes={self.minutes} must be positive.")
        if "patch_t" in self.model_kwargs:
            raise RestoreInputError("Set patch_t in the config, not in model_kwargs.")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch."""
        return math.ceil(self.patches_per_epoch / self.batch_size)
