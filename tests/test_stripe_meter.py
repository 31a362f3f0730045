"""The no-reference stripe meter on constructed cases with a known answer."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import fft as sfft
from scipy import ndimage

from napari_restore.errors import RestoreInputError
from napari_restore.simulate import simulate_stripes
from napari_restore.stripe_meter import (
    foreground_mask,
    measure_stripes,
    measure_stripes_steps,
    periodic_spectrum,
    stripe_rows,
    write_stripe_csv,
)


def cells(rng: np.random.Generator, shape=(192, 224)) -> np.ndarray:
    """Blobby fluorescence-like content on a dark background, with some noise."""
    img = np.zeros(shape)
    ys = rng.integers(0, shape[0], 60)
    xs = rng.integers(0, shape[1], 60)
    img[ys, xs] = rng.uniform(500, 1500, 60)
    img = ndimage.gaussian_filter(img, 4) * 60 + 100
    return img + rng.normal(0, 5, shape)


def horizontal_stripes(rng: np.random.Generator, shape, amplitude=80.0) -> np.ndarray:
    """Full-width stripes: a random smooth profile across, constant along x."""
    profile = ndimage.gaussian_filter1d(rng.normal(0, 1, shape[0]), 1.2)
    return np.broadcast_to(amplitude * profile / profile.std()[None], shape[::-1]).T.copy()


def tilted_stripes(shape, angle_deg, period=9.0, amplitude=60.0) -> np.ndarray:
    """Stripes along a line at ``angle_deg`` from x (the row grows with the column when > 0)."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    t = np.radians(angle_deg)
    across = y * np.cos(t) - x * np.sin(t)
    return amplitude * np.sin(2 * np.pi * across / period)


@pytest.fixture
def clean(rng):
    return cells(rng)


@pytest.fixture
def striped(clean, rng):
    return clean + horizontal_stripes(rng, clean.shape)


