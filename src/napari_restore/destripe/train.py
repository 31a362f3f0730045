"""Training the destriping network on clean images with synthetic stripes drawn on the fly.

Every training pair is made when it is needed (infinite data, Wei et al. 2022): a random patch
of a clean image, flipped at random (flips along x and y keep stripes horizontal; 90 degree
rotations would not, so there are none), given a random brightness gain, and degraded by fresh
random stripes (:mod:`napari_restore.destripe.data`). The loss is

    L = MAE(y_hat, y) + lambda * mean((phi(y_hat) - phi(y))**2) [+ w * level error]

(or the MSE in place of the MAE, ``pixel_loss="mse"``)

with phi the frozen VGG-19 relu4_3 features (:mod:`napari_restore.models.vgg`); lambda = 0
trains with the MAE alone and needs no VGG weights. The optional level term (``level_weight``
w, :func:`stripe_free_level_error`) asks the mean of the pixels that the stripes left unchanged
to stay.

:meth:`DestripeTrainer.train` is a generator: it yields a
:class:`~napari_restore.core.progress.Progress` after every step and returns a summary. The
caller stops training by closing the generator (napari's worker quit, Ctrl-C in the CLI); the
trainer keeps its weights, step count and history, and ``train()`` continues from there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from napari_restore.core.arrays import check_real_image
from napari_restore.core.device import autocast, describe_device, resolve_device
from napari_restore.core.progress import Progress
from napari_restore.destripe.config import DestripeTrainConfig
from napari_restore.destripe.data import (
    GAIN_RANGE,
    check_mix,
    intensity_range,
    normalisation_description,
    normalise,
    striped_batch,
)
from napari_restore.engine.model_files import load_model_file, load_weights
from napari_restore.engine.trainer import Trainer
from napari_restore.errors import RestoreInputError
from napari_restore.models.rescbam_unet import ResCBAMUNet

# Patches whose 1st-to-99th percentile spread (normalised units) is below this are redrawn up to
# _PATCH_TRIES times: pure background teaches little about structure under stripes.
_MIN_PATCH_SPREAD = 0.05
_PATCH_TRIES = 4
# Floor of the cosine learning-rate schedule, as a fraction of the initial rate.
_COSINE_FLOOR = 0.05
VAL_DATA_RANGE = 1.0  # PSNR/SSIM of validation patches in normalised units (robust range = 1)


@dataclass
class _Source:
    name: str
    shape: tuple[int, ...]
    dtype: str
    lo: float
    hi: float
    planes: np.ndarray  # float32 (N, Y, X) normalised, reflect-padded to at least one patch


def _prepare_sources(
    images: Sequence[Any], names: Sequence[str] | None, patch: int, what: str
) -> list[_Source]:
    if isinstance(images, np.ndarray) or hasattr(images, "shape"):
        images = [images]
    if len(images) == 0:
        raise RestoreInputError(f"No {what} images were given.")
    if names is not None and len(names) != len(images):
        raise RestoreInputError(f"{len(names)} names for {len(images)} {what} images.")
    sources = []
    for i, image in enumerate(images):
        name = names[i] if names is not None else f"{what} image {i}"
        if not hasattr(image, "shape") or not hasattr(image, "dtype"):
            image = np.asarray(image)
        dtype = np.dtype(image.dtype)
        # Real intensities only: a boolean mask would train on 0/1 "images", NaN spreads.
        check_real_image(image, name=name)
        lo, hi = intensity_range(image)
        planes = normalise(np.asarray(image), lo, hi).reshape(-1, *image.shape[-2:])
        pad_y, pad_x = max(0, patch - planes.shape[1]), max(0, patch - planes.shape[2])
        if pad_y or pad_x:
            # Reflect (numpy repeats the reflection when the pad exceeds the image).
            planes = np.pad(planes, ((0, 0), (0, pad_y), (0, pad_x)), mode="reflect")
        sources.append(_Source(name, tuple(image.shape), dtype.name, lo, hi, planes))
    return sources


#: Pixels whose striped value is within this fraction of the patch's range of the clean value
#: count as left unchanged by the stripes (float32 round-off and the clipping of [0, 1] data).
_UNCHANGED_TOL = 1e-4
#: Patches with fewer unchanged pixels than this share add nothing to the level term.
_MIN_UNCHANGED = 0.05


def stripe_free_level_error(
    pred: torch.Tensor, striped: torch.Tensor, clean: torch.Tensor
) -> torch.Tensor | None:
    """Mean absolute error of the level of the pixels that the stripes left unchanged.

    Parameters
    ----------
    pred, striped, clean : torch.Tensor
        ``(B, 1, H, W)`` output of the network, its input and the target.

    Returns
    -------
    torch.Tensor or None
        The mean over the patches with at least 5 % unchanged pixels of
        ``|mean_F(pred) - mean_F(clean)|``, ``F`` those pixels (the whole patch when it has no
        stripes); None when no patch has enough of them. The mean is over those patches, not
        the batch, so a batch with few of them weighs each more (about half of the patches
        of the built-in model's sampler qualify).
    """
    pred, striped, clean = pred.float(), striped.float(), clean.float()
    span = clean.amax(dim=(1, 2, 3), keepdim=True) - clean.amin(dim=(1, 2, 3), keepdim=True)
    free = ((striped - clean).abs() <= _UNCHANGED_TOL * span.clamp_min(1e-6)).float()
    count = free.sum(dim=(1, 2, 3))
    keep = count >= _MIN_UNCHANGED * free[0].numel()
    if not bool(keep.any()):
        return None
    diff = ((pred - clean) * free).sum(dim=(1, 2, 3)) / count.clamp_min(1.0)
    return diff[keep].abs().mean()


class DestripeTrainer(Trainer):
    """Trains a :class:`~napari_restore.models.rescbam_unet.ResCBAMUNet` to remove stripes.

    Parameters
    ----------
    images : sequence of array_like
        Clean images: 2D ``(Y, X)`` or stacks ``(..., Y, X)`` whose 2D planes are used. Each is
        normalised by its own robust range (1st to 99.9th percentile over the whole image or
        stack: :func:`~napari_restore.destripe.data.intensity_range`), exactly as
        inference normalises the image it corrects. Images are read into memory.
    config : DestripeTrainConfig, optional
        Settings (defaults: ``DestripeTrainConfig()``).
    names : sequence of str, optional
        Names of the images, stored in the model's metadata.
    val_images : sequence of array_like, optional
        Images for the validation patches; default: the training images (fixed patches drawn
        with their own random generator, so they are in-distribution but not held out).

    Attributes
    ----------
    model : ResCBAMUNet
        The network (on :attr:`device`).
    step : int
        Optimisation steps done.
    history : list of dict
        One entry per step: ``step``, ``loss``, ``mae``, ``perceptual``, ``lr``, ``seconds``,
        plus ``val_psnr``, ``val_ssim`` on validation steps.
    val_input_psnr, val_input_ssim : float
        PSNR/SSIM of the striped validation patches themselves (the baseline).
    batch_source : callable or None
        Where training steps take their ``(striped, clean)`` batches, each ``(N, 1, P, P)``
        float32; None (default) draws them here from the trainer's own random stream. A GPU
        outruns one CPU core making stripes: the training script sets this to batches made in
        worker processes.
    """

    task = "destripe"

    def __init__(
        self,
        images: Sequence[Any],
        config: DestripeTrainConfig | None = None,
        *,
        names: Sequence[str] | None = None,
        val_images: Sequence[Any] | None = None,
    ) -> None:
        super().__init__()
        self.config = config = config or DestripeTrainConfig()
        self.device = resolve_device(config.device)
        self._mix, self._modes = check_mix(config.stripe_mix, config.modes)
        self.perceptual: torch.nn.Module | None = None
        if config.perceptual_weight > 0:
            from napari_restore.models.vgg import PerceptualLoss, load_vgg19_features

            vgg = load_vgg19_features(config.vgg_weights, download=config.download_vgg)
            self.perceptual = PerceptualLoss(vgg).to(self.device)
        self.sources = _prepare_sources(images, names, config.patch_size, "training")
        # Separate generators: the validation set does not depend on the training stream.
        root = np.random.SeedSequence(config.seed)
        train_seq, val_seq = root.spawn(2)
        self._rng = np.random.default_rng(train_seq)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = ResCBAMUNet(**config.architecture_kwargs())
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.batch_source: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None
        val_sources = (
            self.sources
            if val_images is None
            else _prepare_sources(val_images, None, config.patch_size, "validation")
        )
        self._val_from_training = val_images is None
        self._make_validation_set(val_sources, np.random.default_rng(val_seq))

    # -- data ---------------------------------------------------------------------------------

    def _patch(self, rng: np.random.Generator, sources: list[_Source]) -> np.ndarray:
        p = self.config.patch_size
        src = sources[int(rng.integers(len(sources)))]
        planes = src.planes
        for _ in range(_PATCH_TRIES):
            z = int(rng.integers(planes.shape[0]))
            y0 = int(rng.integers(planes.shape[1] - p + 1))
            x0 = int(rng.integers(planes.shape[2] - p + 1))
            patch = planes[z, y0 : y0 + p, x0 : x0 + p]
            lo, hi = np.percentile(patch, (1, 99))
            if hi - lo >= _MIN_PATCH_SPREAD:
                break
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch[::-1, :]
        gain = math.exp(rng.uniform(math.log(GAIN_RANGE[0]), math.log(GAIN_RANGE[1])))
        return np.ascontiguousarray(patch * np.float32(gain), dtype=np.float32)

    def _pairs(
        self, rng: np.random.Generator, sources: list[_Source], n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        clean = np.stack([self._patch(rng, sources) for _ in range(n)])
        cfg = self.config
        striped = striped_batch(
            rng,
            clean,
            self._mix,
            self._modes,
            cfg.clean_fraction,
            cfg.bright_fraction,
            cfg.shadow_fraction,
            cfg.shadow_profiles,
        )
        return striped[:, None], clean[:, None]

    def _make_validation_set(self, sources: list[_Source], rng: np.random.Generator) -> None:
        from napari_restore.metrics import compute_metrics

        n = self.config.val_patches
        if n == 0:
            self._val_x = self._val_y = None
            self.val_input_psnr = self.val_input_ssim = float("nan")
            return
        self._val_x, self._val_y = self._pairs(rng, sources, n)
        m = compute_metrics(self._val_x[:, 0], self._val_y[:, 0], data_range=VAL_DATA_RANGE)
        self.val_input_psnr, self.val_input_ssim = m.psnr, m.ssim

    # -- training -----------------------------------------------------------------------------

    def _learning_rate(self, step: int) -> float:
        cfg = self.config
        start = cfg.lr_start_step
        if cfg.lr_schedule == "constant" or cfg.steps <= start:
            return cfg.learning_rate
        t = min(1.0, max(0, step - start) / (cfg.steps - start))
        return cfg.learning_rate * (
            _COSINE_FLOOR + (1 - _COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * t))
        )

    def _train_step(self) -> dict[str, float]:
        cfg = self.config
        started = time.perf_counter()
        if self.batch_source is not None:
            x, y = self.batch_source()
        else:
            x, y = self._pairs(self._rng, self.sources, cfg.batch_size)
        xt = torch.from_numpy(x).to(self.device)
        yt = torch.from_numpy(y).to(self.device)
        lr = self._learning_rate(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        with autocast(self.device, enabled=cfg.amp):
            pred = self.model(xt)
            perceptual = (
                self.perceptual(pred, yt)
                if self.perceptual is not None
                else torch.zeros((), device=self.device)
            )
        pred = pred.float()
        error = pred - yt
        mae = error.abs().mean()  # reported whichever pixel term the loss uses
        pixel = mae if cfg.pixel_loss == "mae" else error.square().mean()
        loss = pixel + cfg.perceptual_weight * perceptual.float()
        level = stripe_free_level_error(pred, xt, yt) if cfg.level_weight else None
        if level is not None:
            loss = loss + cfg.level_weight * level
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        return {
            "step": self.step,
            "loss": float(loss.detach()),
            "mae": float(mae.detach()),
            "perceptual": float(perceptual.detach()),
            "level": float(level.detach()) if level is not None else 0.0,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }

    def _predict(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        out = []
        bs = max(1, 2 * self.config.batch_size)
        with torch.inference_mode(), autocast(self.device, enabled=self.config.amp):
            for i in range(0, len(x), bs):
                xt = torch.from_numpy(x[i : i + bs]).to(self.device)
                out.append(self.model(xt).float().cpu().numpy())
        return np.concatenate(out)

    def evaluate(self, record: bool = False) -> dict[str, float]:
        """PSNR and SSIM of the network's output on the fixed validation patches.

        Parameters
        ----------
        record : bool
            Also store the metrics in the last :attr:`history` entry (e.g. before saving a
            model whose training was stopped between validations).

        Returns
        -------
        dict
            ``val_psnr``, ``val_ssim`` and, for reference, ``val_input_psnr``,
            ``val_input_ssim`` of the striped patches (data range 1 = the robust range of the
            source image). Empty when ``val_patches`` is 0.
        """
        from napari_restore.metrics import compute_metrics

        if self._val_x is None:
            return {}
        out = self._predict(self._val_x)
        m = compute_metrics(out[:, 0], self._val_y[:, 0], data_range=VAL_DATA_RANGE)
        metrics = {
            "val_psnr": m.psnr,
            "val_ssim": m.ssim,
            "val_input_psnr": self.val_input_psnr,
            "val_input_ssim": self.val_input_ssim,
        }
        if record and self.history:
            self.history[-1].update(metrics)
        return metrics

    def preview(self) -> dict[str, np.ndarray] | None:
        """Input, output and target of validation patch 0 (float32 2D, normalised units)."""
        if self._val_x is None:
            return None
        out = self._predict(self._val_x[:1])
        return {
            "input": self._val_x[0, 0].copy(),
            "output": out[0, 0].astype(np.float32),
            "target": self._val_y[0, 0].copy(),
        }

    def _limits(
        self, steps: int | None, minutes: float | None
    ) -> tuple[int | None, float | None, str]:
        self._validated_at = time.monotonic()  # validation by time counts from this call
        # Default: up to config.steps steps in all.
        target = self.step + int(steps) if steps is not None else max(self.step, self.config.steps)
        return target, minutes, "steps"

    def _step(self, stop_at: int | None) -> Progress:
        """One step; validation every ``val_every`` steps, every ``val_seconds`` and at the end
        of the call, a preview every ``preview_every`` steps and with a validation by time
        (the reports of :meth:`train`: ``losses`` =
        ``{"total", "mae", "perceptual", "level"}``, ``metrics`` = ``{"val_psnr", "val_ssim",
        "val_input_psnr", "val_input_ssim"}`` on validation steps, ``preview`` = ``{"input",
        "output", "target"}`` of validation patch 0)."""
        cfg = self.config
        record = self._train_step()
        metrics: dict[str, float] = {}
        due = bool(cfg.val_seconds) and time.monotonic() - self._validated_at >= cfg.val_seconds
        if self._val_x is not None and (
            self.step % cfg.val_every == 0 or self.step == stop_at or due
        ):
            metrics = self.evaluate()
            record.update(metrics)
            self._validated_at = time.monotonic()
        preview = None
        if cfg.preview_every and (
            self.step % cfg.preview_every == 0 or self.step == stop_at or (due and metrics)
        ):
            preview = self.preview()
        self.history.append(record)
        return Progress(
            self.step,
            stop_at or 0,
            stage="train",
            losses={
                "total": record["loss"],
                "mae": record["mae"],
                "perceptual": record["perceptual"],
                "level": record["level"],
            },
            metrics=metrics,
            preview=preview,
        )

    def _finish(self) -> None:
        # Stopped by time or stop() between validations: the model file gets fresh metrics.
        if self._val_x is not None and self.history and "val_psnr" not in self.history[-1]:
            self.evaluate(record=True)

    def _last_metrics(self) -> dict[str, float]:
        last = self.history[-1] if self.history else {}
        return {k: v for k, v in last.items() if k.startswith("val_")}

    # -- files --------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """Everything the model file records about this model (see :meth:`save`)."""
        cfg = self.config
        val_history = [h for h in self.history if "val_psnr" in h]
        last_val = val_history[-1] if val_history else {}
        return {
            "task": "destripe",
            "architecture": self.model.architecture(),
            "steps": self.step,
            "training": {
                "config": cfg.to_dict(),
                "perceptual_weight": cfg.perceptual_weight,
                "loss": ("MAE" if cfg.pixel_loss == "mae" else "MSE")
                + " + perceptual_weight * mean((phi(y_hat) - phi(y))^2)"
                + (
                    " + level_weight * mean over patches of |mean_F(y_hat) - mean_F(y)|, "
                    "F = the pixels the stripes left unchanged"
                    if cfg.level_weight
                    else ""
                )
                + ", phi = VGG-19 relu4_3 (features.24)",
                "optimizer": "Adam",
                "augmentation": "random patches, flips along x and y, brightness gain "
                f"{GAIN_RANGE[0]}-{GAIN_RANGE[1]}, fresh random stripes per patch",
                "device": describe_device(self.device),
            },
            "data": [
                {
                    "name": s.name,
                    "shape": list(s.shape),
                    "dtype": s.dtype,
                    "intensity_range": [s.lo, s.hi],
                }
                for s in self.sources
            ],
            "normalisation": normalisation_description(),
            "validation": {
                "patches": cfg.val_patches,
                "patch_size": cfg.patch_size,
                "held_out": not self._val_from_training,
                "data_range": VAL_DATA_RANGE,
                "input_psnr": self.val_input_psnr,
                "input_ssim": self.val_input_ssim,
                "psnr": last_val.get("val_psnr"),
                "ssim": last_val.get("val_ssim"),
                "at_step": last_val.get("step"),
            },
            "validation_history": [
                {k: h[k] for k in ("step", "loss", "mae", "perceptual", "val_psnr", "val_ssim")}
                for h in val_history
            ],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike[str],
        data: Sequence[Any],
        *,
        names: Sequence[str] | None = None,
        val_images: Sequence[Any] | None = None,
        **config_overrides: Any,
    ) -> DestripeTrainer:
        """Continue training a saved model.

        The settings come from the model file, changed by ``config_overrides`` (e.g.
        ``steps=5000, device="cuda:0"``); the network's architecture must stay the same, except
        that ``strip_context=True`` may grow a model without it (the new module starts as the
        identity). The
        weights, step count and validation history are restored. The optimizer state is not
        saved in model files, so Adam starts afresh (its moment estimates rebuild within a few
        hundred steps), and the stream of training pairs is reseeded from ``(seed, step)``.

        Parameters
        ----------
        path : path-like
            A destripe model file written by :meth:`save`.
        data : sequence of array_like
            Clean training images (as for the constructor).
        names, val_images
            As for the constructor.
        **config_overrides
            Fields of :class:`DestripeTrainConfig` to change.

        Returns
        -------
        DestripeTrainer
        """
        state, meta = load_model_file(path, task="destripe")
        saved = meta.get("training", {}).get("config")
        if saved is None:
            raise RestoreInputError(f"{path} holds no training settings; it cannot be resumed.")
        config = DestripeTrainConfig.from_dict(saved, **config_overrides)
        arch = meta["architecture"]
        wanted = config.architecture_kwargs()
        saved_kwargs = dict(arch.get("kwargs", {}))
        # The one change allowed: growing the strip context (zero-initialised, so the grown
        # network starts from the saved one's output).
        grow = wanted.get("strip_context", False) and not saved_kwargs.get("strip_context", False)
        if grow:
            saved_kwargs["strip_context"] = True
        if arch.get("name") != "ResCBAMUNet" or saved_kwargs != wanted:
            raise RestoreInputError(
                f"{path} holds a network {arch}; the settings ask for a different one "
                f"{wanted}. Do not change the network when resuming (adding strip_context "
                "is the one change allowed)."
            )
        trainer = cls(data, config, names=names, val_images=val_images)
        if grow:
            grown = trainer.model.state_dict()
            state = {**state, **{k: v for k, v in grown.items() if k.startswith("contexts.")}}
        load_weights(trainer.model, state, path)
        trainer.step = int(meta.get("steps", 0))
        trainer.history = [dict(h) for h in meta.get("validation_history", [])]
        seq = np.random.SeedSequence([config.seed, trainer.step])
        trainer._rng = np.random.default_rng(seq)
        return trainer
