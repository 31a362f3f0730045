"""Degradation models: synthetic stripes (Wei et al. 2022, plus periodic banding) and
Poisson-Gaussian camera noise."""

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

# Registers the "bands" kind (after the built-in kinds, so they stay first in the registry).
from napari_restore.simulate import bands  # noqa: F401  isort: skip

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
