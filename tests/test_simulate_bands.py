"""The "bands" stripe kind: periodic banding with a random profile (simulate/bands.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore.destripe.data import normalise_mix, random_degradation
from napari_restore.simulate import StripeParams, simulate_stripes, stripe_kinds
from napari_restore.simulate.bands import MAX_CHIRP, sample_bands


def test_bands_are_registered_after_the_kinds_of_the_paper():
    assert stripe_kinds()[:4] == ("regular", "gaussian", "tilted", "bands")


def test_bands_are_seeded():
    clean = np.full((2, 96, 80), 1000, dtype=np.uint16)
    a = simulate_stripes(clean, kind="bands", seed=3).field
    b = simulate_stripes(clean, kind="bands", seed=3).field
    c = simulate_stripes(clean, kind="bands", seed=4).field
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("seed", range(8))
def test_bands_run_along_x_at_the_given_mean_spacing(seed):
    period = 16.0
    clean = np.full((512, 256), 1.0, dtype=np.float32)
    field = simulate_stripes(clean, kind="bands", period=period, seed=seed).field.astype(float)
    assert field.min() > -1.0 and field.max() < 1.0
    assert np.abs(field).max() > 0.05
    # Straight bands: the attenuation is a row profile times an envelope along x (rank 1).
    s = np.linalg.svd(field, compute_uv=False)
    assert s[1] < 1e-4 * s[0]
    # The profile repeats at about the period (the spacing drifts by at most MAX_CHIRP).
    profile = field[:, int(np.argmax(field.sum(axis=0)))]
    profile = profile - profile.mean()
    lags = np.arange(int(0.5 * period), int(1.6 * period))
    corr = [np.dot(profile[:-lag], profile[lag:]) / (profile.size - lag) for lag in lags]
    best = lags[int(np.argmax(corr))]
    assert (1 - MAX_CHIRP / 2) * period <= best <= (1 + MAX_CHIRP / 2) * period


def test_multiplicative_bands_dim_from_an_untouched_level_or_keep_the_mean():
    clean = np.full((512, 64), 1.0, dtype=np.float32)
    dimming = centred = 0
    for seed in range(16):
        field = simulate_stripes(clean, kind="bands", period=16.0, seed=seed).field
        if field.min() >= 0:  # bands that only dim, from an untouched level between them
            dimming += 1
            assert np.isclose(np.percentile(field, 1), 0, atol=0.02)
        else:  # fringes: as much brighter as darker, the mean intensity kept
            centred += 1
            rows = field[:, field.std(axis=0).argmax()]  # a column inside the banded extent
            assert abs(rows.mean()) < 0.1 * np.abs(rows).max()
    assert dimming and centred


def test_additive_bands_follow_the_polarity():
    clean = np.full((128, 64), 0.5, dtype=np.float32)
    dark = simulate_stripes(clean, kind="bands", mode="additive", polarity="dark", seed=1).field
    mixed = simulate_stripes(
        clean, kind="bands", mode="additive", polarity="mixed", amplitude=(0.2, 0.3), seed=1
    ).field
    assert dark.max() <= 0 < -dark.min()
    assert mixed.min() < 0 < mixed.max()


def test_the_training_sampler_draws_bands():
    rng = np.random.default_rng(0)
    params = [sample_bands(rng, {"kind": "bands", "mode": "multiplicative"}, (64, 64))]
    params += [sample_bands(rng, {"kind": "bands", "mode": "multiplicative"}, (64, 64))]
    assert all(isinstance(p, StripeParams) and 3.0 <= p.period <= 64.0 for p in params)
    clean = np.full((64, 64), 0.6, dtype=np.float32)
    mix = normalise_mix({"bands": 1.0})
    striped = random_degradation(np.random.default_rng(1), clean, mix, ("multiplicative",))
    assert striped.shape == clean.shape and striped.max() <= 0.6 + 1e-6
    assert striped.min() < 0.6 * 0.97  # some attenuation was drawn
