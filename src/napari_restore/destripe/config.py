"""Settings of destriping training (no torch here: the command line reads its defaults)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from napari_restore.destripe.data import check_mix, normalise_mix
from napari_restore.destripe.shadows import SHADOW_PROFILES
from napari_restore.engine.trainer import TrainConfig
from napari_restore.errors import RestoreInputError
from napari_restore.simulate.stripes import STRIPE_KINDS

#: Fine-tuning steps of per-image adaptation when it is switched on without a count (about a
#: minute on two CPU cores; :mod:`napari_restore.destripe.adapt`).
DEFAULT_ADAPT_STEPS = 40
#: Per-pixel loss terms of destriping training (:attr:`DestripeTrainConfig.pixel_loss`).
PIXEL_LOSSES = ("mae", "mse")


@dataclass(frozen=True)
class DestripeTrainConfig(TrainConfig):
    """Settings of a destriping training run.

    Parameters
    ----------
    steps : int
        Optimisation steps that :meth:`DestripeTrainer.train` runs up to (in total).
    learning_rate : float
        Adam learning rate.
    batch_size : int
        Patches per step.
    patch_size : int
        Edge of the square training patches (pixels).
    perceptual_weight : float
        lambda of the VGG-19 perceptual term; 0 (allowed always) trains with MAE alone.
    pixel_loss : {"mae", "mse"}
        The per-pixel term: the mean absolute error of the paper (default), or the mean
        squared error. Where the training pairs leave it ambiguous whether a faint horizontal
        dip is a stripe or content, the MAE's best answer is the median (no correction at all
        when a stripe is the less likely reading), the MSE's the mean (a partial correction):
        a network trained with the MAE and stripe-free patches learns to leave faint stripes
        alone (``benchmarks/destripe_response.py``).
    level_weight : float
        Weight of a term on the level of stripe-free pixels: per patch, the absolute
        difference between the output's and the target's mean over the pixels that the stripes
        left unchanged (all of a stripe-free patch), averaged over the patches of which at
        least 5 % are such pixels. The MAE already asks those pixels to stay;
        this term asks it of their mean, so that small changes of one sign, which cost the MAE
        little per pixel, cannot add up to a brightened or darkened image. 0 (the default)
        trains without it.
    stripe_mix : mapping of str to float
        Relative frequency of every stripe kind drawn for training pairs, e.g.
        ``{"regular": 1, "gaussian": 1, "tilted": 1}`` (the default); any registered kind
        (:func:`~napari_restore.simulate.stripes.stripe_kinds`) may appear. A sequence of three
        numbers is read as regular, gaussian, tilted.
    modes : tuple of str
        Degradation modes drawn from: ``"additive"`` and/or ``"multiplicative"``.
    clean_fraction : float
        Probability, in [0, 1), that a training patch is left without stripes (its target is
        itself). Such pairs teach the network to leave stripe-free content alone; without them
        it only ever sees images that need correcting and "corrects" clean structures too.
    bright_fraction : float
        Probability, in [0, 1), that a multiplicative stripe field brightens instead of
        attenuating (:func:`~napari_restore.destripe.data.random_degradation`), so that the
        network does not learn that every correction brightens.
    shadow_fraction : float
        Probability, in [0, 1), that a stripe field is one sheet's absorber shadows (sharp
        onsets that trail off, fanned and bent: :mod:`napari_restore.destripe.shadows`) instead
        of a kind of ``stripe_mix``.
    shadow_profiles : {"classic", "varied"}
        Cross-sections of those shadows: Gaussian or flat-topped (``"classic"``), or also
        generalised-Gaussian, lopsided and haloed ones (``"varied"``;
        :mod:`napari_restore.destripe.shadows`).
    base_channels, depth : int
        Width of the first level and number of down-sampling levels of the U-Net.
    reduction : int
        CBAM channel-attention reduction ratio.
    use_cbam, use_residual, residual_learning : bool
        Ablation switches of :class:`~napari_restore.models.rescbam_unet.ResCBAMUNet`.
    strip_context : bool
        Not in the paper: row and column means of the tile as context after every decoder
        level (:class:`~napari_restore.models.rescbam_unet.StripContext`). Fine-tuning a model
        without it (:meth:`~napari_restore.destripe.train.DestripeTrainer.resume` with
        ``strip_context=True``) grows the module, starting from the model's own output.
    seed : int
        Seed of the weights' initialisation, the training pairs and (separately) the validation
        set. The same seed on the CPU gives identical losses.
    val_patches : int
        Number of fixed validation patches (0: no validation).
    val_every : int
        Validate every this many steps (and at the end of each :meth:`~DestripeTrainer.train`).
    preview_every : int
        Attach a preview (input, output, target of validation patch 0) every this many steps.
    val_seconds : float
        Also validate (with a preview) once this many seconds have passed since the last
        validation, so slow steps (a CPU) still show progress every half minute or so; 0 =
        by steps only. Validation changes no weight, so the losses stay the same.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda:N"`` or ``"mps"``.
    amp : bool
        bf16 mixed precision on CUDA (ignored elsewhere).
    lr_schedule : {"constant", "cosine"}
        Constant rate, or cosine decay to 5 % of it at ``steps``.
    lr_start_step : int
        Step at which the cosine starts (at the full rate): 0 for a new run; a fine-tune that
        resumes a trained model at step ``n`` sets ``n``, so that its schedule is a warm restart
        over its own steps rather than the tail of the first run's.
    grad_clip : float or None
        Clip the gradient norm to this (None: no clipping).
    vgg_weights : str or None
        Path of the VGG-19 weights (default: the torch hub cache).
    download_vgg : bool
        Download the VGG-19 weights into the torch hub cache if they are missing.
    """

    steps: int = 2000
    learning_rate: float = 1e-3
    batch_size: int = 8
    patch_size: int = 128
    perceptual_weight: float = 0.0
    pixel_loss: str = "mae"
    level_weight: float = 0.0
    stripe_mix: Mapping[str, float] = field(
        default_factory=lambda: dict.fromkeys(STRIPE_KINDS, 1.0)
    )
    modes: tuple[str, ...] = ("additive", "multiplicative")
    clean_fraction: float = 0.0
    bright_fraction: float = 0.0
    shadow_fraction: float = 0.0
    shadow_profiles: str = "classic"
    base_channels: int = 16
    depth: int = 4
    reduction: int = 16
    use_cbam: bool = True
    use_residual: bool = True
    residual_learning: bool = True
    strip_context: bool = False
    seed: int = 0
    val_patches: int = 16
    val_every: int = 100
    preview_every: int = 50
    val_seconds: float = 30.0
    device: str = "auto"
    amp: bool = True
    lr_schedule: str = "constant"
    lr_start_step: int = 0
    grad_clip: float | None = 1.0
    vgg_weights: str | None = None
    download_vgg: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "stripe_mix", normalise_mix(self.stripe_mix))
        set_(self, "modes", tuple(str(m) for m in self.modes))
        if self.vgg_weights is not None:
            set_(self, "vgg_weights", os.fspath(self.vgg_weights))
        check_mix(self.stripe_mix, self.modes)
        for name in ("batch_size", "base_channels", "depth", "reduction", "val_every"):
            if int(getattr(self, name)) < 1:
                raise RestoreInputError(f"{name}={getattr(self, name)!r} must be >= 1.")
        for name in ("steps", "val_patches", "preview_every", "lr_start_step"):
            if int(getattr(self, name)) < 0:
                raise RestoreInputError(f"{name}={getattr(self, name)!r} must be >= 0.")
        # The bounds model files are held to (napari_restore.models.ARCHITECTURE_LIMITS): a
        # network that no file could describe is refused before it is allocated.
        for name, high in (("depth", 6), ("base_channels", 256), ("reduction", 256)):
            if int(getattr(self, name)) > high:
                raise RestoreInputError(f"{name}={getattr(self, name)!r} must be at most {high}.")
        if self.base_channels * 2**self.depth > 2048:
            raise RestoreInputError(
                f"base_channels * 2**depth = {self.base_channels * 2**self.depth}; at most 2048 "
                "(the widest level of the network)."
            )
        if self.patch_size < max(16, 2**self.depth):
            raise RestoreInputError(
                f"patch_size={self.patch_size} is too small: use at least "
                f"{max(16, 2**self.depth)} pixels (and a multiple of {2**self.depth})."
            )
        if not (math.isfinite(self.val_seconds) and self.val_seconds >= 0):
            raise RestoreInputError(f"val_seconds={self.val_seconds!r} must be >= 0.")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise RestoreInputError(f"learning_rate={self.learning_rate!r} must be > 0.")
        for name in ("perceptual_weight", "level_weight"):  # the loss terms' weights
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise RestoreInputError(f"{name}={value!r} must be a number >= 0.")
        for name, share in (
            ("clean_fraction", "training patches left without stripes"),
            ("bright_fraction", "multiplicative stripe fields that brighten"),
            ("shadow_fraction", "stripe fields drawn as absorber shadows"),
        ):
            value = getattr(self, name)
            if not (0.0 <= value < 1.0):
                raise RestoreInputError(
                    f"{name}={value!r} must be in [0, 1) (the share of {share})."
                )
        if self.pixel_loss not in PIXEL_LOSSES:
            raise RestoreInputError(
                f"pixel_loss={self.pixel_loss!r}: one of {', '.join(PIXEL_LOSSES)}."
            )
        if self.shadow_profiles not in SHADOW_PROFILES:
            raise RestoreInputError(
                f"shadow_profiles={self.shadow_profiles!r}: one of {', '.join(SHADOW_PROFILES)}."
            )
        if self.lr_schedule not in ("constant", "cosine"):
            raise RestoreInputError(f"lr_schedule={self.lr_schedule!r}: constant or cosine.")

    def architecture_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`ResCBAMUNet` for these settings."""
        return {
            "base_channels": self.base_channels,
            "depth": self.depth,
            "reduction": self.reduction,
            "use_cbam": self.use_cbam,
            "use_residual": self.use_residual,
            "residual_learning": self.residual_learning,
            **({"strip_context": True} if self.strip_context else {}),
        }