def test_periodic_spectrum_matches_an_explicit_boundary_image(rng):
    u = rng.random((40, 52)) + np.linspace(0, 5, 52)[None]  # a ramp: big border jumps
    m, n = u.shape
    v = np.zeros_like(u)
    v[0] += u[-1] - u[0]
    v[-1] += u[0] - u[-1]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    q = np.arange(m)[:, None]
    r = np.arange(n)[None]
    denom = 2 * np.cos(2 * np.pi * q / m) + 2 * np.cos(2 * np.pi * r / n) - 4
    denom[0, 0] = 1
    s_hat = sfft.fft2(v) / denom
    s_hat[0, 0] = 0
    expected = sfft.fft2(u) - s_hat  # Moisan (2011), eq. for the periodic component
    np.testing.assert_allclose(periodic_spectrum(u), expected[:, : n // 2 + 1], atol=1e-9)
    # The periodic component of a plane constant along x has power only where k_x = 0.
    rows_only = np.repeat(rng.random((40, 1)), 52, axis=1) + np.linspace(0, 3, 40)[:, None]
    spec = periodic_spectrum(rows_only)
    assert np.abs(spec[:, 1:]).max() < 1e-9 * np.abs(spec).max()


def test_stripes_removed_exactly(clean, striped):
    m = measure_stripes(striped, clean)
    assert m.direction == "horizontal"
    assert m.angle == 0.0
    # Not exactly 1: the rings are chosen where the input's wedge stands out, and the content's
    # own fluctuations on those rings count as stripes in both images.
    assert m.stripe_removed > 0.97
    assert m.structure_changed < 1e-9  # the removed component lies wholly in the wedge
    assert m.stripes_found and m.stripe_contrast > 0.1
    assert m.verdict.startswith("stripes reduced by 100 %, structure changed 0 %")


def test_vertical_stripes_are_found_and_removed(clean, striped):
    m = measure_stripes(striped.T, clean.T)
    assert m.direction == "vertical" and m.angle == 0.0
    assert m.stripe_removed > 0.97 and m.structure_changed < 1e-9
    forced = measure_stripes(striped.T, clean.T, direction="horizontal")
    assert forced.direction == "horizontal"
    assert math.isnan(forced.stripe_removed)  # no horizontal stripes in this image


@pytest.mark.parametrize("angle", [-12.0, 7.0])
def test_tilted_stripe_angle_is_found(clean, angle):
    striped = clean + tilted_stripes(clean.shape, angle)
    m = measure_stripes(striped, clean)
    assert m.direction == "horizontal"
    assert m.angle == pytest.approx(angle, abs=0.5)
    assert m.stripe_removed > 0.85
    # A tilted pattern is not periodic across the borders; the small rest leaks out of the wedge.
    assert m.structure_changed < 0.01


def test_partial_removal_scales_as_energy(clean, striped):
    half = clean + 0.5 * (striped - clean)  # half the amplitude is a quarter of the energy
    m = measure_stripes(striped, half)
    assert m.stripe_removed == pytest.approx(0.75, abs=0.05)
    assert m.structure_changed < 1e-9


def test_blur_changes_structure_and_removes_stripes_only_partly(striped):
    m = measure_stripes(striped, ndimage.gaussian_filter(striped, 2.0))
    assert m.structure_changed > 0.01
    assert 0.05 < m.stripe_removed < 0.95


def test_identity_is_zero_zero(striped):
    m = measure_stripes(striped, striped.copy())
    assert m.stripe_removed == 0.0
    assert m.structure_changed == 0.0
    assert m.median_change == 0.0 and m.mean_change == 0.0
    assert m.verdict == "stripes reduced by 0 %, structure changed 0 %, intensity +0 %"


def test_brightness_offset_moves_only_the_intensity(striped):
    m = measure_stripes(striped, striped + 50.0)
    assert m.stripe_removed == pytest.approx(0.0, abs=1e-6)
    assert m.structure_changed == pytest.approx(0.0, abs=1e-9)
    fg = foreground_mask(striped)
    assert 0.01 < fg.mean() < 0.9  # the blobs, not the dark background
    assert m.median_change == pytest.approx(50.0 / np.median(striped[fg]), rel=1e-9)
    assert m.mean_change == pytest.approx(50.0 / np.mean(striped[fg]), rel=1e-9)
    assert "intensity +" in m.verdict


def test_foreground_intensity_change_is_exact_for_a_gain(striped):
    # A gain g scales every intensity, so the foreground median and mean move by g - 1 ...
    m = measure_stripes(striped, striped * 1.1)
    assert m.median_change == pytest.approx(0.1, rel=1e-9)
    assert m.mean_change == pytest.approx(0.1, rel=1e-9)
    # ... and every energy by g^2 (documented: the meter measures energies, not contrast).
    assert m.stripe_removed == pytest.approx(1 - 1.1**2, rel=1e-4)


def test_clean_input_has_no_stripe_reading(clean):
    m = measure_stripes(clean, ndimage.gaussian_filter(clean, 1.0))
    assert not m.stripes_found and math.isnan(m.stripe_removed)
    assert m.verdict.startswith("no stripes found in the input, structure changed")
    assert m.as_dict()["stripe_removed"] is None


def test_stacks_are_measured_per_plane(clean, striped):
    half = clean + 0.5 * (striped - clean)
    inp = np.stack([striped, striped, striped])
    out = np.stack([clean, striped, half])
    steps = measure_stripes_steps(inp, out)
    assert [next(steps) for _ in range(3)] == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(StopIteration) as stop:
        next(steps)
    m = stop.value.value
    sr = m.per_plane["stripe_removed"]
    assert sr[0] > 0.97 and sr[1] == 0.0 and sr[2] == pytest.approx(0.75, abs=0.05)
    # Pooled over planes: the energy-weighted mean of the planes.
    assert m.stripe_removed == pytest.approx(sr.mean(), abs=1e-6)
    assert m.plane_directions == ("horizontal",) * 3
    assert m.shape == (3, *clean.shape)
    single = measure_stripes(striped, half)
    assert sr[2] == pytest.approx(single.stripe_removed, rel=1e-9)

    rows = stripe_rows("in", "out", m)
    assert [r["plane"] for r in rows] == ["all", 0, 1, 2]
    assert rows[2]["stripe_removed_pct"] == 0.0


def test_dask_stacks_give_the_same_numbers(clean, striped):
    da = pytest.importorskip("dask.array")
    inp = np.stack([striped, striped])
    out = np.stack([clean, striped])
    lazy = measure_stripes(da.from_array(inp, chunks=(1, *clean.shape)), da.from_array(out))
    eager = measure_stripes(inp, out)
    assert lazy.stripe_removed == eager.stripe_removed
    np.testing.assert_array_equal(lazy.per_plane["angle"], eager.per_plane["angle"])


def test_integer_input_and_float_output(clean, striped):
    x = np.clip(striped, 0, 65535).astype(np.uint16)
    m = measure_stripes(x, clean.astype(np.float32))
    assert m.stripe_removed > 0.95


def test_csv_and_dict(tmp_path, clean, striped):
    m = measure_stripes(striped, clean)
    path = write_stripe_csv(tmp_path / "meter.csv", stripe_rows("raw", "clean", m))
    with open(path, newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["input"] == "raw" and row["restored"] == "clean" and row["plane"] == "all"
    assert float(row["stripe_removed_pct"]) == pytest.approx(100 * m.stripe_removed, abs=1e-3)
    assert row["direction"] == "horizontal" and row["verdict"] == m.verdict
    d = m.as_dict()
    assert d["verdict"] == m.verdict and d["shape"] == list(clean.shape)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.zeros((32, 32)), np.zeros((32, 33)), "Shape mismatch"),
        (np.full((32, 32), np.nan), np.zeros((32, 32)), "NaN"),
        (np.zeros((32, 32)), np.full((32, 32), np.inf), "NaN or infinite"),
        (np.zeros((32, 32, 3)), np.zeros((32, 32, 3)), "RGB"),
        (np.zeros((0, 32)), np.zeros((0, 32)), "empty"),
        (np.zeros((8, 32)), np.zeros((8, 32)), "at least 16 x 16"),
        (np.zeros(32), np.zeros(32), "at least 16 x 16"),
        (np.zeros((32, 32), complex), np.zeros((32, 32)), "complex"),
        (np.array([["a"] * 32] * 32), np.zeros((32, 32)), "numeric data"),
    ],
)
def test_bad_input_is_refused_clearly(a, b, message):
    with pytest.raises(RestoreInputError, match=message):
        measure_stripes(a, b)


