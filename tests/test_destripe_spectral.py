"""The destriper's stripe-evidence check and spectral clean-up (destripe/spectral.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.draw import line_aa

from napari_restore import load_sample
from napari_restore.destripe.infer import destripe, destripe_progress
from napari_restore.destripe.spectral import (
    LEVEL_BIN,
    LEVEL_MIN_AMPLITUDE,
    LEVEL_MIN_EVIDENCE,
    LOG_OFFSET,
    MIN_CAP_RING,
    SECOND_LOOK_AMPLITUDE,
    SECOND_LOOK_EXCESS,
    WEAK_MIN_CHANGE,
    cap_stripe_wedge,
    correction_stripes,
    finish_plane,
    keep_level,
    keep_stripe_shaped,
    level_offset,
    stripe_evidence,
)
from napari_restore.models.rescbam_unet import ResCBAMUNet
from napari_restore.stripe_meter import (
    log_offset,
    measure_stripes,
    periodic_spectrum,
    spectrum_rings,
)


def cells(shape=(256, 288), seed=0) -> np.ndarray:
    """Blobs of several sizes on a dim background, float32 in about [0, 1]."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    for _ in range(100):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        img[y, x] = rng.uniform(0.5, 1.0)
    img = ndimage.gaussian_filter(img, 3.0) * 40 + 0.05
    return (img + rng.normal(0, 0.005, shape)).astype(np.float32)


def with_stripes(img: np.ndarray, seed=1, depth=0.5) -> np.ndarray:
    """Long horizontal attenuation stripes of random widths (not the simulator's code)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros(img.shape[0], np.float32)
    for _ in range(12):
        c, w = rng.uniform(0, img.shape[0]), rng.uniform(0.7, 2.5)
        rows += np.exp(-0.5 * ((np.arange(img.shape[0]) - c) / w) ** 2).astype(np.float32)
    return img * (1 - depth * np.clip(rows, 0, 1))[:, None]


def fine_lines(img: np.ndarray, seed=0) -> np.ndarray:
    """One-pixel dark lines across the whole width, like the fine stripes of SmartSPIM."""
    rng = np.random.default_rng(seed)
    rows = np.ones(img.shape[0], np.float32)
    rows[rng.choice(img.shape[0], img.shape[0] // 5, replace=False)] = 0.7
    return img * rows[:, None]


def fibres(shape=(256, 288), seed=2, n=100) -> np.ndarray:
    """Bright line segments at every angle on a dim background (neurites, actin): content
    whose own lines can hide stripes from the input's angular power profile."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    for _ in range(n):
        y0, x0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        angle, length = rng.uniform(0, np.pi), rng.uniform(20, 120)
        y1 = int(np.clip(y0 + length * np.sin(angle), 0, shape[0] - 1))
        x1 = int(np.clip(x0 + length * np.cos(angle), 0, shape[1] - 1))
        rr, cc, val = line_aa(int(y0), int(x0), y1, x1)
        img[rr, cc] += val * rng.uniform(0.3, 1)
    return (ndimage.gaussian_filter(img, 1.0) + 0.02).astype(np.float32)


@pytest.fixture(scope="module")
def net() -> ResCBAMUNet:
    torch.manual_seed(0)
    return ResCBAMUNet(base_channels=4, depth=2).eval()


def test_evidence_tells_striped_from_clean():
    clean = cells()
    assert not stripe_evidence(clean).striped
    assert stripe_evidence(with_stripes(clean)).striped
    # A plane too small for a spectrum never counts as striped.
    assert not stripe_evidence(np.ones((5, 5), np.float32)).striped


def test_planes_without_stripes_come_back_unchanged(net):
    clean = cells()
    out = destripe(clean, net, device="cpu", output_dtype="float32")
    np.testing.assert_array_equal(out, clean)
    # The network alone changes them: the check is what keeps them.
    raw = destripe(clean, net, device="cpu", output_dtype="float32", only_striped=False)
    assert not np.array_equal(raw, clean)


def test_stack_mixes_kept_and_destriped_planes(net):
    clean = cells()
    stack = np.stack([clean, with_stripes(clean)])
    steps = []
    gen = destripe_progress(stack, net, device="cpu", output_dtype="float32")
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        out = stop.value
    np.testing.assert_array_equal(out[0], clean)
    assert not np.array_equal(out[1], stack[1])
    assert any("without stripes left unchanged" in p.message for p in steps)


