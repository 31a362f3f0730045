"""A second stripe model for the destriping benchmark, independent of ``napari_restore.simulate``.

Written for the benchmark only, so that a model cannot be tuned to one generator: it shares no
code, profile or parameter range with the project's simulator (Gaussian cross-sections, stripes
through the patch or fading symmetrically, straight lines). Its stripes are modelled on what a
light sheet does instead:

- cross-section: a Lorentzian ``1 / (1 + (d / g)^2)`` (heavy tails) or a flat-topped super-
  Gaussian ``exp(-(|d| / g)^4)`` (sharp-edged shadows), ``g`` 0.7 to 9 px;
- along the stripe: a shadow starts at an absorber (a random ``x``, often outside the image)
  and decays exponentially along the propagation direction (length 40 px to 4 image widths),
  with a slow random modulation of its strength (+-35 %);
- ``regular``: a comb of such stripes with a raised-cosine-power band profile (power 1 to 6), a
  period of 6 to 70 px that drifts by up to +-12 % across the image (a chirp), per-band
  strength jitter;
- ``gaussian`` (horizontal): 1 to 12 stripes per 100 px, at random rows;
- ``tilted``: the stripes of a fan from a point source outside the image (angles -25 to 25
  degrees, spread up to 12 degrees), gently curved (the sheet bends in a scattering sample).

Modes: ``multiplicative`` (attenuation: ``clean * T``, ``T = prod(1 - a_i p_i)``, strengths
0.3 to 0.9) and ``additive`` (``clean + sum(+-a_i p_i)``, 0.08 to 0.35 of the [0, 1] range,
bright, dark or mixed).
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("regular", "gaussian", "tilted")
MODES = ("multiplicative", "additive")


def _smooth_noise(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """A smooth random curve of length ``n`` in about [-1, 1] (sum of a few random sines)."""
    x = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    for _ in range(4):
        period = rng.uniform(0.3, 2.0) * scale
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi))
    return out / max(1e-9, np.abs(out).max())


def _profile(d: np.ndarray, width: float, shape: str) -> np.ndarray:
    if shape == "lorentz":
        return 1.0 / (1.0 + (d / width) ** 2)
    return np.exp(-((np.abs(d) / width) ** 4))


def _along(rng: np.random.Generator, xs: np.ndarray, w: int) -> np.ndarray:
    """Strength along the stripe: exponential decay from an absorber, slowly modulated."""
    start = rng.uniform(-1.5 * w, 0.7 * w)
    length = math.exp(rng.uniform(math.log(40.0), math.log(4.0 * w)))
    onset = np.clip((xs - start) / 3.0, 0.0, 1.0)  # a soft edge at the absorber
    decay = np.exp(-np.clip(xs - start, 0.0, None) / length)
    mod = 1.0 + 0.35 * _smooth_noise(rng, xs.shape[-1], w)
    return onset * decay * mod


def stripe_field(
    shape: tuple[int, int], kind: str, rng: np.random.Generator
) -> list[tuple[np.ndarray, float]]:
    """The stripes of one image as ``(profile in [0, 1], relative strength)`` pairs."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cross = "lorentz" if rng.random() < 0.5 else "flat"
    stripes: list[tuple[np.ndarray, float]] = []
    if kind == "regular":
        period = math.exp(rng.uniform(math.log(6.0), math.log(70.0)))
        chirp = rng.uniform(-0.12, 0.12)
        power = rng.uniform(1.0, 6.0)
        # phase of the comb along y, with the period drifting linearly across the image
        phase = 2 * np.pi * (yy / period) * (1 + chirp * (yy / h)) + rng.uniform(0, 2 * np.pi)
        band = (0.5 * (1 + np.cos(phase))) ** power
        along = _along(rng, xx[0], w) if rng.random() < 0.5 else np.ones(w)
        n_bands = max(1, int(h / period) + 2)
        jitter = 1 + 0.3 * rng.uniform(-1, 1, n_bands)
        idx = np.clip(((phase - phase.min()) / (2 * np.pi)).astype(int), 0, n_bands - 1)
        stripes.append((band * along[None, :] * jitter[idx], 1.0))
        return stripes
    density = rng.uniform(1.0, 12.0)
    n = max(1, round(density * h / 100.0))
    if kind == "gaussian":
        for _ in range(n):
            y0 = rng.uniform(0, h)
            width = math.exp(rng.uniform(math.log(0.7), math.log(9.0)))
            p = _profile(yy - y0, width, cross) * _along(rng, xx[0], w)[None, :]
            stripes.append((p, rng.uniform(0.6, 1.0)))
        return stripes
    # tilted: a fan from a point source left of the image, gently curved
    centre = math.radians(rng.uniform(-25, 25))
    spread = math.radians(rng.uniform(0, 12))
    sx = -rng.uniform(0.5, 3.0) * w
    sy = h / 2 - math.tan(centre) * (w / 2 - sx) + rng.uniform(-0.3, 0.3) * h
    bend = rng.uniform(-1.0, 1.0) / (w * w) * 20.0  # up to ~20 px of sag over the width
    for _ in range(n):
        theta = centre + rng.uniform(-spread, spread) + rng.uniform(-0.5, 0.5) * (h / (w - sx))
        line = sy + math.tan(theta) * (xx - sx) + bend * (xx - w / 2) ** 2
        d = (yy - line) * math.cos(theta)
        width = math.exp(rng.uniform(math.log(0.7), math.log(9.0)))
        p = _profile(d, width, cross) * _along(rng, xx[0], w)[None, :]
        stripes.append((p, rng.uniform(0.6, 1.0)))
    return stripes


def log_transmission(
    stripes: list[tuple[np.ndarray, float]], rng: np.random.Generator
) -> np.ndarray:
    """``log T`` of the attenuation by ``stripes``, with a strength drawn from ``rng`` (0.3 to
    0.9); one stripe never takes away more than 95 %."""
    strength = rng.uniform(0.3, 0.9)
    log_t = np.zeros(stripes[0][0].shape)
    for p, rel in stripes:
        log_t += np.log1p(-np.clip(strength * rel * p, 0.0, 0.95))
    return log_t


def degrade(
    clean: np.ndarray, kind: str, mode: str, seed: int
) -> tuple[np.ndarray, dict[str, float | str]]:
    """Striped version of a clean [0, 1] image, clipped to [0, 1] as a detector would.

    Returns the striped float32 image and a short description of what was drawn.
    """
    if kind not in KINDS or mode not in MODES:
        raise ValueError(f"kind {kind!r} / mode {mode!r}")
    rng = np.random.default_rng(seed)
    stripes = stripe_field(clean.shape, kind, rng)
    if mode == "multiplicative":
        out = clean * np.exp(log_transmission(stripes, rng))
    else:
        strength = rng.uniform(0.08, 0.35)
        polarity = str(rng.choice(["bright", "dark", "mixed"]))
        field = np.zeros(clean.shape)
        for p, rel in stripes:
            sign = {"bright": 1.0, "dark": -1.0}.get(polarity, rng.choice([-1.0, 1.0]))
            field += sign * strength * rel * p
        out = clean + field
    info = {"kind": kind, "mode": mode, "seed": seed, "stripes": len(stripes)}
    return np.clip(out, 0.0, 1.0).astype(np.float32), info
