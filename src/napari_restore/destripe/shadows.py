"""Absorber shadows: a training sampler of stripes that start somewhere and trail off.

The simulator's line stripes (:mod:`napari_restore.simulate.stripes`) run through the patch or
fade in and out symmetrically along their length. A real light-sheet shadow does neither: it
starts abruptly behind the absorber that casts it (a penumbra of a few pixels), trails off as
scattered light fills it in, and the shadows of one sheet fan out from its waist and bend with
the sample's refractive index. A network trained only on the simulator's stripes leaves such
sharp-ended shadows in place, so the destriper's training draws a share of its stripe fields
here (``shadow_fraction``).

Shapes drawn per field (all stripes of a field share a propagation direction, like the light of
one sheet): a fan of 0.5 to 12 stripes per 100 rows (log-uniform, at least one) whose angles grow
linearly with their row (centre angle 0 with probability 0.4, else uniform in -30 to 30 degrees;
spread up to 10 degrees), a common quadratic bend (up to 6 px of sag across the patch), per
stripe a Gaussian or a flat-topped cross-section (a Gaussian-smoothed box: the shadow of an
absorber wider than the penumbra), a logistic onset of 0.3 to 4 px at the absorber, then a decay
``exp(-d / L)`` with ``L`` from a third of the patch to eight patch widths, slowly modulated by
up to 30 %.

``profiles="varied"`` widens the cross-sections beyond the Gaussian and the flat top, because
a shadow's profile across the sheet depends on the absorber and on how much the tissue scatters,
and a network that only ever saw Gaussian and box profiles leaves the rest of other profiles in
place (broad wings beside a removed core; the held-out benchmark's two other stripe generators
draw profiles of their own): besides the flat top, equally often a Gaussian, a generalised
Gaussian ``exp(-|d / s|^b)`` (``b`` 0.7 to 4: peaked with long flanks to near-box), a lopsided
Gaussian (one flank up to three times wider than the other) and a Gaussian core with a scattering
halo ``exp(-|d| / (k s))`` (10 to 50 % of the peak, ``k`` 3 to 10).
"""

from __future__ import annotations

import math

import numpy as np

#: Fraction of a field's stripes with a flat-topped (box) cross-section.
FLAT_TOP_PROBABILITY = 0.35
#: Cross-section families of :func:`shadow_field`: ``"classic"`` (Gaussian or flat top, the
#: stream of every model trained before the other family existed) and ``"varied"``.
SHADOW_PROFILES = ("classic", "varied")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _cross_section(rng: np.random.Generator, d: np.ndarray, varied: bool = False) -> np.ndarray:
    """Profile across one stripe at signed distances ``d`` (peak 1); ``varied``: the wider
    family of ``profiles="varied"`` (module docstring)."""
    from scipy.special import erf  # here: the Train dock's module must import without scipy

    sigma = _log_uniform(rng, 0.5, 6.0)
    if rng.random() < FLAT_TOP_PROBABILITY:
        half = rng.uniform(1.0, 8.0)
        scale = math.sqrt(2.0) * sigma
        box = 0.5 * (erf((d + half) / scale) - erf((d - half) / scale))
        return box / max(1e-9, float(erf(half / scale)))
    if not varied:
        return np.exp(-0.5 * (d / sigma) ** 2)
    family = int(rng.integers(4))
    if family == 1:  # generalised Gaussian: peaked with long flanks (b < 2) to near-box
        shape = _log_uniform(rng, 0.7, 4.0)
        return np.exp(-0.5 * np.abs(d / sigma) ** shape)
    if family == 2:  # lopsided: one flank wider than the other
        ratio = _log_uniform(rng, 1.0 / 3.0, 3.0)
        return np.exp(-0.5 * (d / np.where(d < 0, sigma, sigma * ratio)) ** 2)
    core = np.exp(-0.5 * (d / sigma) ** 2)
    if family == 3:  # a core with a scattering halo
        halo = rng.uniform(0.1, 0.5)
        reach = rng.uniform(3.0, 10.0) * sigma
        return (1.0 - halo) * core + halo * np.exp(-np.abs(d) / reach)
    return core


def _along(rng: np.random.Generator, x: np.ndarray, width: int) -> np.ndarray:
    """Strength along a stripe: zero before the absorber, a logistic onset, then a decay."""
    start = rng.uniform(-0.4 * width, 0.95 * width)
    edge = _log_uniform(rng, 0.3, 4.0)
    decay = _log_uniform(rng, width / 3.0, 8.0 * width)
    onset = 0.5 * (1.0 + np.tanh(0.5 * (x - start) / edge))  # the logistic function
    trail = np.exp(-np.clip(x - start, 0.0, None) / decay)
    depth = rng.uniform(0.0, 0.3)
    wave = np.sin(2 * np.pi * x / _log_uniform(rng, 0.5 * width, 3.0 * width) + rng.uniform(0, 7))
    return onset * trail * (1.0 + depth * wave)


def shadow_field(
    rng: np.random.Generator,
    shape: tuple[int, int],
    amplitude: tuple[float, float],
    profiles: str = "classic",
) -> np.ndarray:
    """Attenuation field ``1 - T`` (in ``[0, 1)``) of one sheet's absorber shadows.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : (int, int)
        ``(height, width)`` of the patch; the light propagates along x (either way).
    amplitude : (float, float)
        Range of the stripes' strength (attenuation at the stripe's peak), drawn per stripe.
    profiles : {"classic", "varied"}
        Cross-section family (module docstring); ``"classic"`` draws the stream of models
        trained before ``"varied"`` existed.

    Returns
    -------
    numpy.ndarray
        float32 field of ``shape``.
    """
    if profiles not in SHADOW_PROFILES:
        raise ValueError(f"profiles={profiles!r}: one of {', '.join(SHADOW_PROFILES)}")
    varied = profiles == "varied"
    height, width = (int(s) for s in shape)
    y = np.arange(height, dtype=np.float64)[:, None]
    x = np.arange(width, dtype=np.float64)
    centre = 0.0 if rng.random() < 0.4 else rng.uniform(-30.0, 30.0)
    spread = rng.uniform(0.0, 10.0)
    sag = rng.uniform(-6.0, 6.0)
    bend = sag * (2.0 * x / max(1, width - 1) - 1.0) ** 2
    tan_c = math.tan(math.radians(abs(centre) + spread))
    # Rows from which a stripe can still cross the patch.
    lo, hi = -tan_c * width - 10.0, height + tan_c * width + 10.0
    density = _log_uniform(rng, 0.5, 12.0)
    n = max(1, round(density * (hi - lo) / 100.0))
    log_t = np.zeros((height, width))
    for row in rng.uniform(lo, hi, n):
        # A fan: the angle grows with the stripe's row, as rays from the sheet's waist.
        theta = math.radians(centre + spread * (2.0 * (row - lo) / (hi - lo) - 1.0))
        line = row + math.tan(theta) * (x - width / 2.0) + bend
        d = (y - line[None, :]) * math.cos(theta)
        strength = rng.uniform(*amplitude)
        profile = _cross_section(rng, d, varied) * _along(rng, x, width)[None, :]
        log_t += np.log1p(-np.clip(strength * profile, 0.0, 0.95))
    field = -np.expm1(log_t)
    if rng.random() < 0.5:  # the sheet comes from the other side
        field = field[:, ::-1]
    return np.ascontiguousarray(field, dtype=np.float32)