def test_cap_keeps_the_mean_and_everything_outside_the_wedge():
    striped = with_stripes(cells())
    wedge = stripe_evidence(striped)
    capped = cap_stripe_wedge(striped, striped, wedge)
    assert capped.dtype == np.float32 and capped.shape == striped.shape
    # The geometric mean is kept; the arithmetic mean moves a little (strong stripes here).
    assert abs(capped.mean() - striped.mean()) < 0.02 * striped.mean()
    # The notch works on log(I + eps): there, what it removed lies inside the wedge.
    lo, hi = np.percentile(striped, (1, 99.9))
    eps = LOG_OFFSET * (hi - lo)
    log_in, log_out = np.log(striped + eps), np.log(np.maximum(capped, 0) + eps)
    log_wedge = stripe_evidence(log_in)
    assert log_wedge.striped
    before = periodic_spectrum(log_in)
    removed = periodic_spectrum(log_in - log_out)
    outside = ~log_wedge.mask
    outside[0, 0] = False
    share = (np.abs(removed[outside]) ** 2).sum() / (np.abs(before[outside]) ** 2).sum()
    assert share < 1e-3
    after = before - removed
    # Inside the wedge, from the ring where the notch starts, the power drops.
    notched = log_wedge.mask & (spectrum_rings(striped.shape) >= MIN_CAP_RING)
    assert (np.abs(after[notched]) ** 2).sum() < 0.5 * (np.abs(before[notched]) ** 2).sum()
    # Fine lines, which live at the frequencies the notch works on, are largely removed.
    fine = fine_lines(cells(seed=2))
    capped = cap_stripe_wedge(fine, fine, stripe_evidence(fine))
    assert measure_stripes(fine, capped).stripe_removed > 0.4
    assert abs(capped.mean() - fine.mean()) < 0.02 * fine.mean()
    # Without stripe evidence nothing changes.
    clean = cells()
    np.testing.assert_array_equal(cap_stripe_wedge(clean, clean, stripe_evidence(clean)), clean)


def test_a_higher_notch_ratio_spares_more_and_removes_less():
    fine = fine_lines(cells(seed=2))
    wedge = stripe_evidence(fine)
    removed = [
        measure_stripes(fine, cap_stripe_wedge(fine, fine, wedge, min_ratio=r)).stripe_removed
        for r in (1.0, 4.0, 1e12)
    ]
    assert removed[0] > removed[1] > removed[2]
    # Above every coefficient's ratio, the notch leaves the plane as it was.
    unchanged = cap_stripe_wedge(fine, fine, wedge, min_ratio=1e12)
    np.testing.assert_allclose(unchanged, fine, rtol=1e-4, atol=1e-4 * float(fine.max()))


def test_only_the_stripe_shaped_part_of_the_correction_is_kept():
    """A network output that removed the stripes *and* invented a round blob: the blob goes,
    the stripe correction stays."""
    clean = cells(seed=6)
    striped = with_stripes(clean, seed=7)
    wedge = stripe_evidence(striped)
    assert wedge.striped
    yy, xx = np.mgrid[: clean.shape[0], : clean.shape[1]]
    # A small round object (sigma 3 px) brightened by 45 %: round, so mostly outside the band
    # (large smooth objects live at the lowest frequencies, which the band keeps whole).
    blob = 1 + 0.5 * np.exp(-((yy - 128.0) ** 2 + (xx - 150.0) ** 2) / (2 * 3.0**2))
    output = (clean * blob).astype(np.float32)  # stripes gone, an object brightened
    kept = keep_stripe_shaped(output, striped, wedge)
    assert kept.dtype == np.float32 and kept.shape == clean.shape
    inside = (yy - 128.0) ** 2 + (xx - 150.0) ** 2 < 2.0**2

    def brightened(a: np.ndarray) -> float:
        return float(np.median(a[inside] / clean[inside])) - 1

    def err(a: np.ndarray) -> float:
        return float(np.mean(np.abs(a - clean)))

    assert brightened(output) > 0.4
    assert brightened(kept) < 0.5 * brightened(output)  # most of the invented change is gone
    # ... while the stripes stay removed: far closer to the truth than the input.
    assert err(kept) < 0.15 * err(striped)
    # A correction that is stripe-shaped already passes through (up to the band's edges).
    assert err(keep_stripe_shaped(clean, striped, wedge)) < 0.1 * err(striped)
    # No stripe evidence: the output is returned as it is.
    plain = cells(seed=8)
    np.testing.assert_array_equal(keep_stripe_shaped(output, plain, stripe_evidence(plain)), output)


