"""Degradation models: synthetic stripes (Wei et al. 2022) and Poisson-Gaussian camera noise."""

from napari_restore.simulate.noise import NoiseResult, simulate_noise
from napari_restore.simulate.stripes import (
    STRIPE_KINDS,
    STRIPE_MODES,
    StripeKindSpec,
    StripeParams,
    StripeResult,
    iter_striped_planes,
    register_stripe_kind,
    signed_amplitudes,
    simulate_stripes,
    stripe_kinds,
    stripe_plane,
)

__all__ = [
    "STRIPE_KINDS",
    "STRIPE_MODES",
    "NoiseResult",
    "StripeKindSpec",
    "StripeParams",
    "StripeResult",
    "iter_striped_planes",
    "register_stripe_kind",
    "signed_amplitudes",
    "simulate_noise",
    "simulate_stripes",
    "stripe_kinds",
    "stripe_plane",
]
