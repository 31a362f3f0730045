"""Blind third stripe model for the destriping benchmark.

This module was written *blind*: without reading the project's other stripe generators
(the training simulator, the shadow/data code of the destriping network, or the benchmark's
"independent" stripe model). Its only purpose is to give the benchmark a stripe family that a
destriping network cannot have been tuned to. It is built from a generic picture of light-sheet
artefacts: an absorbing or scattering object casts a shadow that runs downstream along the
propagation axis (x, the second array axis), fills in with distance, and may come from either side
(dual-sided illumination); pivoted sheets and refraction tilt the shadows; scanned illumination
and camera readout give periodic bands.

Every kind draws unit-peak stripe maps ``s`` in [0, 1] that are combined as follows.

* ``multiplicative``: ``clean * prod_i (1 - a_i * s_i)``; depths ``a_i = 0.15 + 0.70 * Beta(1.3,
  1.6)`` in [0.15, 0.85] (mean ~0.47), so the transmission stays in (0, 1].
* ``additive``: ``clean + sum_i sign_i * b_i * s_i``; magnitudes ``b_i = 0.03 + 0.27 *
  Beta(1.2, 2.2)`` in [0.03, 0.30] (mean ~0.13). Per image, polarity is "dark" (p=0.3, all
  negative), "bright" (p=0.3, all positive) or "mixed" (p=0.4, random sign per stripe; for
  ``regular`` a zero-mean bipolar band pattern ``b * (2 s - 1)``).

Kinds (``h`` x ``w`` image, sizes in pixels):

* ``regular``: quasi-periodic horizontal bands. Period log-uniform in [3, min(40, h / 4)], linear
  chirp of +-15 % over the image height, phase random walk (smoothed noise, 0-0.12 cycles rms),
  band centres bent along x by a smooth offset of about 1-2 px at most. Band profile family,
  chosen uniformly: raised cosine to a power ``((1 + cos) / 2) ** n`` with n in {1, 2, 3, 4, 6};
  soft square wave (duty 0.25-0.65, logistic edges); asymmetric beta pulse
  ``f**p * (1 - f)**q`` (p, q in [0.6, 4]) of the phase fraction f. With p=0.3 a second, weaker
  (weight 0.3-0.6) component with 1.7-3.5x the period is added. Band strength varies row-wise by
  up to 40 % and along x by up to 50 % (smooth noise); with p=0.3 the pattern also fades in from
  one side (starting at 20-70 % strength).
* ``gaussian``: 3-13 (scaled by h / 256, at least 2) horizontal shadows at uniform random rows.
  Cross-section: generalised Gaussian ``exp(-0.5 |d / sigma| ** p)``, sigma log-uniform in
  [0.7, 7], exponent p uniform in [1.2, 3]. Each shadow starts at an origin (35 % off-image, i.e.
  full length; otherwise in the first 80 % of the image on its upstream side), with a 2-12 px
  smoothstep onset, and propagates to +x or -x (per-image side bias: left, right or both).
  Downstream it fades as ``exp(-distance / L)``, L log-uniform in [0.4 w, 5 w], widens linearly
  by 0-0.02 px per px, its centre wobbles smoothly by about 1-2 px at most and its strength
  ripples smoothly by up to 20 %. With p=0.25 it ends 0.2-0.7 w downstream of its origin (soft
  4-20 px end). Cross-sections are cut to zero where they fall below 1e-4.
* ``tilted``: 3-11 (scaled by h / 256, at least 2) straight shadows through random points of the
  image. Angles: a per-image pivot angle with |theta| uniform in [3, 20] degrees and random sign,
  plus a per-stripe N(0, 3) degree spread; with p=0.3 each stripe's sign is flipped at random
  (two sheets with opposite tilts). |theta| is clipped to [1.5, 35] degrees. Cross-section: split
  (asymmetric) Gaussian, sigma log-uniform in [0.8, 6] with the other side 0.5-2x as wide. Along
  the stripe: origin, onset, exponential fade and optional end as for ``gaussian`` (no widening),
  plus a sinusoidal strength ripple of 0-20 % with a 52-314 px wavelength.

The ``info`` dict records the kind, mode, polarity and the drawn parameters (rounded). Pure numpy
and scipy; uses only ``np.random.default_rng(seed)``, so results are deterministic per seed.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

KINDS = ("regular", "gaussian", "tilted")
MODES = ("multiplicative", "additive")
# |d / sigma| ** p beyond which exp(-0.5 |d / sigma| ** p) < 1e-4: profiles are cut there.
_CUT = 2.0 * np.log(1e4)


def _smooth_noise(rng: np.random.Generator, n: int, corr: float) -> np.ndarray:
    """Smooth zero-mean, unit-rms 1D noise with correlation length ``corr`` samples."""
    x = gaussian_filter1d(rng.standard_normal(n), max(corr, 0.5), mode="reflect")
    x -= x.mean()
    rms = float(np.sqrt(np.mean(x * x)))
    return x / rms if rms > 0 else x


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """Cubic smoothstep of ``t`` clipped to [0, 1]."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _n_stripes(rng: np.random.Generator, h: int, lo: int, hi: int) -> int:
    return max(2, round(int(rng.integers(lo, hi + 1)) * h / 256))