def test_cleanup_removes_stripes_the_network_leaves():
    torch.manual_seed(0)
    idle = ResCBAMUNet(base_channels=4, depth=2).eval()
    with torch.no_grad():  # predicts no stripe component: the network leaves every stripe
        idle.head.weight.zero_()
        idle.head.bias.zero_()
    striped = fine_lines(cells(seed=4), seed=5)
    raw = destripe(striped, idle, device="cpu", output_dtype="float32", cleanup=False)
    np.testing.assert_allclose(raw, striped, rtol=1e-5, atol=1e-6)
    cleaned = destripe(striped, idle, device="cpu", output_dtype="float32")
    before = measure_stripes(striped, raw)
    after = measure_stripes(striped, cleaned)
    assert after.stripe_removed > before.stripe_removed + 0.1
    assert after.structure_changed < before.structure_changed + 0.01
    # The log-domain notch keeps the geometric mean: the plain mean moves by about 1 %.
    assert abs(cleaned.mean() - raw.mean()) < 0.02 * abs(raw.mean())


def test_vertical_stripes_use_the_transposed_evidence(net):
    striped = with_stripes(cells(seed=6), seed=7)
    horizontal = destripe(striped, net, device="cpu", output_dtype="float32")
    vertical = destripe(striped.T, net, device="cpu", output_dtype="float32", direction="vertical")
    np.testing.assert_allclose(vertical, horizontal.T, rtol=1e-5, atol=1e-5)
    # Searched in the wrong direction there is no evidence, and nothing changes.
    np.testing.assert_array_equal(
        destripe(striped.T, net, device="cpu", output_dtype="float32"), striped.T
    )


def test_second_look_finds_stripes_the_input_spectrum_hides():
    """Stripes under fibres at every angle do not stand out of the input's angular profile;
    a correction that is a stripe pattern of its own is kept, anything else is not."""
    clean = fibres()
    striped = with_stripes(clean, seed=7, depth=0.3).astype(np.float32)
    wedge = stripe_evidence(striped)
    assert not wedge.striped  # the first look misses them
    # A network that removed the stripes exactly: its correction is all stripe-shaped.
    own = correction_stripes(clean, striped)
    assert own.angles and own.excess_share > 2 * SECOND_LOOK_EXCESS
    assert own.amplitude > 2 * SECOND_LOOK_AMPLITUDE
    out = finish_plane(clean, striped, wedge)
    assert out is not None and out.dtype == np.float32
    err_in = float(np.mean(np.abs(striped - clean)))
    assert float(np.mean(np.abs(out - clean))) < 0.2 * err_in
    # The same removal at a tenth of the depth (a 3 % modulation, amplitude under the bar)
    # is too weak to trust: the plane stays as it is.
    faint = with_stripes(clean, seed=7, depth=0.03).astype(np.float32)
    faint_wedge = stripe_evidence(faint)
    assert not faint_wedge.striped
    assert correction_stripes(clean, faint).amplitude < SECOND_LOOK_AMPLITUDE
    assert finish_plane(clean, faint, faint_wedge) is None
    # A clean plane whose "correction" brightens round objects is left alone.
    yy, xx = np.mgrid[: clean.shape[0], : clean.shape[1]]
    blobs = sum(
        np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0**2))
        for cy, cx in ((60, 70), (130, 200), (200, 90))
    )
    invented = (clean * (1 + 0.4 * blobs)).astype(np.float32)
    assert not stripe_evidence(clean).striped
    assert correction_stripes(invented, clean).excess_share < SECOND_LOOK_EXCESS
    assert finish_plane(invented, clean, stripe_evidence(clean)) is None


@pytest.mark.parametrize("seed", [0, 2])
def test_an_untrained_network_is_not_taken_for_stripes(seed):
    """Random networks change a clean plane by tens of percent, partly along lines; the
    second look still leaves the plane alone: their corrections are not stripe patterns
    (little of their power stands above the angular neighbours of those lines)."""
    torch.manual_seed(seed)
    random_net = ResCBAMUNet(base_channels=4, depth=2).eval()
    clean = load_sample("nuclei")[:128, :144]
    assert not stripe_evidence(clean).striped
    raw = destripe(clean, random_net, device="cpu", only_striped=False, cleanup=False)
    own = correction_stripes(raw.astype(np.float32), clean.astype(np.float32))
    assert own.angles and own.amplitude > 5 * SECOND_LOOK_AMPLITUDE  # lines, and strong
    assert own.excess_share < SECOND_LOOK_EXCESS / 2
    np.testing.assert_array_equal(destripe(clean, random_net, device="cpu"), clean)


