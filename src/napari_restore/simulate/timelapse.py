"""A realistic noisy fluorescence time-lapse with a known ground truth, for denoising tests.

Drifting, blinking Gaussian spots (vesicles, puncta) of varied size and brightness and curved
filaments (chains of diffraction-limited spots) that drift and wobble, over a dim, smooth
background; then Poisson shot noise at a low photon count and Gaussian read noise through
:func:`~napari_restore.simulate.noise.simulate_noise`.

Every structure is a sum of separable Gaussians, so a frame is one matrix product
``(Gy · a) @ Gxᵀ`` over all spots: a 64×256×256 stack takes well under a second.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from napari_restore.errors import RestoreInputError
from napari_restore.simulate.noise import simulate_noise


class TimelapseResult(NamedTuple):
    """Result of :func:`simulate_timelapse`.

    Attributes
    ----------
    noisy : numpy.ndarray
        ``(T, Y, X)`` noisy stack in camera units (ADU).
    clean : numpy.ndarray
        float32 noise-free expectation in the same units (the ground truth).
    """

    noisy: np.ndarray
    clean: np.ndarray


def _blinking(rng: np.random.Generator, n: int, frames: int, switch: float) -> np.ndarray:
    """``(frames, n)`` intensity factors in [0.15, 1]: two-state blinking, softened."""
    state = rng.random(n) < 0.7
    out = np.empty((frames, n))
    for t in range(frames):  # a loop over frames only; every spot switches in parallel
        flip = rng.random(n) < switch
        state = state ^ flip
        out[t] = np.where(state, 1.0, 0.15)
    # Two-frame smoothing: switching is not instantaneous on a camera frame.
    out[1:] = 0.6 * out[1:] + 0.4 * out[:-1]
    return out


def clean_timelapse(
    shape: tuple[int, int, int] = (64, 256, 256),
    *,
    n_spots: int | None = None,
    n_filaments: int | None = None,
    seed: int | None = 0,
) -> np.ndarray:
    """The noise-free structures of :func:`simulate_timelapse` (arbitrary units, float32)."""
    frames, h, w = (int(s) for s in shape)
    if frames < 1 or h < 8 or w < 8:
        raise RestoreInputError(f"shape={shape}: give (T, Y, X) with T >= 1 and Y, X >= 8.")
    rng = np.random.default_rng(seed)
    area = h * w
    n_spots = round(area / 550) if n_spots is None else int(n_spots)
    n_filaments = round(area / 4500) if n_filaments is None else int(n_filaments)
    t = np.arange(frames, dtype=np.float64)[:, None]

    # Spots: position + velocity·t + a random walk; sizes 1.2-4.5 px; log-normal brightness.
    pos0 = rng.uniform([0, 0], [h, w], size=(n_spots, 2))
    vel = rng.normal(0, 0.6, size=(n_spots, 2))
    walk = np.cumsum(rng.normal(0, 0.3, size=(frames, n_spots, 2)), axis=0)
    sy = rng.uniform(1.2, 4.5, n_spots)
    sx = sy * rng.uniform(0.7, 1.4, n_spots)
    cy = pos0[:, 0] + vel[:, 0] * t + walk[..., 0]
    cx = pos0[:, 1] + vel[:, 1] * t + walk[..., 1]
    amp = rng.lognormal(0.0, 0.5, n_spots) * _blinking(rng, n_spots, frames, 0.08)
    sy_all = np.broadcast_to(sy, (frames, n_spots))
    sx_all = np.broadcast_to(sx, (frames, n_spots))

    # Filaments: quadratic curves 20-70 px long, spots every pixel along them, sigma ~1.2 px.
    parts = [(cy, cx, sy_all, sx_all, amp)]
    for _ in range(n_filaments):
        length = rng.uniform(20, 70)
        n_pts = int(length)
        s = np.linspace(-0.5, 0.5, n_pts)
        angle = rng.uniform(0, np.pi)
        bend = rng.uniform(-0.4, 0.4) * length
        u = np.array([np.cos(angle), np.sin(angle)])
        v = np.array([-u[1], u[0]])
        centre = rng.uniform([0, 0], [h, w])
        drift = rng.normal(0, 0.4, size=2)
        period, phase = rng.uniform(15, 40), rng.uniform(0, 6)
        wobble = rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * t / period + phase)
        shape_pts = (s * length)[:, None] * u + (bend * (s**2 - 0.25))[:, None] * v  # (n_pts, 2)
        base = centre + drift * t  # (frames, 2)
        py = base[:, 0:1] + shape_pts[None, :, 0] + wobble * v[0]
        px = base[:, 1:2] + shape_pts[None, :, 1] + wobble * v[1]
        sig = np.full((frames, n_pts), rng.uniform(1.0, 1.6))
        pulse = 0.75 + 0.25 * np.sin(2 * np.pi * t / 25 + rng.uniform(0, 6))
        level = 0.45 * rng.lognormal(0.0, 0.3) * pulse
        parts.append((py, px, sig, sig, np.broadcast_to(level, (frames, n_pts))))

    cy = np.concatenate([p[0] for p in parts], axis=1)
    cx = np.concatenate([p[1] for p in parts], axis=1)
    sy = np.concatenate([p[2] for p in parts], axis=1)
    sx = np.concatenate([p[3] for p in parts], axis=1)
    amp = np.concatenate([p[4] for p in parts], axis=1)

    yy = np.arange(h, dtype=np.float32)[None, :, None]
    xx = np.arange(w, dtype=np.float32)[None, :, None]
    cy, cx, sy, sx, amp = (a[:, None, :].astype(np.float32) for a in (cy, cx, sy, sx, amp))
    gy = np.exp(-0.5 * ((yy - cy) / sy) ** 2)  # (T, Y, K)
    gx = np.exp(-0.5 * ((xx - cx) / sx) ** 2)  # (T, X, K)
    frames_ = np.matmul(gy * amp, gx.transpose(0, 2, 1))

    # Dim, smooth background: a slow gradient that breathes a little over time.
    by = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    bx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    g = rng.uniform(-1, 1, 2).astype(np.float32)
    background = 0.04 * (1.0 + 0.5 * (g[0] * by + g[1] * bx))
    breathe = (1.0 + 0.1 * np.sin(2 * np.pi * t[:, 0] / 50)).astype(np.float32)
    return (frames_ + background[None] * breathe[:, None, None]).astype(np.float32)


def simulate_timelapse(
    shape: tuple[int, int, int] = (64, 256, 256),
    *,
    photons: float = 1.5,
    read_noise: float = 1.0,
    gain: float = 1.0,
    offset: float = 100.0,
    n_spots: int | None = None,
    n_filaments: int | None = None,
    seed: int | None = 0,
    output_dtype: str | np.dtype = "float32",
) -> TimelapseResult:
    """A noisy fluorescence time-lapse and its noise-free truth.

    Parameters
    ----------
    shape : (int, int, int)
        ``(T, Y, X)``. Default (64, 256, 256).
    photons : float
        Mean detected photons per pixel over the stack (default 1.5: very low light).
    read_noise, gain, offset : float
        Camera model, see :func:`~napari_restore.simulate.noise.simulate_noise`.
    n_spots, n_filaments : int, optional
        Number of moving spots and filaments (default: scaled with the frame area).
    seed : int or None
        Seed of the structures and of the noise.
    output_dtype : dtype or "input"
        dtype of the noisy stack (default float32; e.g. ``"uint16"`` like a camera).

    Returns
    -------
    TimelapseResult
        ``(noisy, clean)``.
    """
    clean = clean_timelapse(shape, n_spots=n_spots, n_filaments=n_filaments, seed=seed)
    noise_seed = None if seed is None else seed + 7919
    result = simulate_noise(
        clean,
        photons,
        read_noise=read_noise,
        gain=gain,
        offset=offset,
        seed=noise_seed,
        output_dtype=output_dtype,
    )
    return TimelapseResult(result.image, result.expected)
