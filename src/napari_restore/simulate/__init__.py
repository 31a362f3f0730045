"""Degradation models: synthetic stripes (Wei et al. 2022) and Poisson-Gaussian camera noise."""

from napari_restore.simulate.noise import NoiseResult, simulate_noise
from napari_restore.simulate.stripes import (
    STRIPE_KINDS,
    STRIPE_MODES,
    StripeParams,
    StripeResult,
    iter_striped_planes,
    simulate_stripes,
    stripe_plane,
)

__all__ = [
    "STRIPE_KINDS",
    "STRIPE_MODES",
    "NoiseResult",
    "StripeParams",
    "StripeResult",
    "iter_striped_planes",
    "simulate_noise",
    "simulate_stripes",
    "stripe_plane",
]
