"""Self-supervised SRDTrans training on one noisy stack, as a stoppable, resumable generator.

Data path of one step (nothing is materialised beyond the current batch):

1. random 3D crops ``(n_t, patch_xy, patch_xy)`` are read from the stack (a memory-mapped TIFF or
   zarr array is read only there) and converted to float32 minus the stack mean; no other
   normalisation, so the network works in the units of the data;
2. on the device: one of the 8 dihedral transforms of the xy plane per crop, then spatial
   redundancy sampling (:mod:`~napari_restore.denoise.sampling`) into the input ``S1`` and
   the targets ``S2``, ``S3`` of ``(patch_t, patch_xy / 2, patch_xy / 2)``;
3. loss ``0.5·(0.5·L1 + 0.5·MSE)(f(S1), S2) + 0.5·(0.5·L1 + 0.5·MSE)(f(S1), S3)``, Adam
   (lr 1e-4, betas (0.5, 0.999)), bf16 autocast on CUDA.

Patch sizes: ``patch_xy`` is the lateral size of the crop taken from the stack, so the network
trains on ``patch_xy / 2`` (sampling halves each axis) but denoises the full-resolution stack.
``patch_t`` (a multiple of 16) is clamped to the largest multiple of 16 the stack holds; a stack
of fewer than 16 frames is used whole and extended to 16 frames by mirror reflection in time.
The reflection is applied *after* sampling, so the copies repeat the input pixels only and never
show the network a target pixel.

Reproducibility: every random choice of step ``k`` (crops, flips, sampling, dropout) is drawn
from generators seeded by ``(seed, k)``, so the same seed gives the same losses on the CPU, and
a run that is stopped and continued (even from a saved file) is the same as an uninterrupted
one.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_restore._version import __version__
from napari_restore.core.device import autocast, describe_device, resolve_device
from napari_restore.core.progress import Progress, run_to_end
from napari_restore.denoise.config import TIME_MULTIPLE, DenoiseTrainConfig
from napari_restore.denoise.infer import (
    denoise_centered,
    inference_settings,
)
from napari_restore.denoise.sampling import spatial_redundancy_sample
from napari_restore.engine.model_files import OPTIMIZER_PREFIX, load_model_file
from napari_restore.engine.stacks import as_stack, reflect_index, stack_mean
from napari_restore.engine.trainer import Trainer
from napari_restore.errors import RestoreInputError
from napari_restore.models import build_model
from napari_restore.models.srdtrans import SRDTrans

_PREVIEW_XY = 128


def effective_patch(shape: tuple[int, ...], config: DenoiseTrainConfig) -> tuple[int, int]:
    """``(patch_t, patch_xy)`` used on a ``(T, Y, X)`` stack: the config's, clamped to the data.

    ``patch_t`` becomes the largest multiple of 16 not above ``T`` (at least 16); ``patch_xy``
    the largest even number not above ``min(Y, X)``.
    """
    t, y, x = shape
    pt = min(config.patch_t, max(TIME_MULTIPLE, t // TIME_MULTIPLE * TIME_MULTIPLE))
    pxy = min(config.patch_xy, min(y, x) // 2 * 2)
    return pt, pxy


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 symmetries of the square on the last two axes (``k`` in 0..7)."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def _denoise_loss(
    out: torch.Tensor, s2: torch.Tensor, s3: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, l1, mse)``: l1 and mse averaged over both targets, total = 0.5 l1 + 0.5 mse."""
    l1 = 0.5 * (F.l1_loss(out, s2) + F.l1_loss(out, s3))
    mse = 0.5 * (F.mse_loss(out, s2) + F.mse_loss(out, s3))
    return 0.5 * l1 + 0.5 * mse, l1, mse


