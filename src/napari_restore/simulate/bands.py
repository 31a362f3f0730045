"""A fourth stripe kind, ``"bands"``: periodic banding with a random profile.

Not one of the three types of Wei et al. (2022). Light-sheet images also show periodic banding
that is not a row of Gaussian lines: interference and scanning of the sheet, pivot artefacts
and camera read-out give modulations whose profile across the bands can be smooth, flat-topped,
narrow or lopsided, whose spacing can drift across the field, and which may cover only part of
it. The destriping network trained on the paper's regular bands alone (Gaussian lines at an
exact period) left such banding in place on held-out images. This kind draws it:

- the band profile along y is a sum of one to four harmonics of the band phase with random
  weights (falling off with the harmonic number) and phases, scaled to [0, 1] over a cycle and
  raised to a power log-uniform in 0.5 to 4 (broad and flat-topped to narrow bands);
- the spacing drifts linearly across the plane by up to ±30 % of ``period`` (chirp);
- the strength varies from band to band (:func:`~napari_restore.simulate.stripes.
  signed_amplitudes`, interpolated between bands);
- with probability one half the banding covers only an x interval with soft (logistic) ends;
- multiplicative bands: with probability one half the profile is centred on its mean over a
  cycle, fringes that brighten as much as they darken and leave the mean intensity alone
  (interference), instead of bands that only dim from an untouched level (they have a negative
  attenuation where they brighten). Additive bands keep their polarity.

Registered on import (``napari_restore.simulate`` imports this module), so the simulator, the
training sampler, the docks and the command line offer it like the built-in kinds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_restore.simulate.stripes import (
    StripeKindSpec,
    StripeParams,
    log_uniform,
    register_stripe_kind,
    signed_amplitudes,
)

KIND = "bands"
# Relative drift of the band spacing across the plane, at most.
MAX_CHIRP = 0.3
# Samples of one cycle over which a profile is scaled to [0, 1].
_CYCLE_SAMPLES = 256


def _profile(rng: np.random.Generator, phase: np.ndarray, may_centre: bool) -> np.ndarray:
    """A random periodic profile of ``phase`` (in cycles): in [0, 1], or (half of the time, if
    ``may_centre``) that minus its mean over a cycle."""
    n = int(rng.integers(1, 5))
    k = np.arange(1, n + 1, dtype=np.float64)
    weights = rng.uniform(0.2, 1.0, n) / k ** rng.uniform(0.5, 2.0)
    shifts = rng.uniform(0, 2 * np.pi, n)
    power = log_uniform(rng, 0.5, 4.0)

    def wave(t: np.ndarray) -> np.ndarray:
        return np.cos(2 * np.pi * k * t[..., None] + shifts) @ weights

    cycle = wave(np.arange(_CYCLE_SAMPLES) / _CYCLE_SAMPLES)
    lo, hi = float(cycle.min()), float(cycle.max())
    centred = rng.random() < 0.5 and may_centre
    centre = float(np.mean(((cycle - lo) / max(hi - lo, 1e-12)) ** power)) if centred else 0.0
    return np.clip((wave(phase) - lo) / max(hi - lo, 1e-12), 0.0, 1.0) ** power - centre


def _envelope(rng: np.random.Generator, width: int) -> np.ndarray:
    """1 over the whole width, or (half of the time) over an interval with logistic ends."""
    if rng.random() < 0.5:
        return np.ones(width)
    start = rng.uniform(-0.3, 0.7) * width
    stop = start + rng.uniform(0.3, 1.2) * width
    edge = log_uniform(rng, 1.0, 30.0)
    x = np.arange(width, dtype=np.float64)
    # logistic(z) = (1 + tanh(z / 2)) / 2, without overflow far from the ends
    return 0.25 * (1 + np.tanh((x - start) / (2 * edge))) * (1 + np.tanh((stop - x) / (2 * edge)))


def draw_bands(
    rng: np.random.Generator, params: StripeParams, shape: tuple[int, int]
) -> np.ndarray:
    """Log-transmission (multiplicative) or amplitude (additive) field of one plane's banding.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    params : StripeParams
        Reads ``period`` (mean spacing, px), ``mode``, ``amplitude`` and ``polarity``.
    shape : (int, int)
        ``(height, width)`` of the plane.

    Returns
    -------
    numpy.ndarray
        float64 ``(height, width)``.
    """
    height, width = shape
    chirp = rng.uniform(-MAX_CHIRP, MAX_CHIRP)
    y = np.arange(height, dtype=np.float64)
    spacing = params.period * (1.0 + chirp * (y / max(height - 1, 1) - 0.5))
    # The band phase (cycles) of each row: the running sum of the local frequency.
    phase = rng.uniform(0, 1) + np.concatenate([[0.0], np.cumsum(1.0 / spacing[:-1])])
    bands = int(np.ceil(phase[-1])) + 2
    strength = np.interp(phase, np.arange(bands), signed_amplitudes(rng, params, bands))
    rows = strength * _profile(rng, phase, params.mode == "multiplicative")
    field = rows[:, None] * _envelope(rng, width)[None, :]
    return np.log1p(-field) if params.mode == "multiplicative" else field


def sample_bands(
    rng: np.random.Generator, common: dict[str, Any], shape: tuple[int, int]
) -> StripeParams:
    """Training parameters: mean spacing log-uniform 3 to 64 px (the profile, drift, strength
    from band to band and extent are drawn with the field)."""
    return StripeParams(**common, period=log_uniform(rng, 3.0, 64.0))


register_stripe_kind(
    StripeKindSpec(
        KIND,
        ("period",),
        draw_bands,
        sample_bands,
        "periodic banding with a random profile and drifting spacing (not in Wei et al.)",
    )
)