def test_bad_options_are_refused(striped):
    with pytest.raises(RestoreInputError, match="direction"):
        measure_stripes(striped, striped, direction="diagonal")
    with pytest.raises(RestoreInputError, match="max_angle"):
        measure_stripes(striped, striped, max_angle=60)
    with pytest.raises(RestoreInputError, match=r"domain='sqrt': linear .* or log"):
        measure_stripes(striped, striped, domain="sqrt")


def test_nan_in_a_later_plane_is_refused(striped):
    stack = np.stack([striped, striped])
    bad = stack.copy()
    bad[1, 3, 3] = np.nan
    with pytest.raises(RestoreInputError, match="restored image contains NaN"):
        measure_stripes(stack, bad)


def test_simulator_stripes_are_measured(clean):
    for kind in ("regular", "gaussian"):
        striped, _ = simulate_stripes(clean, kind=kind, mode="additive", seed=3)
        m = measure_stripes(striped, clean)
        assert m.direction == "horizontal"
        assert m.stripe_removed > 0.95


def test_max_planes_measures_evenly_spaced_planes(clean, striped):
    inp = np.stack([striped] * 5)
    out = np.stack([clean, striped, clean, striped, clean])
    m = measure_stripes(inp, out, max_planes=3)
    assert m.planes == (0, 2, 4)
    assert len(m.per_plane["stripe_removed"]) == 3
    assert m.stripe_removed > 0.97  # only the restored planes were measured
    assert [r["plane"] for r in stripe_rows("a", "b", m)] == ["all", 0, 2, 4]


