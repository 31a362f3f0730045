"""Per-image adaptation of a destriping network (a short fine-tune on the user's own image).

A network trained on a corpus meets content it never saw: sparse nuclei on black that it reads
as shadowed, dense textures whose horizontal parts it takes for stripes. Adaptation teaches it
the image at hand before it corrects it, without ground truth:

1. The image's striped planes go through the ordinary pipeline (network, stripe-shaped
   correction, clean-up): the result ``y0`` is the best stripe-free estimate available, with
   the image's own content.
2. The network is fine-tuned for a few steps on pairs ``(y0 x fresh random stripes -> y0)``
   drawn as random patches of ``y0``, plus a share of unstriped patches ``(y0 -> y0)`` that
   must come back unchanged. It so learns what this image's structures look like under
   stripes, and that they are not stripes. The stripes are drawn as the model was trained
   (its modes, kind weights, share of absorber shadows and their cross-sections) but only
   darkening: fields that
   brighten teach the copy, on this one image, that corrections may darken it: on the real
   SPIM image of the benchmarks the adapted output came out 13 % darker with them, 1.2 %
   without (``benchmarks/results/destripe_real_cpu/``; on the held-out crops the two draws are
   within 0.3 dB of each other, ``benchmarks/adapt_sampler_seeds.py``).
3. The fine-tuned copy then corrects the image (the caller's network is never changed).

This is re-corruption self-supervision in the spirit of Noisier2Noise (Moran et al., CVPR 2020)
and of the per-image fitting of self-supervised destripers (DeStripe, Liu et al., MICCAI 2023),
here starting from a pretrained network. On the held-out validation crops it mostly undoes the
network's over-correction of unfamiliar content (``docs/destripe.md``, "Adapting to the
image").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from napari_restore.core.device import autocast
from napari_restore.core.progress import Progress, ProgressGenerator
from napari_restore.destripe.config import DEFAULT_ADAPT_STEPS
from napari_restore.destripe.data import check_mix, striped_batch
from napari_restore.errors import RestoreInputError

#: Learning rate of the fine-tune (Adam, constant): a tenth of the training rate, so that a few
#: steps adapt the network without unlearning the corpus (5e-4 was erratic on the validation
#: crops: one crop lost 2 dB where 1e-4 gained 6 dB).
ADAPT_LR = 1e-4
#: Patches per step and their edge (the training patch size: CBAM's channel attention pools
#: over the whole patch, so its statistics should match the training's).
ADAPT_BATCH = 4
ADAPT_PATCH = 128
#: Share of patches left unstriped (they must come back unchanged).
ADAPT_CLEAN_FRACTION = 0.2
#: Striped planes of a stack whose estimates serve as targets (evenly spaced).
ADAPT_MAX_PLANES = 4


def check_adapt_steps(steps: int) -> int:
    """``steps`` as a non-negative int, or a :class:`RestoreInputError` saying what to give."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise RestoreInputError(
            f"adapt_steps={steps!r}: give a whole number of fine-tuning steps, 0 for none "
            f"(e.g. {DEFAULT_ADAPT_STEPS})."
        )
    return int(steps)


def _patches(
    rng: np.random.Generator, targets: Sequence[np.ndarray], n: int, edge: int
) -> np.ndarray:
    out = np.empty((n, edge, edge), dtype=np.float32)
    for k in range(n):
        t = targets[int(rng.integers(len(targets)))]
        y0 = int(rng.integers(t.shape[0] - edge + 1))
        x0 = int(rng.integers(t.shape[1] - edge + 1))
        patch = t[y0 : y0 + edge, x0 : x0 + edge]
        if rng.random() < 0.5:  # mirrored half the time: more distinct patches of one image
            patch = patch[:, ::-1]
        out[k] = patch
    return out


def fine_tune_progress(
    net: nn.Module,
    targets: Sequence[np.ndarray],
    steps: int,
    *,
    modes: Sequence[str] = ("multiplicative",),
    mix: Sequence[float] | dict[str, float] = (1.0, 1.0, 1.0),
    learning_rate: float = ADAPT_LR,
    batch_size: int = ADAPT_BATCH,
    patch_size: int = ADAPT_PATCH,
    clean_fraction: float = ADAPT_CLEAN_FRACTION,
    bright_fraction: float = 0.0,
    shadow_fraction: float = 0.0,
    shadow_profiles: str = "classic",
    seed: int = 0,
    amp: bool = True,
) -> ProgressGenerator[nn.Module]:
    """Fine-tune a copy of ``net`` to remove fresh random stripes from ``targets``.

    Parameters
    ----------
    net : torch.nn.Module
        The destriping network (left unchanged; a copy is trained on its device).
    targets : sequence of numpy.ndarray
        Normalised ``(Y, X)`` stripe-free estimates of the image's planes (horizontal stripes).
    steps : int
        Optimisation steps (0 returns an unchanged copy).
    modes, mix
        Stripe modes and kind weights of the random stripes (as in training).
    learning_rate, batch_size, patch_size, clean_fraction
        Adam's constant rate, patches per step, their edge (clipped to the smallest target,
        to a multiple of 16), and the share of unstriped patches.
    bright_fraction : float
        Share of multiplicative stripe fields that brighten (as in the model's training).
    shadow_fraction : float
        Share of stripe fields drawn as absorber shadows (as in the model's training).
    shadow_profiles : {"classic", "varied"}
        Their cross-sections (as in the model's training).
    seed : int
        Seed of the patches and stripes (same seed, same adapted network on the CPU).
    amp : bool
        bf16 autocast on CUDA.

    Yields
    ------
    Progress
        ``stage="adapt"`` after every step, with the step's loss as ``losses["mae"]``.

    Returns
    -------
    torch.nn.Module
        The adapted copy, in eval mode.
    """
    steps = check_adapt_steps(steps)
    probabilities, modes = check_mix(mix, modes)
    edge = min(patch_size, *(min(t.shape) for t in targets)) // 16 * 16
    if edge < 16:
        raise RestoreInputError(
            f"Planes of {min(min(t.shape) for t in targets)} px are too small to adapt the "
            "network to (it needs patches of at least 16 px)."
        )
    device = next(net.parameters()).device
    tuned = copy.deepcopy(net).to(device)
    tuned.train()
    optimizer = torch.optim.Adam(tuned.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in range(1, steps + 1):
            clean = _patches(rng, targets, batch_size, edge)
            striped = striped_batch(
                rng,
                clean,
                probabilities,
                modes,
                clean_fraction,
                bright_fraction,
                shadow_fraction,
                shadow_profiles,
            )
            x = torch.from_numpy(striped[:, None]).to(device)
            y = torch.from_numpy(clean[:, None]).to(device)
            with autocast(device, enabled=amp):
                pred = tuned(x)
            loss = (pred.float() - y).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tuned.parameters(), 1.0)
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RuntimeError(
                    f"Adapting the network diverged at step {step} (loss {value}); "
                    "destripe without adaptation."
                )
            yield Progress(
                step,
                steps,
                stage="adapt",
                losses={"mae": value},
                message=f"adapting to the image: step {step} of {steps}",
            )
    return tuned.eval()


__all__ = [
    "ADAPT_BATCH",
    "ADAPT_CLEAN_FRACTION",
    "ADAPT_LR",
    "ADAPT_MAX_PLANES",
    "ADAPT_PATCH",
    "DEFAULT_ADAPT_STEPS",
    "check_adapt_steps",
    "fine_tune_progress",
]