def _band_profile(rng: np.random.Generator, frac: np.ndarray) -> tuple[np.ndarray, dict]:
    """Unit-peak periodic profile of the phase fraction ``frac`` in [0, 1)."""
    family = ("cosine_power", "soft_square", "beta_pulse")[int(rng.integers(3))]
    if family == "cosine_power":
        n = int(rng.choice([1, 2, 3, 4, 6]))
        prof = ((1.0 + np.cos(2.0 * np.pi * frac)) / 2.0) ** n
        return prof, {"family": family, "power": n}
    if family == "soft_square":
        duty = float(rng.uniform(0.25, 0.65))
        soft = float(rng.uniform(0.03, 0.15))
        thr = np.cos(np.pi * duty)  # cos(2 pi f) > thr on a fraction `duty` of the period
        prof = 1.0 / (1.0 + np.exp(-(np.cos(2.0 * np.pi * frac) - thr) / soft))
        prof = prof / prof.max()
        return prof, {"family": family, "duty": round(duty, 2)}
    p, q = (float(v) for v in rng.uniform(0.6, 4.0, size=2))
    peak = p / (p + q)
    prof = (frac**p * (1.0 - frac) ** q) / (peak**p * (1.0 - peak) ** q)
    return prof, {"family": family, "p": round(p, 2), "q": round(q, 2)}


def _regular(rng: np.random.Generator, h: int, w: int) -> tuple[list[np.ndarray], dict]:
    y = np.arange(h, dtype=np.float64)[:, None]
    bend = rng.uniform(0.0, 1.5) * _smooth_noise(rng, w, w / 6)[None, :] / 2.0
    comps = []
    info: dict = {"components": []}
    n_comp = 2 if rng.random() < 0.3 else 1
    period0 = _log_uniform(rng, 3.0, max(3.5, min(40.0, h / 4)))
    for k in range(n_comp):
        period = period0 if k == 0 else period0 * rng.uniform(1.7, 3.5)
        chirp = rng.uniform(-0.15, 0.15)
        jitter = rng.uniform(0.0, 0.12) * _smooth_noise(rng, h, period)[:, None]
        yy = y + bend
        cycles = yy / period * (1.0 + chirp * (yy / h - 0.5)) + jitter + rng.random()
        prof, meta = _band_profile(rng, np.mod(cycles, 1.0))
        weight = 1.0 if k == 0 else float(rng.uniform(0.3, 0.6))
        comps.append(weight * prof)
        meta.update(period=round(float(period), 2), weight=round(weight, 2))
        info["components"].append(meta)
    s = comps[0] if n_comp == 1 else (comps[0] + comps[1]) / (1.0 + info["components"][1]["weight"])
    row_var = rng.uniform(0.0, 0.4)
    q = 1.0 - row_var * np.clip(0.5 + 0.25 * _smooth_noise(rng, h, period0 * 2), 0.0, 1.0)
    col_var = rng.uniform(0.0, 0.5)
    e = 1.0 - col_var * np.clip(0.5 + 0.25 * _smooth_noise(rng, w, w / 8), 0.0, 1.0)
    if rng.random() < 0.3:
        start = rng.uniform(0.2, 0.7)
        ramp = np.linspace(start, 1.0, w)
        e = e * (ramp if rng.random() < 0.5 else ramp[::-1])
        info["fade_from"] = round(float(start), 2)
    s = np.clip(s * q[:, None] * e[None, :], 0.0, 1.0)
    info["row_var"] = round(float(row_var), 2)
    info["col_var"] = round(float(col_var), 2)
    return [s], info


