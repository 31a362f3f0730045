"""Data for the destriping network: intensity normalisation and random stripe degradation.

Normalisation (the same in training and inference)
--------------------------------------------------
Every source image or stack is mapped to ``(x - lo) / (hi - lo)`` with ``lo``, ``hi`` its 1st and
99.9th percentiles (:data:`NORM_PERCENTILES`), computed over the *whole* image or stack, never
per tile or patch, so that a plane keeps its brightness relative to the rest of the volume. The
1st percentile sits at the dark background (camera offset, which multiplicative shadows do not
attenuate); the 99.9th at the bright structures without being set by a few hot pixels. For big
stacks the percentiles come from a subsample: at most :data:`NORM_MAX_PLANES` evenly spaced
planes, read with a stride so that at most :data:`NORM_MAX_SAMPLES` values are used. A
network's output is mapped back with ``y * (hi - lo) + lo``.

Degradation (training pairs, drawn fresh for every patch)
---------------------------------------------------------
The stripes of :func:`napari_restore.simulate.stripes.stripe_plane` are applied in the
normalised domain: multiplicative ``x = c * (1 - f)`` (a shadow attenuates the signal above
the background), additive ``x = c + f`` (``f`` in units of the normalised range, i.e. of the
source image's robust range). The random parameters come from :func:`random_stripe_params` and
the kind's sampler in the stripe-kind registry;
with probability :data:`SECOND_FIELD_PROBABILITY` a second, independent stripe field of another
drawn type is combined with the first (real light-sheet images often mix broad faint shadows with
narrow dark lines).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_restore.destripe.shadows import shadow_field
from napari_restore.errors import RestoreInputError
from napari_restore.simulate.stripes import (
    STRIPE_KINDS,
    STRIPE_MODES,
    StripeParams,
    get_stripe_kind,
    stripe_kinds,
    stripe_plane,
)

NORM_PERCENTILES: tuple[float, float] = (1.0, 99.9)
NORM_MAX_PLANES = 16
NORM_MAX_SAMPLES = 4_000_000
SECOND_FIELD_PROBABILITY = 0.25
# Random brightness gain of a training patch (log-uniform): makes the network tolerant of the
# shift in the percentiles that the stripes themselves cause on the image being corrected.
GAIN_RANGE: tuple[float, float] = (0.75, 1.33)


def normalisation_description() -> dict[str, Any]:
    """How intensities are normalised, for model metadata."""
    return {
        "method": "percentile",
        "percentiles": list(NORM_PERCENTILES),
        "scope": "whole image or stack",
        "max_planes": NORM_MAX_PLANES,
        "max_samples": NORM_MAX_SAMPLES,
        "formula": "(x - lo) / (hi - lo); output * (hi - lo) + lo",
    }


def sample_plane_indices(lead: tuple[int, ...], max_planes: int = NORM_MAX_PLANES) -> list[int]:
    """Flat indices of at most ``max_planes`` evenly spaced planes of a stack (first and last
    included)."""
    n = int(np.prod(lead)) if lead else 1
    if n <= max_planes:
        return list(range(n))
    return sorted({round(v) for v in np.linspace(0, n - 1, max_planes)})


def intensity_range(
    image: Any,
    percentiles: tuple[float, float] = NORM_PERCENTILES,
    *,
    max_planes: int = NORM_MAX_PLANES,
    max_samples: int = NORM_MAX_SAMPLES,
) -> tuple[float, float]:
    """Robust intensity range ``(lo, hi)`` of an image or stack for normalisation.

    Parameters
    ----------
    image : array_like
        ``(Y, X)`` or ``(..., Y, X)``; numpy, zarr, memory-mapped TIFF (only sampled planes are
        read).
    percentiles : (float, float)
        Lower and upper percentile.
    max_planes, max_samples : int
        Subsampling bounds (see the module docstring).

    Returns
    -------
    (float, float)
        ``lo < hi``; a constant image gives ``(v, v + 1)`` so that it maps to 0.

    Raises
    ------
    RestoreInputError
        If the sampled values contain NaN or infinities.
    """
    shape = tuple(image.shape)
    lead, plane_shape = shape[:-2], shape[-2:]
    picks = sample_plane_indices(lead, max_planes)
    per_plane = max(1, max_samples // len(picks))
    stride = max(1, math.ceil(math.sqrt(plane_shape[0] * plane_shape[1] / per_plane)))
    values = []
    for flat in picks:
        index = np.unravel_index(flat, lead) if lead else ()
        plane = np.asarray(image[tuple(int(i) for i in index)])
        values.append(np.asarray(plane[::stride, ::stride], dtype=np.float64).ravel())
    sample = np.concatenate(values)
    if not np.isfinite(sample).all():
        raise RestoreInputError(
            "The image contains NaN or infinite values; replace them (e.g. with np.nan_to_num) "
            "before destriping."
        )
    lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    if not hi > lo:  # constant: a step that float32 still resolves at lo's magnitude
        hi = lo + max(1.0, abs(lo) * 2.0**-20)
    return lo, hi


def normalise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(values - lo) / (hi - lo)`` as float32."""
    return ((np.asarray(values, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)).astype(
        np.float32, copy=False
    )


def denormalise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of :func:`normalise` (float32)."""
    return (values * np.float32(hi - lo) + np.float32(lo)).astype(np.float32, copy=False)


def random_stripe_params(
    rng: np.random.Generator, kind: str, mode: str, shape: tuple[int, int]
) -> StripeParams:
    """Draw stripe parameters for one training patch.

    The strength is drawn here, the same way for every kind (ranges chosen to cover
    light-sheet stripes seen at the scale of a training patch): multiplicative attenuation
    ``[a, a + U(0.05, 0.4)]`` with ``a`` uniform in 0.05 to 0.5, capped at 0.9 (light-sheet
    shadows dim the signal by some 10 to 90 %); additive ``[a, a + U(0.02, 0.25)]`` with ``a``
    uniform in 0.02 to 0.25 of the normalised range, polarity dark, bright or mixed (equally
    likely). The rest comes from the kind's sampler in the registry
    (:class:`~napari_restore.simulate.stripes.StripeKindSpec`; the built-in ranges are in
    ``docs/destripe.md``).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    kind : str
        A registered stripe kind.
    mode : {"additive", "multiplicative"}
        Degradation mode.
    shape : (int, int)
        Patch shape (sets the length scale of fading stripes).

    Returns
    -------
    StripeParams
    """
    amplitude, polarity = _strength(rng, mode)
    common: dict[str, Any] = {
        "kind": kind,
        "mode": mode,
        "amplitude": amplitude,
        "polarity": polarity,
        "seed": None,
    }
    return get_stripe_kind(kind).sample(rng, common, shape)


def _strength(rng: np.random.Generator, mode: str) -> tuple[tuple[float, float], str]:
    """Strength range and polarity of one training field (see :func:`random_stripe_params`)."""
    if mode == "multiplicative":
        a_lo = rng.uniform(0.05, 0.5)
        return (a_lo, min(0.9, a_lo + rng.uniform(0.05, 0.4))), "dark"
    a_lo = rng.uniform(0.02, 0.25)
    return (a_lo, a_lo + rng.uniform(0.02, 0.25)), str(rng.choice(["dark", "bright", "mixed"]))


def _shadows(
    rng: np.random.Generator, mode: str, shape: tuple[int, ...], profiles: str = "classic"
) -> np.ndarray:
    """An absorber-shadow field: attenuation, or a signed additive field of the same shapes."""
    amplitude, polarity = _strength(rng, mode)
    field = shadow_field(rng, (int(shape[0]), int(shape[1])), amplitude, profiles)
    if mode == "multiplicative":
        return field
    sign = {"dark": -1.0, "bright": 1.0}.get(polarity, float(rng.choice([-1.0, 1.0])))
    return (sign * field).astype(np.float32)


def normalise_mix(mix: Mapping[str, float] | Sequence[float]) -> dict[str, float]:
    """Stripe mix as a mapping kind -> weight, checked against the registry.

    A sequence of as many numbers as there are built-in kinds is read in their order
    (regular, gaussian, tilted), as model files and command lines before the registry gave it.
    """
    if isinstance(mix, Mapping):
        weights = {str(k): float(v) for k, v in mix.items()}
    else:
        values = [float(v) for v in mix]
        if len(values) != len(STRIPE_KINDS):
            raise RestoreInputError(
                f"stripe mix {tuple(mix)!r}: give weights as kind=weight pairs, or "
                f"{len(STRIPE_KINDS)} weights for {', '.join(STRIPE_KINDS)}."
            )
        weights = dict(zip(STRIPE_KINDS, values, strict=True))
    unknown = [k for k in weights if k not in stripe_kinds()]
    if unknown:
        raise RestoreInputError(
            f"stripe mix: unknown kind(s) {', '.join(unknown)}; registered: "
            f"{', '.join(stripe_kinds())}."
        )
    values = np.asarray(list(weights.values()), dtype=np.float64)
    if (values < 0).any() or not np.isfinite(values).all() or not values.sum() > 0:
        raise RestoreInputError(
            f"stripe mix {weights!r}: give non-negative weights with a positive sum."
        )
    return weights


def check_mix(
    mix: Mapping[str, float] | Sequence[float], modes: Sequence[str]
) -> tuple[dict[str, float], tuple[str, ...]]:
    """Validate a stripe mix and the allowed modes.

    Returns
    -------
    (dict, tuple of str)
        Probabilities per kind (summing to 1, in the mix's order) and the modes.
    """
    weights = normalise_mix(mix)
    values = np.asarray(list(weights.values()), dtype=np.float64)
    probabilities = dict(zip(weights, values / values.sum(), strict=True))
    modes = tuple(dict.fromkeys(modes))
    if not modes or any(m not in STRIPE_MODES for m in modes):
        raise RestoreInputError(
            f"stripe modes {modes!r}: choose one or both of {', '.join(STRIPE_MODES)}."
        )
    return probabilities, modes


def random_degradation(
    rng: np.random.Generator,
    clean: np.ndarray,
    mix: Mapping[str, float],
    modes: Sequence[str],
    bright_fraction: float = 0.0,
    shadow_fraction: float = 0.0,
    shadow_profiles: str = "classic",
) -> np.ndarray:
    """Striped version of a normalised clean patch, with freshly drawn random stripes.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    clean : numpy.ndarray
        float32 ``(H, W)`` normalised patch.
    mix : mapping of str to float
        Probability of every stripe kind (sum 1), from :func:`check_mix`.
    modes : sequence of str
        Allowed modes; one is drawn (uniformly) per patch.
    bright_fraction : float
        Probability that a multiplicative stripe field brightens (gain ``1 + field``) instead of
        attenuating (``1 - field``): streaks where the sheet is stronger. A network trained on
        shadows alone learns that every correction brightens, and lifts a dense field of real
        streaks to its upper envelope. 0 draws no extra random number (older streams stay).
    shadow_fraction : float
        Probability that a field is one sheet's absorber shadows
        (:func:`~napari_restore.destripe.shadows.shadow_field`: sharp onsets, trailing off,
        fanned and bent) instead of a registered kind of the mix. 0 draws no extra random
        number.
    shadow_profiles : {"classic", "varied"}
        Cross-section family of those shadows (:func:`~napari_restore.destripe.shadows.
        shadow_field`).

    Returns
    -------
    numpy.ndarray
        float32 striped patch.
    """
    shape = clean.shape
    mode = str(modes[rng.integers(len(modes))])
    n_fields = 2 if rng.random() < SECOND_FIELD_PROBABILITY else 1
    out = clean
    kinds, p = list(mix), np.fromiter(mix.values(), dtype=np.float64)
    for _ in range(n_fields):
        if shadow_fraction > 0 and rng.random() < shadow_fraction:
            field = _shadows(rng, mode, shape, shadow_profiles)
        else:
            kind = kinds[int(rng.choice(len(kinds), p=p))]
            field = stripe_plane(shape, random_stripe_params(rng, kind, mode, shape), rng)
        if mode == "additive":
            out = out + field
        elif bright_fraction > 0 and rng.random() < bright_fraction:
            out = out * (1.0 + field)
        else:
            out = out * (1.0 - field)
    return out.astype(np.float32, copy=False)


def striped_batch(
    rng: np.random.Generator,
    clean: np.ndarray,
    mix: Mapping[str, float],
    modes: Sequence[str],
    clean_fraction: float = 0.0,
    bright_fraction: float = 0.0,
    shadow_fraction: float = 0.0,
    shadow_profiles: str = "classic",
) -> np.ndarray:
    """Each patch of ``clean`` (``(N, H, W)``) with fresh random stripes
    (:func:`random_degradation`, ``bright_fraction``, ``shadow_fraction`` and ``shadow_profiles``
    passed on), or
    left as it is with
    probability ``clean_fraction``.

    With ``clean_fraction == 0`` no extra random number is drawn, so streams of pairs made
    before stripe-free patches existed stay the same.
    """
    return np.stack(
        [
            c
            if clean_fraction > 0 and rng.random() < clean_fraction
            else random_degradation(
                rng, c, mix, modes, bright_fraction, shadow_fraction, shadow_profiles
            )
            for c in clean
        ]
    )
