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

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_restore._version import __version__
from napari_restore.core.device import autocast, describe_device, resolve_device
from napari_restore.core.progress import Progress, ProgressGenerator, run_to_end
from napari_restore.denoise.infer import (
    OPTIMIZER_PREFIX,
    denoise_centered,
    inference_settings,
)
from napari_restore.denoise.sampling import spatial_redundancy_sample
from napari_restore.engine.model_files import load_model_file, save_model_file
from napari_restore.engine.stacks import as_stack, reflect_index, stack_mean
from napari_restore.errors import RestoreInputError
from napari_restore.models import build_model
from napari_restore.models.srdtrans import SRDTrans

_TIME_MULTIPLE = 16
_PREVIEW_XY = 128


@dataclass(frozen=True)
class DenoiseTrainConfig:
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
        if self.patch_t < _TIME_MULTIPLE or self.patch_t % _TIME_MULTIPLE:
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (stored in model files)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def effective_patch(shape: tuple[int, ...], config: DenoiseTrainConfig) -> tuple[int, int]:
    """``(patch_t, patch_xy)`` used on a ``(T, Y, X)`` stack: the config's, clamped to the data.

    ``patch_t`` becomes the largest multiple of 16 not above ``T`` (at least 16); ``patch_xy``
    the largest even number not above ``min(Y, X)``.
    """
    t, y, x = shape
    pt = min(config.patch_t, max(_TIME_MULTIPLE, t // _TIME_MULTIPLE * _TIME_MULTIPLE))
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


class DenoiseTrainer:
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

    def __init__(
        self,
        stack: Any,
        config: DenoiseTrainConfig | None = None,
        *,
        model: SRDTrans | None = None,
        source: str | None = None,
    ) -> None:
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

    def train(
        self, steps: int | None = None, minutes: float | None = None
    ) -> ProgressGenerator[dict[str, Any]]:
        """Train, yielding after every step; continue where the last call stopped.

        Parameters
        ----------
        steps : int, optional
            Steps to run in this call. Default: up to ``config.epochs`` epochs in all.
        minutes : float, optional
            Time budget of this call. Default: ``config.minutes`` (when ``steps`` is None).

        Yields
        ------
        Progress
            ``stage="train"``, ``losses={"total", "l1", "mse"}`` of the step; every
            ``config.preview_every`` steps ``preview={"input", "output"}``: float32 2D crops
            of the middle frame, noisy and denoised by the current network.

        Returns
        -------
        dict
            ``steps`` (in all), ``steps_run``, ``seconds``, ``ms_per_step``, ``losses`` (last
            step), ``stopped_by`` (``"steps"``, ``"epochs"`` or ``"time"``).

        Notes
        -----
        To stop, close the generator (napari workers do so at a yield): every yielded step is
        complete, so the weights, :attr:`step` and :attr:`history` stay valid, and another
        ``train()`` continues from there.
        """
        cfg = self.config
        if steps is not None and steps < 0:
            raise RestoreInputError(f"steps={steps} must be >= 0.")
        limit = "steps"
        if steps is None and minutes is None:
            minutes = cfg.minutes
            if cfg.epochs is not None:
                steps, limit = max(0, cfg.epochs * cfg.steps_per_epoch - self.step), "epochs"
        stop_at = self.step + steps if steps is not None else None
        deadline = time.monotonic() + 60.0 * minutes if minutes is not None else None
        start_step, started = self.step, time.monotonic()
        losses: dict[str, float] = {}
        while True:
            if stop_at is not None and self.step >= stop_at:
                stopped_by = limit
                break
            if deadline is not None and time.monotonic() >= deadline:
                stopped_by = "time"
                break
            t0 = time.monotonic()
            losses = self._train_step(self.step)
            self.step += 1
            self.seconds += time.monotonic() - t0
            self.history.append({"step": self.step, **losses})
            preview = None
            if cfg.preview_every and self.step % cfg.preview_every == 0:
                preview = self.preview()
            yield Progress(
                self.step,
                stop_at or 0,
                stage="train",
                losses=losses,
                preview=preview,
                message=f"loss {losses['total']:.4g}",
            )
        seconds = time.monotonic() - started
        run = self.step - start_step
        return {
            "steps": self.step,
            "steps_run": run,
            "seconds": seconds,
            "ms_per_step": 1000.0 * seconds / run if run else float("nan"),
            "losses": losses,
            "stopped_by": stopped_by,
        }

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
        }

    def save(self, path: str | os.PathLike[str], *, include_optimizer: bool = True) -> Path:
        """Write the network as a model file (``path.safetensors`` + ``path.json``).

        Parameters
        ----------
        path : path-like
            ``x``, ``x.safetensors`` or ``x.json``.
        include_optimizer : bool
            Also store Adam's moments (tensors prefixed ``_optimizer.``) so that
            :meth:`resume` continues exactly; inference ignores them. Default True.

        Returns
        -------
        pathlib.Path
            The weights file.
        """
        state = dict(self.model.state_dict())
        meta = self.metadata()
        meta["optimizer_state"] = include_optimizer
        if include_optimizer:
            for idx, s in self.optimizer.state_dict()["state"].items():
                for name, value in s.items():
                    state[f"{OPTIMIZER_PREFIX}{idx}.{name}"] = torch.as_tensor(value)
        return save_model_file(path, state, meta)

    @classmethod
    def resume(cls, path: str | os.PathLike[str], stack: Any, **overrides: Any) -> DenoiseTrainer:
        """Continue training from a saved model file, on the same or another stack.

        Parameters
        ----------
        path : path-like
            Model file written by :meth:`save`.
        stack : array_like
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
        fields = {f.name for f in dataclasses.fields(DenoiseTrainConfig)}
        unknown = set(overrides) - fields
        if unknown:
            raise RestoreInputError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
        saved = {k: v for k, v in training.get("config", {}).items() if k in fields}
        kwargs = dict(meta["architecture"].get("kwargs", {}))
        patch_t = int(kwargs.pop("patch_t"))
        if overrides.get("patch_t", patch_t) != patch_t:
            raise RestoreInputError(
                f"The saved network has patch_t={patch_t} (its temporal position embedding); "
                "it cannot be changed when training continues."
            )
        config = DenoiseTrainConfig(**{**saved, **overrides, "patch_t": patch_t})
        model = build_model(meta["architecture"])
        weights = {k: v for k, v in state.items() if not k.startswith(OPTIMIZER_PREFIX)}
        model.load_state_dict(weights)
        trainer = cls(stack, config, model=model, source=meta.get("data", {}).get("source"))
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
