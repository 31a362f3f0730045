"""Poisson-Gaussian camera noise, for denoising demos and benchmarks.

The clean image is read as a photon flux map: it is scaled so that its mean is ``photons``
photo-electrons per pixel, shot noise is drawn from a Poisson distribution, Gaussian read noise
(in electrons) is added, and the result is converted to camera units with ``gain`` (ADU per
electron) and ``offset`` (ADU). This is the standard sCMOS/CCD model, e.g. Foi et al., IEEE TIP
17(10), 2008, and Mandracchia et al., Nat. Commun. 11, 94 (2020).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from napari_restore.core.arrays import (
    as_array_like,
    cast_clipped,
    check_real_image,
    resolve_output_dtype,
)
from napari_restore.errors import RestoreInputError


class NoiseResult(NamedTuple):
    """Result of :func:`simulate_noise`.

    Attributes
    ----------
    image : numpy.ndarray
        Noisy image in camera units (ADU), dtype as requested.
    expected : numpy.ndarray
        float32 noise-free expectation in the same units, ``gain * flux + offset``: the ground
        truth to compare a denoised result against.
    """

    image: np.ndarray
    expected: np.ndarray


# Bounds of the camera model (checked before the image is read): beyond any real camera, and
# within what the Poisson sampler can draw (it refuses means above ~1e19 electrons).
NOISE_LIMITS: dict[str, tuple[float, float]] = {
    "photons": (0.0, 1e6),  # mean photo-electrons per pixel (exclusive low)
    "read_noise": (0.0, 1e6),  # electrons rms
    "gain": (0.0, 1e6),  # ADU per electron (exclusive low)
    "offset": (-1e9, 1e9),  # ADU
}


def _number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def check_noise_params(
    photons: float, *, read_noise: float, gain: float, offset: float, seed: int | None
) -> None:
    """Raise :class:`RestoreInputError` for camera parameters outside :data:`NOISE_LIMITS`
    (NaN included) or a seed that is not a whole number >= 0 (or None)."""
    values = {"photons": photons, "read_noise": read_noise, "gain": gain, "offset": offset}
    for name, value in values.items():
        lo, hi = NOISE_LIMITS[name]
        strict = name in ("photons", "gain")
        ok = _number(value) and (lo < value if strict else lo <= value) and value <= hi
        if not ok:
            low = f"above {lo:g}" if strict else f"from {lo:g}"
            raise RestoreInputError(f"{name}={value!r}: give a number {low} up to {hi:g}.")
    if seed is not None and (
        not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0
    ):
        raise RestoreInputError(f"seed={seed!r}: give a whole number >= 0 or None.")


def simulate_noise(
    image: np.ndarray,
    photons: float = 2.0,
    *,
    read_noise: float = 1.0,
    gain: float = 1.0,
    offset: float = 100.0,
    seed: int | None = 0,
    output_dtype: str | np.dtype = "float32",
) -> NoiseResult:
    """Apply Poisson shot noise and Gaussian read noise to a clean image.

    Parameters
    ----------
    image : array_like
        Clean, background-subtracted image or stack (negative values are treated as 0).
    photons : float
        Mean number of detected photons (photo-electrons) per pixel over the whole image.
        Default 2 (a very noisy, low-light acquisition).
    read_noise : float
        Standard deviation of the Gaussian read noise, in electrons. Default 1.
    gain : float
        Camera gain in ADU per electron. Default 1.
    offset : float
        Camera offset (baseline) in ADU. Default 100.
    seed : int or None
        Seed of the random generator. Default 0.
    output_dtype : dtype or "input"
        dtype of the noisy image; integers are rounded and clipped. Default float32.

    Returns
    -------
    NoiseResult
        ``(image, expected)``: the noisy image and its noise-free expectation.
    """
    check_noise_params(photons, read_noise=read_noise, gain=gain, offset=offset, seed=seed)
    arr = as_array_like(image)
    check_real_image(arr)
    arr = np.asarray(arr)
    flux = np.clip(arr.astype(np.float64), 0, None)
    mean = flux.mean()
    if mean <= 0:
        raise RestoreInputError("The clean image is all zeros; there is no signal to make noisy.")
    flux *= photons / mean
    rng = np.random.default_rng(seed)
    electrons = rng.poisson(flux).astype(np.float64)
    if read_noise > 0:
        electrons += rng.normal(0.0, read_noise, size=flux.shape)
    noisy = gain * electrons + offset
    dtype = resolve_output_dtype(output_dtype, arr.dtype)
    expected = (gain * flux + offset).astype(np.float32)
    return NoiseResult(cast_clipped(noisy, dtype), expected)