@pytest.mark.parametrize("drift", [1.07, 0.94])
def test_level_step_gives_the_unstriped_majority_its_intensity_back(drift):
    """A correction that removed the stripes but moved the whole plane's level: the level
    step divides the drift out, and the stripes stay removed."""
    clean = cells(seed=3)
    striped = with_stripes(clean, seed=4).astype(np.float32)
    drifted = (clean * drift).astype(np.float32)
    assert level_offset(drifted, striped) == pytest.approx(np.log(drift), abs=0.004)
    kept = keep_level(drifted, striped)
    assert kept.dtype == np.float32 and kept.shape == clean.shape
    rows = np.abs(striped / clean - 1).max(axis=1) < 1e-3  # rows that no stripe touches
    assert rows.sum() > 0.3 * len(rows)
    ratio = kept[rows] / striped[rows]
    assert abs(float(np.median(ratio)) - 1) < 0.005  # the unstriped rows are as they were
    assert float(np.mean(np.abs(kept - clean))) < 0.1 * float(np.mean(np.abs(striped - clean)))
    # A pure gain: zero stays zero, the correction's shape is kept.
    dark = drifted.copy()
    dark[:5] = 0
    assert np.all(keep_level(dark, striped)[:5] == 0)
    np.testing.assert_allclose(
        kept / drifted, np.full_like(kept, kept[0, 0] / drifted[0, 0]), rtol=1e-5
    )


def test_level_step_leaves_a_level_correction_alone():
    """A correction that removes the stripes and leaves everything else exactly as it was has
    its mode at exactly 0: the level step changes nothing, bit for bit."""
    clean = cells(seed=5)
    striped = with_stripes(clean, seed=6).astype(np.float32)
    assert level_offset(clean, striped) == 0.0
    np.testing.assert_array_equal(keep_level(clean, striped), clean)
    # A plane the correction leaves exactly as it is: offset 0, output = input.
    assert level_offset(striped, striped) == 0.0
    np.testing.assert_array_equal(keep_level(striped, striped), striped)


def test_level_is_the_unstriped_majority_not_the_median():
    """Dense stripes over most of the bright half: the median of the correction is a stripe
    value, its mode is still the unstriped rows' drift."""
    clean = cells(seed=12)
    rows = np.arange(clean.shape[0])
    depth = 0.1 + 0.3 * (rows % 5 > 1) * ((rows * 7919) % 13) / 12  # 3 rows in 5 striped
    striped = (clean * (1 - depth)[:, None]).astype(np.float32)
    drifted = (clean * 1.04).astype(np.float32)
    values = np.log(drifted / striped)[striped > np.median(striped)]
    assert abs(float(np.median(values)) - np.log(1.04)) > 0.05  # the median is a stripe value
    expected = np.log(1.04) - np.log(1 - 0.1)  # the rows with the smallest attenuation
    assert level_offset(drifted, striped) == pytest.approx(expected, abs=LEVEL_BIN)


def test_level_needs_enough_bright_pixels():
    """Too few pixels above the median and the log offset: not levelled (offset 0)."""
    plane = np.zeros((64, 64), np.float32)
    plane[:4, :4] = 1.0  # 16 bright pixels
    assert level_offset(plane * 1.2, plane) == 0.0
    np.testing.assert_array_equal(keep_level(plane * 1.2, plane), plane * 1.2)
    # Integer inputs are read as intensities like floats.
    clean = (cells(seed=13) * 1000).astype(np.uint16)
    assert level_offset(clean.astype(np.float32) * 1.03, clean) == pytest.approx(
        np.log(1.03), abs=LEVEL_BIN
    )


def levelling_gain(restored: np.ndarray, striped: np.ndarray, wedge) -> float:
    """The single gain by which finish_plane's level step changed its finished plane."""
    with_level = finish_plane(restored, striped, wedge)
    without = finish_plane(restored, striped, wedge, level=False)
    assert with_level is not None and without is not None
    gain = with_level / without
    np.testing.assert_allclose(gain, np.full_like(gain, float(np.median(gain))), rtol=1e-5)
    return float(np.median(gain))


def test_finish_plane_applies_the_level_step_last():
    clean = cells(seed=6)
    striped = with_stripes(clean, seed=7).astype(np.float32)
    drifted = (clean * 1.08).astype(np.float32)
    gain = levelling_gain(drifted, striped, stripe_evidence(striped))
    assert gain == pytest.approx(1 / 1.08, abs=0.005)