def _along_envelope(
    rng: np.random.Generator, u: np.ndarray, length: float
) -> tuple[np.ndarray, dict]:
    """Envelope of a shadow along its own axis ``u`` (0 = upstream image edge, increasing
    downstream, image spans about [0, length])."""
    # With p=0.35 the origin lies off-image upstream, giving a full-length shadow.
    off_image = rng.random() < 0.35
    u0 = -rng.uniform(0.05, 0.5) * length if off_image else rng.uniform(0.0, 0.8) * length
    onset = rng.uniform(2.0, 12.0)
    decay = _log_uniform(rng, 0.4 * length, 5.0 * length)
    d = u - u0
    env = _smoothstep(d / onset) * np.exp(-np.maximum(d, 0.0) / decay)
    meta = {"origin": round(float(u0), 1), "decay": round(float(decay), 1)}
    if rng.random() < 0.25:
        stop = u0 + rng.uniform(0.2, 0.7) * length
        soft = rng.uniform(4.0, 20.0)
        env = env * (1.0 - _smoothstep((u - stop) / soft))
        meta["stop"] = round(float(stop), 1)
    return env, meta


def _sides(rng: np.random.Generator) -> float:
    """Per-image probability that a shadow propagates towards +x."""
    return float(rng.choice([1.0, 0.0, 0.5]))


def _gaussian(rng: np.random.Generator, h: int, w: int) -> tuple[list[np.ndarray], dict]:
    y = np.arange(h, dtype=np.float64)[:, None]
    x = np.arange(w, dtype=np.float64)
    p_right = _sides(rng)
    maps, stripes = [], []
    for _ in range(_n_stripes(rng, h, 3, 13)):
        row = rng.uniform(0.0, h - 1.0)
        sigma = _log_uniform(rng, 0.7, 7.0)
        expo = rng.uniform(1.2, 3.0)
        to_right = rng.random() < p_right
        u = x if to_right else (w - 1.0) - x
        env, meta = _along_envelope(rng, u, float(w))
        dist = np.maximum(u - meta["origin"], 0.0)
        widen = rng.uniform(0.0, 0.02)
        sig_x = sigma + widen * dist
        centre = row + rng.uniform(0.0, 1.5) * _smooth_noise(rng, w, w / 5) / 2.0
        ripple = 1.0 + rng.uniform(0.0, 0.2) * np.clip(_smooth_noise(rng, w, w / 20), -2, 2) / 2
        along = np.clip(env * ripple, 0.0, 1.0)
        # Only rows where the profile exceeds ~1e-4 are computed (keeps 256x256 well under 50 ms).
        reach = float(sig_x.max()) * _CUT ** (1.0 / expo) + 3.0
        r0, r1 = max(0, int(row - reach)), min(h, int(row + reach) + 2)
        d = (y[r0:r1] - centre[None, :]) / sig_x[None, :]
        m = np.zeros((h, w))
        m[r0:r1] = np.exp(-0.5 * np.abs(d) ** expo) * along[None, :]
        maps.append(m)
        meta.update(
            row=round(float(row), 1),
            sigma=round(float(sigma), 2),
            exponent=round(float(expo), 2),
            direction="+x" if to_right else "-x",
        )
        stripes.append(meta)
    return maps, {"stripes": stripes}


