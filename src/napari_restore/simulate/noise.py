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

from napari_restore.core.arrays import cast_clipped, check_real_image, resolve_output_dtype
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
    arr = np.asarray(image)
    check_real_image(arr)
    if not (photons > 0 and np.isfinite(photons)):
        raise RestoreInputError(
            f"photons={photons!r}: give a positive mean photon count per pixel."
        )
    if read_noise < 0 or gain <= 0:
        raise RestoreInputError("read_noise must be >= 0 and gain > 0.")
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
