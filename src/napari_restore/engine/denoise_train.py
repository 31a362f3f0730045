"""Self-supervised SRDTrans training on one noisy stack, as a stoppable, resumable generator.

Data path of one step (nothing is materialised beyond the current batch):

1. random 3D crops ``(n_t, patch_xy, patch_xy)`` are read from the stack (a memory-mapped TIFF or
   zarr array is read only there) and converted to float32 minus the stack mean, scaled to a
   standard deviation of 10 (``TARGET_STD`` in :mod:`~napari_restore.engine.denoise_infer`,
   which says why 10). The paper only subtracts the mean: the network must then learn outputs
   in the thousands on 16-bit data, which a short run does not reach, and one network could
   not start from another trained on data in other units;
2. on the device: one of the 8 dihedral transforms of the xy plane per crop, then spatial
   redundancy sampling (:mod:`~napari_restore.engine.srd_sampling`) into the input ``S1`` and
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
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_restore._version import __version__
from napari_restore.engine._stacks import as_stack, reflect_index
from napari_restore.engine.denoise_infer import (
    OPTIMIZER_PREFIX,
    TARGET_STD,
    denoise_centered,
    inference_settings,
    model_normalization,
    normalization_from_metadata,
    stack_statistics,
)
from napari_restore.engine.device import autocast, describe_device, resolve_device
from napari_restore.engine.model_files import load_model_file, save_model_file
from napari_restore.engine.progress import Progress, ProgressGenerator, run_to_end
from napari_restore.engine.srd_sampling import spatial_redundancy_sample
from napari_restore.errors import RestoreInputError
from napari_restore.models import build_model
from napari_restore.models.srdtrans import SRDTrans

_TIME_MULTIPLE = 16
_PREVIEW_XY = 128

PRETRAINED_MODEL = "denoise_default"
# Defaults on a CPU (and MPS). Measured on the project's 2-core machine (docs/denoise.md,
# "Choosing the CPU defaults"): with ~1-4 s per step a few minutes are ~100 steps, where small
# patches and a higher learning rate converge much further than the paper's 128x128x128 patches
# at 1e-4 (one step of those takes ~20 s). patch_t 32 is also the pretrained network's.
CPU_DEFAULTS: dict[str, Any] = {
    "patch_t": 32,
    "patch_xy": 64,
    "batch_size": 1,
    "learning_rate": 5e-4,
}


def pretrained_model_path() -> Path | None:
    """The pretrained network shipped with the package
    (``pretrained/denoise_default.safetensors``), or None when this installation has none."""
    path = Path(str(resources.files("napari_restore") / "pretrained" / f"{PRETRAINED_MODEL}"))
    weights = path.with_suffix(".safetensors")
    return weights if weights.is_file() else None


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
    path = pretrained_model_path() if config.init == "pretrained" else Path(config.init)
    if path is None:
        raise RestoreInputError(
            "This installation has no pretrained denoising network; train from scratch "
            "(init='scratch')."
        )
    state, meta = load_model_file(path, task="denoise")
    model = build_model(meta["architecture"])
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith(OPTIMIZER_PREFIX)})
    model.normalization = normalization_from_metadata(meta)
    if config.patch_t != model.patch_t:
        what = "pretrained network" if config.init == "pretrained" else f"network in {path.name}"
        raise RestoreInputError(
            f"The {what} works on patches of {model.patch_t} frames (its temporal position "
            f"embedding); set patch_t={model.patch_t}, or train from scratch."
        )
    return model


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
        if self.preview_seconds < 0 or self.preview_every < 0:
            raise RestoreInputError("preview_every and preview_seconds must be >= 0.")
        if "patch_t" in self.model_kwargs:
            raise RestoreInputError("Set patch_t in the config, not in model_kwargs.")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))

    @classmethod
    def for_device(
        cls, device: str | torch.device = "auto", **overrides: Any
    ) -> DenoiseTrainConfig:
        """The defaults that fit a device, with ``overrides`` on top.

        On a GPU: the paper's settings (the class defaults). On a CPU (or MPS), where a few
        minutes are a few hundred steps: the measured CPU defaults :data:`CPU_DEFAULTS`
        (smaller patches, a higher learning rate) and, when the package ships it, a start from
        the pretrained network (``init="pretrained"``).

        Parameters
        ----------
        device : str or torch.device
            ``"auto"``, ``"cpu"``, ``"cuda:N"`` or ``"mps"``.
        **overrides
            Any fields to set explicitly.
        """
        # The device's kind decides; whether it exists here is checked when training starts.
        spec = str(device).strip().lower()
        kind = resolve_device(spec).type if spec == "auto" else torch.device(spec).type
        settings: dict[str, Any] = {}
        if kind != "cuda":
            settings.update(CPU_DEFAULTS)
            if pretrained_model_path() is not None:
                settings["init"] = "pretrained"
        settings.update(overrides)
        settings.setdefault("device", str(device))
        return cls(**settings)

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

    def __init__(
        self,
        stack: Any,
        config: DenoiseTrainConfig | None = None,
        *,
        model: SRDTrans | None = None,
        source: str | None = None,
    ) -> None:
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
            ``stage="train"``, ``losses={"total", "l1", "mse"}`` of the step (in units of the
            stack's standard deviation squared for MSE, comparable between stacks);
            ``total``: the steps expected in all, so that ``fraction`` moves with the time
            when a time budget limits the run (estimated from the mean step time so far);
            every ``config.preview_every`` steps or ``config.preview_seconds`` seconds
            ``preview={"input", "output"}``: float32 2D crops of the middle frame, noisy and
            denoised by the current network.

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
        last_preview, preview_cost = started, 0.0
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
            now = time.monotonic()
            total = stop_at or 0
            if deadline is not None:
                # Steps expected by the deadline at the mean pace so far: progress moves with time.
                pace = (now - started) / (self.step - start_step)
                expected = self.step + int(max(0.0, deadline - now) / pace)
                total = min(total, expected) if total else expected
            preview = None
            due = cfg.preview_every and self.step % cfg.preview_every == 0
            # Time-based previews cost at most about a quarter of the training time.
            wait = max(cfg.preview_seconds, 3.0 * preview_cost)
            if due or (cfg.preview_seconds and now - last_preview >= wait):
                preview = self.preview()
                last_preview = time.monotonic()
                preview_cost = last_preview - now
            yield Progress(
                self.step,
                max(total, self.step) if total else 0,
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
        model.normalization = normalization_from_metadata(meta)
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
    if trainer.step < need:
        start = "from the pretrained network" if pretrained else "from scratch"
        hint = ""
        if not pretrained and pretrained_model_path() is not None:
            hint = ", or start from the pretrained network"
        out.append(
            f"Only {trainer.step} training steps {start} (about {need} or more are needed "
            f"for a usable result): the output is likely blurred or flat. Train longer (a "
            f"larger time budget, or Train again to continue){hint}."
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
