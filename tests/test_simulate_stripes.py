"""Stripe degradation model: the three paper types, both modes, 2D/3D, seeds, dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore._sample_data import load_sample
from napari_restore.errors import RestoreInputError
from napari_restore.simulate import StripeParams, simulate_stripes, stripe_plane
from napari_restore.simulate.stripes import striped_plane_at

KINDS = ("regular", "gaussian", "tilted")
MODES = ("additive", "multiplicative")


@pytest.fixture(scope="module")
def maize() -> np.ndarray:
    return load_sample("maize")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_types_and_modes_on_a_real_image(maize, kind, mode):
    result = simulate_stripes(maize, kind=kind, mode=mode, seed=3)
    assert result.image.shape == maize.shape and result.image.dtype == maize.dtype
    assert result.field.dtype == np.float32 and result.field.shape == maize.shape
    assert np.abs(result.field).max() > 0.05, "stripes are visible"
    clean = maize.astype(np.float64)
    if mode == "multiplicative":
        assert result.field.min() >= 0 and result.field.max() < 1
        expected = clean * (1 - result.field)
    else:
        assert result.field.max() <= 0, "default additive polarity is dark"
        expected = clean + result.field
    np.testing.assert_array_equal(result.image, np.clip(np.rint(expected), 0, 255))


def test_regular_stripes_are_periodic_bands_along_x():
    field = stripe_plane(
        (120, 64),
        StripeParams(kind="regular", period=10, width=(1.5, 1.5), amplitude=(0.5, 0.5)),
        np.random.default_rng(0),
    )
    assert np.ptp(field, axis=1).max() < 1e-6  # constant along every row
    profile = field[:, 0]
    np.testing.assert_allclose(profile[10:-10], np.roll(profile, 10)[10:-10], atol=1e-6)
    peaks = np.flatnonzero((profile > np.roll(profile, 1)) & (profile >= np.roll(profile, -1)))
    assert len(peaks[(peaks > 0) & (peaks < 119)]) in (11, 12)


def test_gaussian_stripes_full_length_are_horizontal_with_gaussian_profile():
    params = StripeParams(
        kind="gaussian",
        count=1,
        width=(2.0, 2.0),
        amplitude=(0.4, 0.4),
        mode="additive",
        polarity="bright",
    )
    field = stripe_plane((200, 50), params, np.random.default_rng(5))
    assert np.ptp(field, axis=1).max() < 1e-6
    col = field[:, 0].astype(np.float64)
    centre = int(np.argmax(col))
    assert col[centre] == pytest.approx(0.4, rel=0.05)
    # Gaussian of sigma 2: at +-2 px the value is exp(-1/2) of the peak (sub-pixel centre).
    ratio = (col[centre - 2] + col[centre + 2]) / (2 * col[centre])
    assert ratio == pytest.approx(np.exp(-0.5), abs=0.05)


def test_tilted_stripe_follows_its_angle_and_length_limits_it():
    params = StripeParams(
        kind="tilted",
        count=1,
        angle=(12.0, 12.0),
        width=(1.0, 1.0),
        amplitude=(0.9, 0.9),
        length=(40.0, 40.0),
    )
    # The first seed whose stripe centre falls well inside the image.
    field = next(
        f
        for f in (stripe_plane((400, 400), params, np.random.default_rng(s)) for s in range(50))
        if f[100:300, 100:300].max() > 0.85
    )
    cols = np.flatnonzero(field.max(axis=0) > 0.3)
    rows = field[:, cols].argmax(axis=0)
    slope = np.polyfit(cols, rows, 1)[0]
    assert slope == pytest.approx(np.tan(np.deg2rad(12.0)), abs=0.01)
    along = field.max(axis=0)
    assert along.max() > 0.85 and along.min() < 0.01, "length sigma 40 px ends the stripe"


def test_angles_stay_in_range():
    params = StripeParams(
        kind="tilted", count=1, width=(1.0, 1.0), amplitude=(0.9, 0.9), angle=(-20.0, -5.0)
    )
    for seed in range(5):
        field = stripe_plane((300, 300), params, np.random.default_rng(seed))
        cols = np.flatnonzero(field.max(axis=0) > 0.3)
        if cols.size < 50:
            continue
        slope = np.polyfit(cols, field[:, cols].argmax(axis=0), 1)[0]
        assert np.tan(np.deg2rad(-20.5)) <= slope <= np.tan(np.deg2rad(-4.5))


def test_count_and_density_control_the_number_of_stripes():
    base = StripeParams(kind="gaussian", width=(0.8, 0.8), amplitude=(0.5, 0.5))
    rng = np.random.default_rng
    assert stripe_plane((100, 30), base.replace(count=0), rng(0)).max() == 0
    energies = [stripe_plane((400, 30), base.replace(density=d), rng(0)).sum() for d in (1, 4, 16)]
    assert energies[0] < energies[1] < energies[2]


def test_seed_reproducible_and_distinct(maize):
    a = simulate_stripes(maize, kind="tilted", seed=1).image
    b = simulate_stripes(maize, kind="tilted", seed=1).image
    c = simulate_stripes(maize, kind="tilted", seed=2).image
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_integer_output_is_clipped_never_wrapped():
    bright = np.full((64, 64), 250, dtype=np.uint8)
    out = simulate_stripes(
        bright, mode="additive", polarity="bright", amplitude=(0.5, 0.9), intensity_range=200
    ).image
    assert out.dtype == np.uint8 and out.min() >= 250 and out.max() == 255
    dark = np.full((64, 64), 5, dtype=np.int16)
    out = simulate_stripes(dark, mode="additive", amplitude=(0.5, 0.9), intensity_range=200).image
    assert out.min() < 0, "int16 keeps negative values"
    out8 = simulate_stripes(
        dark.astype(np.uint8), mode="additive", amplitude=(0.5, 0.9), intensity_range=200
    ).image
    assert out8.min() == 0 and out8.max() <= 5


def test_float32_output_and_baseline(maize):
    offset = 100.0
    img = maize.astype(np.float32) + offset
    out = simulate_stripes(img, kind="gaussian", output_dtype="float32", baseline=offset)
    assert out.image.dtype == np.float32
    np.testing.assert_allclose(out.image, offset + (img - offset) * (1 - out.field), rtol=1e-6)
    flat = np.full((32, 32), offset, np.float32)
    np.testing.assert_allclose(simulate_stripes(flat, baseline=offset).image, offset)


def test_stacks_per_slice_or_same_pattern(rng):
    stack = rng.random((4, 40, 50)).astype(np.float32) + 1
    per = simulate_stripes(stack, kind="tilted", output_dtype="float32")
    assert not np.allclose(per.field[0], per.field[1])
    same = simulate_stripes(stack, kind="tilted", per_slice=False)
    for z in range(1, 4):
        np.testing.assert_array_equal(same.field[0], same.field[z])
    four_d = rng.random((2, 3, 20, 20)).astype(np.float32)
    assert simulate_stripes(four_d).image.shape == four_d.shape


def test_preview_plane_equals_full_run(rng):
    stack = rng.random((3, 2, 30, 40))
    params = StripeParams(kind="gaussian", mode="additive", seed=9)
    full = simulate_stripes(stack, params, output_dtype="float64", intensity_range=2.0)
    plane, field = striped_plane_at(stack, params, (2, 1), scale=2.0)
    np.testing.assert_allclose(plane, full.image[2, 1])
    np.testing.assert_allclose(field, full.field[2, 1])


def test_dask_input_is_read_plane_by_plane(rng):
    da = pytest.importorskip("dask.array")
    stack = rng.random((3, 32, 32)).astype(np.float32)
    lazy = da.from_array(stack, chunks=(1, 32, 32))
    np.testing.assert_array_equal(simulate_stripes(lazy).image, simulate_stripes(stack).image)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"kind": "diagonal"}, "kind"),
        ({"mode": "subtractive"}, "mode"),
        ({"width": (3.0, 1.0)}, "width"),
        ({"width": (0.0, 1.0)}, "positive"),
        ({"amplitude": (0.5, 1.5)}, "attenuates"),
        ({"angle": (-85.0, 0.0)}, "80 degrees"),
        ({"period": 0.0}, "period"),
        ({"density": -1.0}, "density"),
    ],
)
def test_bad_parameters_are_explained(changes, match):
    with pytest.raises(RestoreInputError, match=match):
        StripeParams(**changes)


def test_bad_images_are_explained():
    with pytest.raises(RestoreInputError, match="complex"):
        simulate_stripes(np.zeros((8, 8), complex))
    with pytest.raises(RestoreInputError, match="at least 2"):
        simulate_stripes(np.zeros(8))