def test_meter_imports_neither_torch_nor_a_gui():
    import subprocess
    import sys

    code = (
        "import sys, napari_restore.stripe_meter;"
        "bad = [m for m in ('napari', 'qtpy', 'magicgui', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_log_domain_reads_exact_removal_of_attenuation_stripes_as_stripes_only(clean, rng):
    """Attenuation stripes multiply: removing them exactly takes away the stripe field times
    the image, part of which lies outside the wedge. The linear domain calls that structure;
    in the log domain the removed component is the (additive) stripe field itself."""
    profile = ndimage.gaussian_filter1d(rng.normal(0, 1, clean.shape[0]), 1.2)
    field = np.clip(0.35 + 0.25 * profile / profile.std(), 0.0, 0.8)[:, None]
    shadowed = clean * (1 - field)
    linear = measure_stripes(shadowed, clean)
    log = measure_stripes(shadowed, clean, domain="log")
    assert (linear.domain, log.domain) == ("linear", "log")
    assert log.stripe_removed > 0.97
    assert log.structure_changed < 0.005 < linear.structure_changed
    # The intensity changes are measured on the intensities in both domains.
    assert log.median_change == pytest.approx(linear.median_change)
    assert log.as_dict()["domain"] == "log"
    # Doing nothing removes nothing; a blur shows as structure changed.
    assert measure_stripes(shadowed, shadowed, domain="log").stripe_removed == pytest.approx(0)
    blurred = measure_stripes(shadowed, ndimage.gaussian_filter(shadowed, 2.0), domain="log")
    assert blurred.structure_changed > max(0.01, 4 * log.structure_changed)


def coarse_and_fine(shape=(256, 256)) -> tuple[np.ndarray, np.ndarray]:
    """Stripes at the sample's scale (a sinusoid across y of a quarter of the plane's period:
    ring 4) and fine ones (period 9 px)."""
    y = np.arange(shape[0], dtype=float)[:, None] * np.ones(shape[1])[None]
    coarse = 120.0 * np.sin(2 * np.pi * y / (shape[0] / 4))
    fine = 40.0 * np.sin(2 * np.pi * y / 9.0)
    return coarse, fine


def test_fine_stripes_are_told_apart_from_the_sample_scale(rng):
    clean = cells(rng, (256, 256))
    coarse, fine = coarse_and_fine(clean.shape)
    # Only the fine stripes are removed: the whole reads low, the fine part complete.
    m = measure_stripes(clean + coarse + fine, clean + coarse)
    assert m.coarse_share > 0.5
    # (not 1: the content's own fluctuations on the stripe rings count in both images)
    assert m.fine_stripe_removed > 0.95
    assert m.stripe_removed < 0.25  # the coarse stripes, most of the energy, are still there
    assert m.verdict.startswith(
        f"stripes reduced by {round(100 * m.stripe_removed)} % (finer than 1/8 of the image: "
        f"{round(100 * m.fine_stripe_removed)} %), structure changed 0 %"
    )
    assert m.as_dict()["fine_stripe_removed"] == pytest.approx(m.fine_stripe_removed)
    assert stripe_rows("in", "out", m)[0]["fine_stripe_removed_pct"] > 95
    # Only the coarse ones are removed: the fine part reads as left in place.
    left = measure_stripes(clean + coarse + fine, clean + fine)
    assert left.fine_stripe_removed < 0.05 and left.stripe_removed > 0.5
    assert "(finer than 1/8 of the image: " in left.verdict
    # Everything removed: no note, the two agree.
    whole = measure_stripes(clean + coarse + fine, clean)
    assert whole.stripe_removed > 0.95 and whole.fine_stripe_removed > 0.95
    assert "finer than" not in whole.verdict


def test_fine_stripes_alone_have_no_coarse_share(clean, striped):
    tilted = clean + tilted_stripes(clean.shape, 8.0)
    m = measure_stripes(tilted, clean)
    assert m.coarse_share < 0.05
    assert m.fine_stripe_removed == pytest.approx(m.stripe_removed, abs=0.02)
    stack = measure_stripes(np.stack([tilted, striped]), np.stack([clean, clean]))
    assert stack.per_plane["fine_stripe_removed"].shape == (2,)
    assert (stack.per_plane["fine_stripe_removed"] > 0.9).all()
