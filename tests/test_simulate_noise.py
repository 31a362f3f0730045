"""Poisson-Gaussian camera noise model."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore.errors import RestoreInputError
from napari_restore.simulate import simulate_noise


def test_photon_statistics_match_the_model():
    clean = np.full((400, 400), 7.0)
    pure = simulate_noise(clean, photons=3.0, read_noise=0.0, gain=1.0, offset=0.0, seed=1)
    assert pure.image.mean() == pytest.approx(3.0, rel=0.01)
    assert pure.image.var() == pytest.approx(3.0, rel=0.03)  # Poisson: variance = mean
    np.testing.assert_allclose(pure.expected, 3.0)

    cam = simulate_noise(clean, photons=3.0, read_noise=2.0, gain=2.5, offset=100.0, seed=1)
    assert cam.image.mean() == pytest.approx(2.5 * 3 + 100, rel=0.01)
    assert cam.image.var() == pytest.approx(2.5**2 * (3 + 2.0**2), rel=0.03)
    np.testing.assert_allclose(cam.expected, 2.5 * 3 + 100)


def test_structure_is_kept_in_the_expectation_and_seeded(rng):
    clean = rng.random((3, 32, 32))
    a = simulate_noise(clean, photons=1.5, seed=4)
    b = simulate_noise(clean, photons=1.5, seed=4)
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, simulate_noise(clean, photons=1.5, seed=5).image)
    flux = a.expected - 100.0
    assert flux.mean() == pytest.approx(1.5, rel=1e-5)
    np.testing.assert_allclose(flux / flux.max(), clean / clean.max(), atol=1e-5)


def test_integer_output_is_clipped():
    out = simulate_noise(np.full((64, 64), 1.0), photons=50000, offset=100, output_dtype="uint16")
    assert out.image.dtype == np.uint16 and out.image.max() <= 65535


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"photons": 0}, "photons"), ({"gain": 0}, "gain"), ({"read_noise": -1}, "read_noise")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(RestoreInputError, match=match):
        simulate_noise(np.ones((8, 8)), **{"photons": 2.0, **kwargs})


def test_all_zero_image():
    with pytest.raises(RestoreInputError, match="all zeros"):
        simulate_noise(np.zeros((8, 8)), photons=1.0)
