"""Self-supervised SRDTrans training on one noisy stack, as a stoppable, resumable generator.

Data path of one step (nothing is materialised beyond the current batch):

1. random 3D crops ``(n_t, patch_xy, patch_xy)`` are read from the stack (a memory-mapped TIFF or
   zarr array is read only there) and converted to float32 minus the stack mean, scaled to a
   standard deviation of 10 (``TARGET_STD`` in :mod:`~napari_restore.denoise.infer`,
   which says why 10). The paper only subtracts the mean: the network must then learn outputs
   in the thousands on 16-bit data, which a short run does not reach, and one network could
   not start from another trained on data in other units;
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_restore._version import __version__
from napari_restore.core.device import autocast, describe_device, resolve_device
from napari_restore.core.progress import Progress, run_to_end
from napari_restore.denoise import config as _config
from napari_restore.denoise.config import TIME_MULTIPLE, DenoiseTrainConfig
from napari_restore.denoise.infer import (
    TARGET_STD,
    denoise_centered,
    inference_settings,
    model_normalization,
    normalization_from_metadata,
    stack_statistics,
)
from napari_restore.denoise.sampling import spatial_redundancy_sample
from napari_restore.engine.model_files import OPTIMIZER_PREFIX, load_model_file, load_weights
from napari_restore.engine.stacks import as_stack, reflect_index
from napari_restore.engine.trainer import Trainer
from napari_restore.errors import RestoreInputError
from napari_restore.models import build_model
from napari_restore.models.srdtrans import SRDTrans

_PREVIEW_XY = 128


def initial_network(config: DenoiseTrainConfig, stack_shape: tuple[int, int, int]) -> SRDTrans:
    """The network a new training run starts from (see ``DenoiseTrainConfig.init``).

    Raises
    ------
    RestoreInputError
        When the pretrained network is not installed, the file does not hold a denoising
        network, or ``config.patch_t`` differs from the starting network's.
    """
    if config.init == "scratch":
        pt, _ = effective_patch(stack_shape, config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return SRDTrans(patch_t=pt, **config.model_kwargs)
    if config.model_kwargs:
        raise RestoreInputError("model_kwargs only apply to a network trained from scratch.")
    # Through the module: tests and scripts may point it at another file.
    path = _config.pretrained_model_path() if config.init == "pretrained" else Path(config.init)
    if path is None:
        raise RestoreInputError(
            "This installation has no pretrained denoising network; train from scratch "
            "(init='scratch')."
        )
    state, meta = load_model_file(path, task="denoise")
    model = build_model(meta["architecture"])
    load_weights(model, state, path)
    model.normalization = normalization_from_metadata(meta)
    if config.patch_t != model.patch_t:
        what = "pretrained network" if config.init == "pretrained" else f"network in {path.name}"
        raise RestoreInputError(
            f"The {what} works on patches of {model.patch_t} frames (its temporal position "
            f"embedding); set patch_t={model.patch_t}, or train from scratch."
        )
    return model


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
        Training settings; default :meth:`DenoiseTrainConfig.for_device` (on a CPU: the
        measured CPU settings, starting from the pretrained network).
    model : SRDTrans, optional
        A network to continue training (fine-tuning); by default the one ``config.init``
        names (a new one seeded by ``config.seed``, or the pretrained network).
    source : str, optional
        Description of the data (e.g. the file name) stored in saved model files.

    Attributes
    ----------
    model : SRDTrans
    step : int
        Optimizer steps done so far (over all calls of :meth:`train`).
    history : list of dict
        Per step: ``step``, ``total``, ``l1``, ``mse``.
    mean, scale : float
        Every patch is ``(x - mean) / scale``: the stack mean and its standard deviation over
        10 (scale 1 for a network from an old model file that works in the units of the
        data).

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
        self.config = config or DenoiseTrainConfig.for_device()
        self.stack = as_stack(stack, "The training stack")
        self.shape = tuple(int(s) for s in self.stack.shape)
        self.dtype = np.dtype(self.stack.dtype)
        self.source = source
        self.device = resolve_device(self.config.device)
        _, self.patch_xy = effective_patch(self.shape, self.config)
        if model is None:
            model = initial_network(self.config, self.shape)
        self.patch_t = model.patch_t
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.config.learning_rate, betas=self.config.betas
        )
        self.normalization = model_normalization(self.model)
        self.mean, self.scale = stack_statistics(self.stack, self.normalization)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0
        # Time-based previews: the clock starts at the first step (None until then).
        self._last_preview: float | None = None
        self._preview_cost = 0.0
        self.save_optimizer = True  # model files keep Adam's state, so resuming is exact
        self._preview_region = self._pick_preview_region()

    @property
    def start_description(self) -> str:
        """Where the network started: "from scratch", "from the pretrained network", ..."""
        init = self.config.init
        if init == "scratch":
            return "from scratch"
        return "from the pretrained network" if init == "pretrained" else f"from {Path(init).name}"

    @property
    def loss_units(self) -> str:
        """What the losses are measured in (the network's input units)."""
        if self.normalization == "mean_std":
            return f"with the stack scaled to a standard deviation of {TARGET_STD:g}"
        return "in the data's units"

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
        batch /= self.scale
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
        every ``config.preview_every`` steps or ``config.preview_seconds`` seconds
        ``preview`` = ``{"input", "output"}``, float32 2D crops of the middle frame, noisy
        and denoised by the current network)."""
        cfg = self.config
        t0 = time.monotonic()
        losses = self._train_step(self.step)
        self.step += 1
        self.seconds += time.monotonic() - t0
        self.history.append({"step": self.step, **losses})
        preview = None
        now = time.monotonic()
        if self._last_preview is None:
            self._last_preview = now
        due = cfg.preview_every and self.step % cfg.preview_every == 0
        # Previews by the clock too (slow CPU steps), at most about a quarter of the time.
        wait = max(cfg.preview_seconds, 3.0 * self._preview_cost)
        if due or (cfg.preview_seconds and now - self._last_preview >= wait):
            preview = self.preview()
            self._last_preview = time.monotonic()
            self._preview_cost = self._last_preview - now
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
            denoise_centered(
                (block - self.mean) / np.float32(self.scale),
                self.model,
                settings,
                self.device,
                self.config.amp,
            ),
            progress_bar=False,
        )
        mid = block.shape[0] // 2
        self.model.train()
        output = out[mid] * np.float32(self.scale) + np.float32(self.mean)
        return {"input": block[mid], "output": output.astype(np.float32)}

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
                "std": self.scale * TARGET_STD if self.normalization == "mean_std" else None,
            },
            "normalization": {
                "method": self.normalization,
                "scale": self.scale,
                "description": "per stack: (x - mean) / scale, float32, with the stack mean "
                f"and scale = its standard deviation / {TARGET_STD:g}"
                if self.normalization == "mean_std"
                else "per stack: float32 minus the stack mean; no other scaling",
            },
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
        load_weights(model, state, path)
        model.normalization = normalization_from_metadata(meta)
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


# Fewer steps than these rarely give a usable network (measured on the CPU benchmarks in
# docs/denoise.md): from scratch the output is still blurred or flat; from the pretrained
# network it has not adapted to the stack yet.
MIN_STEPS_SCRATCH = 300
MIN_STEPS_PRETRAINED = 40
# Relative drop of the mean loss between the last two quarters of the run above which it
# is still falling steeply (per-step losses are noisy: different crops every step).
STEEP_DROP = 0.05


def training_warnings(
    trainer: DenoiseTrainer, summary: Mapping[str, Any] | None = None
) -> list[str]:
    """Signs that a trained network is likely poor, each with what to do about it.

    Parameters
    ----------
    trainer : DenoiseTrainer
        After training.
    summary : mapping, optional
        What :meth:`DenoiseTrainer.train` returned (unused for now; kept for callers that
        have it, so that later checks can use the stopping reason).

    Returns
    -------
    list of str
        Empty when nothing looks wrong: (1) far too few steps for the start the network had;
        (2) the loss still falling steeply at the end (not converged).
    """
    out = []
    pretrained = trainer.config.init != "scratch"
    need = MIN_STEPS_PRETRAINED if pretrained else MIN_STEPS_SCRATCH
    if trainer.step < need and pretrained:
        # The pretrained start denoises well as it is (docs/denoise.md: the held-out stacks
        # applied without training); too few steps leave it unadapted, not flat.
        out.append(
            f"Only {trainer.step} training steps from the pretrained network (about {need} "
            "or more adapt it to this stack): the output is mostly the pretrained network's, "
            "not yet tuned to your data's noise. Train longer (a larger time budget, or Train "
            "again to continue)."
        )
    elif trainer.step < need:
        hint = ""
        if _config.pretrained_model_path() is not None:
            hint = ", or start from the pretrained network"
        out.append(
            f"Only {trainer.step} training steps from scratch (about {need} or more are "
            f"needed for a usable result): the output is likely blurred or flat. Train longer "
            f"(a larger time budget, or Train again to continue){hint}."
        )
    totals = [h["total"] for h in trainer.history]
    if len(totals) >= 20:
        q = len(totals) // 4
        prev, last = float(np.mean(totals[-2 * q : -q])), float(np.mean(totals[-q:]))
        if prev > 0 and (prev - last) / prev > STEEP_DROP:
            out.append(
                f"The loss is still falling steeply ({100 * (prev - last) / prev:.0f} % over "
                f"the last {q} steps): training has not converged. Train longer for a "
                "better result."
            )
    return out