def _tilted(rng: np.random.Generator, h: int, w: int) -> tuple[list[np.ndarray], dict]:
    base = np.deg2rad(rng.uniform(3.0, 20.0)) * (1.0 if rng.random() < 0.5 else -1.0)
    crossed = bool(rng.random() < 0.3)
    p_right = _sides(rng)
    lo, hi = np.deg2rad(1.5), np.deg2rad(35.0)
    maps, stripes = [], []
    for _ in range(_n_stripes(rng, h, 3, 11)):
        theta = base + np.deg2rad(rng.normal(0.0, 3.0))
        if crossed and rng.random() < 0.5:
            theta = -theta
        theta = float(np.sign(theta) * np.clip(abs(theta), lo, hi)) or lo
        yc, xc = rng.uniform(0.0, h - 1.0), rng.uniform(0.0, w - 1.0)
        sigma = _log_uniform(rng, 0.8, 6.0)
        ratio = rng.uniform(0.5, 2.0)
        to_right = rng.random() < p_right
        c, s = np.cos(theta), np.sin(theta)
        # Rows the stripe can reach (profile above ~1e-4): its centre line y(x) +- reach.
        reach = np.sqrt(_CUT) * sigma * max(1.0, ratio) / c + 1.0
        ends = yc + (np.array([0.0, w - 1.0]) - xc) * np.tan(theta)
        r0, r1 = max(0, int(ends.min() - reach)), min(h, int(ends.max() + reach) + 2)
        m = np.zeros((h, w))
        yy, xx = np.mgrid[r0:r1, 0:w].astype(np.float64)
        # u along the stripe (x-like), v across it (y-like); v = 0 on the stripe's centre line.
        u = (xx - xc) * c + (yy - yc) * s
        v = -(xx - xc) * s + (yy - yc) * c
        # Shift u so the upstream image edge sits near 0 along the propagation direction.
        u = u + xc / c if to_right else (w - 1.0 - xc) / c - u
        sig = np.where(v < 0.0, sigma, sigma * ratio)
        cross = np.exp(-0.5 * (v / sig) ** 2)
        env, meta = _along_envelope(rng, u, float(w))
        amp = rng.uniform(0.0, 0.2)
        wave = rng.uniform(0.02, 0.12)
        ripple = 1.0 + amp * np.sin(wave * u + rng.uniform(0.0, 2.0 * np.pi))
        m[r0:r1] = cross * np.clip(env * ripple, 0.0, 1.0)
        maps.append(m)
        meta.update(
            angle_deg=round(float(np.rad2deg(theta)), 1),
            centre=(round(float(yc), 1), round(float(xc), 1)),
            sigma=round(float(sigma), 2),
            asymmetry=round(float(ratio), 2),
            direction="+x" if to_right else "-x",
        )
        stripes.append(meta)
    return maps, {"stripes": stripes, "crossed": crossed}


def degrade(clean: np.ndarray, kind: str, mode: str, seed: int) -> tuple[np.ndarray, dict]:
    """Add blind-model stripes to a clean image.

    Parameters
    ----------
    clean : np.ndarray
        2D float image scaled to [0, 1].
    kind : str
        One of ``KINDS``: "regular", "gaussian" or "tilted".
    mode : str
        One of ``MODES``: "multiplicative" (attenuation) or "additive" (signed offset).
    seed : int
        Seed for ``np.random.default_rng``; the output is deterministic per seed.

    Returns
    -------
    striped : np.ndarray
        float32 image of the same shape, clipped to [0, 1].
    info : dict
        Kind, mode, polarity and the drawn stripe parameters.
    """
    img = np.asarray(clean, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 2:
        raise ValueError(f"clean must be a 2D image, got shape {img.shape}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rng = np.random.default_rng(seed)
    h, w = img.shape
    maps, info = {"regular": _regular, "gaussian": _gaussian, "tilted": _tilted}[kind](rng, h, w)
    info = {"kind": kind, "mode": mode, **info}
    if mode == "multiplicative":
        depths = 0.15 + 0.70 * rng.beta(1.3, 1.6, size=len(maps))
        trans = np.ones_like(img)
        for a, s in zip(depths, maps, strict=True):
            trans *= 1.0 - a * s
        out = img * trans
        info["depths"] = [round(float(a), 2) for a in depths]
    else:
        polarity = str(rng.choice(["dark", "bright", "mixed"], p=[0.3, 0.3, 0.4]))
        mags = 0.03 + 0.27 * rng.beta(1.2, 2.2, size=len(maps))
        field = np.zeros_like(img)
        if kind == "regular":
            s = maps[0]
            sign = {"dark": -1.0, "bright": 1.0}.get(polarity)
            field += mags[0] * (sign * s if sign is not None else 2.0 * s - 1.0)
            signs = [1.0 if sign is None else sign]  # "mixed": bipolar pattern of amplitude b
        else:
            base = {"dark": -1.0, "bright": 1.0}
            signs = [
                base.get(polarity, 1.0 if rng.random() < 0.5 else -1.0) for _ in range(len(maps))
            ]
            for b, sg, s in zip(mags, signs, maps, strict=True):
                field += sg * b * s
        out = img + field
        info["polarity"] = polarity
        info["amplitudes"] = [round(float(sg * b), 3) for sg, b in zip(signs, mags, strict=True)]
    return np.clip(out, 0.0, 1.0).astype(np.float32), info
