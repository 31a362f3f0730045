"""Synthetic noisy time-lapse: seeded, low-light, moving and blinking structures."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore.errors import RestoreInputError
from napari_restore.simulate.timelapse import clean_timelapse, simulate_timelapse


def test_seeded_shapes_units_and_photon_level() -> None:
    a = simulate_timelapse((12, 40, 48), photons=1.5, seed=4)
    b = simulate_timelapse((12, 40, 48), photons=1.5, seed=4)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    assert a.noisy.shape == a.clean.shape == (12, 40, 48)
    assert a.noisy.dtype == a.clean.dtype == np.float32
    # gain 1, offset 100: the truth holds 1.5 photons per pixel on average above the offset.
    assert a.clean.mean() - 100 == pytest.approx(1.5, rel=1e-4)
    # Shot noise dominates: variance of the residual ~ mean photons + read noise variance.
    assert np.var(a.noisy - a.clean) == pytest.approx(1.5 + 1.0, rel=0.1)
    c = simulate_timelapse((12, 40, 48), seed=5)
    assert not np.array_equal(a.clean, c.clean)
    assert simulate_timelapse((4, 16, 16), output_dtype="uint16").noisy.dtype == np.uint16


def test_structures_move_and_blink_but_stay_correlated() -> None:
    clean = clean_timelapse((30, 64, 64), seed=1)
    corr_next = np.corrcoef(clean[10].ravel(), clean[11].ravel())[0, 1]
    corr_far = np.corrcoef(clean[0].ravel(), clean[29].ravel())[0, 1]
    assert 0.7 < corr_next < 0.999  # neighbouring frames: similar, never identical
    assert corr_far < corr_next - 0.2  # things drift away over time
    # Sparse bright structures on a dim background, as in fluorescence.
    assert np.percentile(clean, 99) > 10 * np.median(clean)


def test_invalid_shapes_are_refused() -> None:
    with pytest.raises(RestoreInputError, match="shape"):
        clean_timelapse((0, 32, 32))