class DenoiseTrainer(Trainer):
    """Train SRDTrans on one noisy stack without clean data.

    Parameters
    ----------
    stack : array_like
        Noisy ``(T, Y, X)`` stack (time points or z-slices): numpy, memory-mapped or zarr (read
        one crop at a time). A 2D image is a one-frame stack (spatial redundancy only).
    config : DenoiseTrainConfig, optional
        Training settings.
    model : SRDTrans, optional
        A network to continue training (fine-tuning); by default a new one seeded by
        ``config.seed``.
    source : str, optional
        Description of the data (e.g. the file name) stored in saved model files.

    Attributes
    ----------
    model : SRDTrans
    step : int
        Optimizer steps done so far (over all calls of :meth:`train`).
    history : list of dict
        Per step: ``step``, ``total``, ``l1``, ``mse``.
    mean : float
        The stack mean subtracted from every patch.

    Examples
    --------
    >>> trainer = DenoiseTrainer(noisy, DenoiseTrainConfig(minutes=5))   # doctest: +SKIP
    >>> run_to_end(trainer.train())                                      # doctest: +SKIP
    >>> trainer.save("my_model")                                         # doctest: +SKIP
    """

    task = "denoise"

    def __init__(
        self,
        stack: Any,
        config: DenoiseTrainConfig | None = None,
        *,
        model: SRDTrans | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config or DenoiseTrainConfig()
        self.stack = as_stack(stack, "The training stack")
        self.shape = tuple(int(s) for s in self.stack.shape)
        self.dtype = np.dtype(self.stack.dtype)
        self.source = source
        self.device = resolve_device(self.config.device)
        pt, self.patch_xy = effective_patch(self.shape, self.config)
        if model is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                model = SRDTrans(patch_t=pt, **self.config.model_kwargs)
        self.patch_t = model.patch_t
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.config.learning_rate, betas=self.config.betas
        )
        self.mean = stack_mean(self.stack)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0
        self.save_optimizer = True  # model files keep Adam's state, so resuming is exact
        self._preview_region = self._pick_preview_region()

    # ----------------------------------------------------------------------------- data
    def _step_seed(self, step: int, stream: int = 0) -> int:
        return int(np.random.default_rng((self.config.seed, stream, step, 1)).integers(2**62))

    def _batch(
        self, step: int, stream: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """``(S1, S2, S3, n_real)``: sampled ``(B, patch_t, p/2, p/2)`` tensors on the device,
        of which the first ``n_real`` frames are real (the rest mirror them).

        Every draw depends on ``(seed, stream, step)`` only: stream 0 trains, 1 evaluates."""
        rng = np.random.default_rng((self.config.seed, stream, step))
        t, y, x = self.shape
        nt, p = min(t, self.patch_t), self.patch_xy
        crops, turns = [], []
        for _ in range(self.config.batch_size):
            t0 = int(rng.integers(0, t - nt + 1))
            y0 = int(rng.integers(0, y - p + 1))
            x0 = int(rng.integers(0, x - p + 1))
            # Crop first, then convert: a memory-mapped stack is read only here.
            crops.append(np.asarray(self.stack[t0 : t0 + nt, y0 : y0 + p, x0 : x0 + p]))
            turns.append(int(rng.integers(8)))
        batch = torch.from_numpy(np.stack(crops).astype(np.float32)).to(self.device)
        batch = torch.stack([_dihedral(b, k) for b, k in zip(batch, turns, strict=True)])
        batch -= self.mean
        gen = torch.Generator(device=self.device).manual_seed(self._step_seed(step, stream))
        s1, s2, s3 = spatial_redundancy_sample(batch, gen)
        if nt < self.patch_t:
            idx = torch.from_numpy(reflect_index(nt, self.patch_t)).to(self.device)
            s1 = s1.index_select(1, idx)
        return s1, s2, s3, nt

    # ----------------------------------------------------------------------------- train
    def _train_step(self, step: int) -> dict[str, float]:
        s1, s2, s3, nt = self._batch(step)
        self.model.train()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self._step_seed(step) + 1)  # attention dropout of this step
            with autocast(self.device, self.config.amp):
                out = self.model(s1[:, None])
            # Loss in float32, on the real frames only (mirrored copies would count twice).
            out = out[:, 0, :nt].float()
            total, l1, mse = _denoise_loss(out, s2, s3)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
        losses = {k: float(v.detach()) for k, v in (("total", total), ("l1", l1), ("mse", mse))}
        if not all(math.isfinite(v) for v in losses.values()):
            raise RuntimeError(f"SRDTrans training diverged at step {step}: losses {losses}.")
        return losses

    @torch.no_grad()
    def evaluate(self, n_batches: int = 2) -> dict[str, float]:
        """Loss of the current network on fixed batches (same crops, flips and sampling every
        time, no dropout): a smooth measure of progress, unlike the per-step losses.

        Returns
        -------
        dict
            Mean ``total``, ``l1`` and ``mse`` over ``n_batches`` batches.
        """
        was_training = self.model.training
        self.model.eval()
        sums = {"total": 0.0, "l1": 0.0, "mse": 0.0}
        try:
            for i in range(n_batches):
                s1, s2, s3, nt = self._batch(i, stream=1)
                with autocast(self.device, self.config.amp):
                    out = self.model(s1[:, None])
                losses = _denoise_loss(out[:, 0, :nt].float(), s2, s3)
                for key, value in zip(sums, losses, strict=True):
                    sums[key] += float(value) / n_batches
        finally:
            self.model.train(was_training)
        return sums

    def _limits(
        self, steps: int | None, minutes: float | None
    ) -> tuple[int | None, float | None, str]:
        # Default: up to config.epochs epochs in all and/or config.minutes for this call.
        cfg = self.config
        limit = "steps"
        if steps is None and minutes is None:
            minutes = cfg.minutes
            if cfg.epochs is not None:
                steps, limit = max(0, cfg.epochs * cfg.steps_per_epoch - self.step), "epochs"
        return (self.step + steps if steps is not None else None), minutes, limit

    def _step(self, stop_at: int | None) -> Progress:
        """One step (the reports of :meth:`train`: ``losses`` = ``{"total", "l1", "mse"}``;
        every ``config.preview_every`` steps ``preview`` = ``{"input", "output"}``, float32
        2D crops of the middle frame, noisy and denoised by the current network)."""
        cfg = self.config
        t0 = time.monotonic()
        losses = self._train_step(self.step)
        self.step += 1
        self.seconds += time.monotonic() - t0
        self.history.append({"step": self.step, **losses})
        preview = None
        if cfg.preview_every and self.step % cfg.preview_every == 0:
            preview = self.preview()
        return Progress(
            self.step,
            stop_at or 0,
            stage="train",
            losses=losses,
            preview=preview,
            message=f"loss {losses['total']:.4g}",
        )

    # ----------------------------------------------------------------------------- preview
    def _pick_preview_region(self) -> tuple[slice, slice, slice]:
        t, y, x = self.shape
        nt = min(t, self.patch_t)
        py, px = min(y, _PREVIEW_XY), min(x, _PREVIEW_XY)
        t0, y0, x0 = (t - nt) // 2, (y - py) // 2, (x - px) // 2
        return slice(t0, t0 + nt), slice(y0, y0 + py), slice(x0, x0 + px)

    def preview(self) -> dict[str, np.ndarray]:
        """Noisy and denoised middle frame of a fixed central crop, with the current network.

        Returns
        -------
        dict
            ``{"input": ..., "output": ...}``: float32 2D arrays in the units of the data.
        """
        region = self._preview_region
        block = np.asarray(self.stack[region]).astype(np.float32)
        settings = inference_settings(self.model, block.shape, self.device)
        out = run_to_end(
            denoise_centered(block - self.mean, self.model, settings, self.device, self.config.amp),
            progress_bar=False,
        )
        mid = block.shape[0] // 2
        self.model.train()
        return {"input": block[mid], "output": (out[mid] + self.mean).astype(np.float32)}

    # ----------------------------------------------------------------------------- files
    def metadata(self) -> dict[str, Any]:
        """Model-file metadata: architecture, training settings, data, steps and losses."""
        hist = self.history
        stride = max(1, math.ceil(len(hist) / 2000))  # keep files small for long runs
        return {
            "task": "denoise",
            "method": "SRDTrans (Li et al., Nat. Comput. Sci. 2023), self-supervised",
            "architecture": self.model.architecture(),
            "training": {
                "config": self.config.to_dict(),
                "patch_t": self.patch_t,
                "patch_xy": self.patch_xy,
                "steps": self.step,
                "seconds": round(self.seconds, 3),
                "device": describe_device(self.device),
                "torch_version": torch.__version__,
            },
            "data": {
                "source": self.source,
                "shape": list(self.shape),
                "dtype": self.dtype.name,
                "mean": self.mean,
            },
            "normalization": "per stack: float32 minus the stack mean; no other scaling",
            "steps": self.step,
            "losses": {"last": hist[-1] if hist else None, "history": hist[stride - 1 :: stride]},
            "napari_restore_version": __version__,
            "optimizer_state": self.save_optimizer,
        }

    def state_to_save(self) -> dict[str, Any]:
        """The weights and, when :attr:`save_optimizer` (default True), Adam's moments
        (tensors prefixed ``_optimizer.``) so that :meth:`resume` continues exactly; inference
        ignores them."""
        state = dict(self.model.state_dict())
        if self.save_optimizer:
            for idx, s in self.optimizer.state_dict()["state"].items():
                for name, value in s.items():
                    state[f"{OPTIMIZER_PREFIX}{idx}.{name}"] = torch.as_tensor(value)
        return state

    @classmethod
    def resume(cls, path: str | os.PathLike[str], data: Any, **overrides: Any) -> DenoiseTrainer:
        """Continue training from a saved model file, on the same or another stack.

        Parameters
        ----------
        path : path-like
            Model file written by :meth:`save`.
        data : array_like
            Noisy ``(T, Y, X)`` stack to train on.
        **overrides
            Fields of :class:`DenoiseTrainConfig` to change (e.g. ``minutes``, ``device``);
            ``patch_t`` is fixed by the network.

        Returns
        -------
        DenoiseTrainer
            With the saved weights, step count, history and (when saved) optimizer state.
        """
        state, meta = load_model_file(path, task="denoise")
        training = meta.get("training", {})
        kwargs = dict(meta["architecture"].get("kwargs", {}))
        patch_t = int(kwargs.pop("patch_t"))
        if overrides.get("patch_t", patch_t) != patch_t:
            raise RestoreInputError(
                f"The saved network has patch_t={patch_t} (its temporal position embedding); "
                "it cannot be changed when training continues."
            )
        config = DenoiseTrainConfig.from_dict(
            training.get("config", {}), **{**overrides, "patch_t": patch_t}
        )
        model = build_model(meta["architecture"])
        weights = {k: v for k, v in state.items() if not k.startswith(OPTIMIZER_PREFIX)}
        model.load_state_dict(weights)
        trainer = cls(data, config, model=model, source=meta.get("data", {}).get("source"))
        trainer.step = int(meta.get("steps", 0))
        trainer.seconds = float(training.get("seconds", 0.0))
        trainer.history = [dict(h) for h in meta.get("losses", {}).get("history", [])]
        n = len(OPTIMIZER_PREFIX)
        opt = {k[n:]: v for k, v in state.items() if k.startswith(OPTIMIZER_PREFIX)}
        if opt:
            per_param: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in opt.items():
                idx, name = key.split(".", 1)
                per_param.setdefault(int(idx), {})[name] = value
            opt_state = trainer.optimizer.state_dict()
            opt_state["state"] = per_param
            trainer.optimizer.load_state_dict(opt_state)
        return trainer
