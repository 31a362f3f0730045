"""Settings of SRDTrans training (no torch here: the command line reads its defaults)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from napari_restore.engine.trainer import TrainConfig
from napari_restore.errors import RestoreInputError

TIME_MULTIPLE = 16  # SRDTrans patches are a multiple of this many frames long

PRETRAINED_MODEL = "denoise_default"
# Defaults on a CPU (and MPS). Measured on the project's 2-core machine (docs/denoise.md): with
# ~1-15 s per step (idle to heavily shared) a few minutes are tens to ~150 steps, where small
# patches and a higher learning rate get much further than the paper's 128x128x128 patches at
# 1e-4 (one step of those took ~20 s: 3 steps in a minute, a flat output). patch_t 32 is also
# the pretrained network's.
CPU_DEFAULTS: dict[str, Any] = {
    "patch_t": 32,
    "patch_xy": 64,
    "batch_size": 1,
    "learning_rate": 5e-4,
}
# Learning rate on a CPU when training starts from a trained network (the pretrained one or a
# model file): a few dozen steps at 5e-4 undo much of what the start knew (measured on the
# held-out benchmark, docs/denoise.md); this rate adapts it to the stack without wrecking it.
CPU_FINETUNE_LR = 5e-5


def pretrained_model_path() -> Path | None:
    """The pretrained network shipped with the package
    (``pretrained/denoise_default.safetensors``), or None when this installation has none."""
    root = resources.files("napari_restore") / "pretrained" / f"{PRETRAINED_MODEL}.safetensors"
    path = Path(str(root))
    return path if path.is_file() else None


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
    preview_seconds : float
        Also preview when this many seconds have passed since the last preview (default 5;
        0 disables), so that slow CPU steps still show progress. A preview is postponed while
        it would take more than a quarter of the training time.
    init : str
        Where a new network starts: ``"scratch"`` (random weights seeded by ``seed``, the
        paper's), ``"pretrained"`` (the network shipped with napari-restore, see
        :func:`pretrained_model_path`) or the path of a model file. Training is the same
        self-supervised training on the stack either way; ``patch_t`` is then the network's.
    model_kwargs : dict
        Extra :class:`~napari_restore.models.srdtrans.SRDTrans` arguments (e.g. smaller
        ``channels`` for tests); empty for the published architecture.

    See Also
    --------
    DenoiseTrainConfig.for_device : the defaults that fit a device (the paper's on a GPU,
        measured CPU defaults that start from the pretrained network on a CPU).
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
    preview_seconds: float = 5.0
    init: str = "scratch"
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
        if self.preview_seconds < 0 or self.preview_every < 0:
            raise RestoreInputError("preview_every and preview_seconds must be >= 0.")
        if "patch_t" in self.model_kwargs:
            raise RestoreInputError("Set patch_t in the config, not in model_kwargs.")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))

    @classmethod
    def for_device(cls, device: Any = "auto", **overrides: Any) -> DenoiseTrainConfig:
        """The defaults that fit a device, with ``overrides`` on top.

        On a GPU: the paper's settings (the class defaults). On a CPU (or MPS), where a few
        minutes are a few dozen to a few hundred steps: :data:`CPU_DEFAULTS` (smaller patches,
        a higher learning rate) and, when the package ships it, a start from the pretrained
        network (``init="pretrained"``), fine-tuned at :data:`CPU_FINETUNE_LR`.

        Parameters
        ----------
        device : str or torch.device
            ``"auto"``, ``"cpu"``, ``"cuda:N"`` or ``"mps"``. Only its kind matters here;
            whether it exists is checked when training starts.
        **overrides
            Any fields to set explicitly.
        """
        spec = str(device).strip().lower()
        if spec == "auto":
            from napari_restore.core.device import resolve_device

            kind = resolve_device(spec).type
        else:
            kind = spec.split(":")[0]
        settings: dict[str, Any] = {}
        if kind != "cuda":
            settings.update(CPU_DEFAULTS)
            if pretrained_model_path() is not None:
                settings["init"] = "pretrained"
            if overrides.get("init", settings.get("init", "scratch")) != "scratch":
                settings["learning_rate"] = CPU_FINETUNE_LR
        settings.update(overrides)
        settings.setdefault("device", str(device))
        return cls(**settings)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch."""
        return math.ceil(self.patches_per_epoch / self.batch_size)