def test_builtin_model_keeps_the_level_of_unstriped_rows():
    """The shipped network on unseen widefield nuclei with sparse attenuation stripes: the rows
    that no stripe touches keep their intensity within half a percent."""
    clean = load_sample("nuclei").astype(np.float32)
    striped = with_stripes(clean, seed=11, depth=0.4).astype(np.float32)
    out = destripe(striped, "builtin", device="cpu", output_dtype="float32")
    rows = np.abs(striped / np.maximum(clean, 1e-6) - 1).max(axis=1) < 1e-3
    bright = clean > np.median(clean)
    sel = rows[:, None] & bright
    assert sel.sum() > 1000
    assert abs(float(np.median(out[sel] / striped[sel])) - 1) < 0.005
    # ... and the stripes are corrected: closer to the truth than the input.
    assert float(np.mean(np.abs(out - clean))) < 0.75 * float(np.mean(np.abs(striped - clean)))


def test_faint_evidence_and_a_faint_correction_are_not_levelled():
    """A plane whose stripe wedge barely stands out and whose network correction removes no
    stripe (a plain drift) has nothing to level against: the level step leaves it alone. With
    clear evidence, or with a correction that does remove the stripes, it is levelled."""
    clean = cells(seed=8)
    striped = with_stripes(clean, seed=9).astype(np.float32)
    wedge = stripe_evidence(striped)
    assert wedge.excess >= LEVEL_MIN_EVIDENCE * wedge.expected  # clear evidence
    removed = (clean * 1.05).astype(np.float32)  # stripes removed, level drifted by 5 %

    def levelled(wedge_used) -> bool:
        """Whether finish_plane divided the level out of ``removed``'s finished plane."""
        plain = finish_plane(removed, striped, wedge_used, level=False)
        offset = level_offset(plain, striped)
        assert offset > 0.01  # there is a drift to divide out
        out = finish_plane(removed, striped, wedge_used)
        return bool(np.allclose(out, plain * np.exp(-offset), rtol=1e-5))

    assert levelled(wedge)
    faint = dataclasses.replace(wedge, excess=1.5 * wedge.expected)
    drift = (striped * 1.05).astype(np.float32)  # a correction that only drifts
    assert correction_stripes(drift, striped).amplitude < LEVEL_MIN_AMPLITUDE
    left = finish_plane(drift, striped, faint)
    assert left is not None  # the notch still removes the (deep) stripes
    np.testing.assert_array_equal(left, finish_plane(drift, striped, faint, level=False))
    # The same faint evidence with a correction that removed the stripes: levelled.
    assert correction_stripes(removed, striped).amplitude >= LEVEL_MIN_AMPLITUDE
    assert levelled(faint)


def test_faint_evidence_and_a_small_change_leave_the_plane_unchanged():
    """Weak stripe evidence, a network correction that removes no stripe and a notch that
    changes the plane by less than WEAK_MIN_CHANGE: the plane is returned as it is (the notch
    acting on a nearly clean light-sheet crop's own anisotropy took it from 83 to 57 dB)."""
    clean = cells(seed=8)
    striped = with_stripes(clean, seed=9, depth=0.05).astype(np.float32)
    wedge = stripe_evidence(striped)
    assert wedge.striped
    faint = dataclasses.replace(wedge, excess=1.5 * wedge.expected)
    drift = (striped * 1.05).astype(np.float32)
    notched = finish_plane(drift, striped, wedge, level=False)  # clear evidence: changed
    assert notched is not None
    eps = log_offset(striped)  # the pipeline's log domain
    change = np.log(notched + eps) - np.log(striped + eps)
    assert 0 < float(change.std()) < WEAK_MIN_CHANGE
    assert finish_plane(drift, striped, faint) is None
    assert finish_plane(drift, striped, faint, level=False) is None


def test_second_look_planes_are_levelled_too():
    """A plane whose stripes only the second look finds gets the level step as well: a
    correction that removed them and drifted by 6 % comes back at the input's level."""
    clean = fibres()
    striped = with_stripes(clean, seed=7, depth=0.3).astype(np.float32)
    wedge = stripe_evidence(striped)
    assert not wedge.striped
    drifted = (clean * 1.06).astype(np.float32)
    assert levelling_gain(drifted, striped, wedge) == pytest.approx(1 / 1.06, abs=0.005)
