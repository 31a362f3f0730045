"""Property-based tests (hypothesis) of the public API.

Inputs: random shapes (empty to 5D), every numpy dtype (bool, complex and float16 included),
NaN / Inf / the dtype's extremes, nested lists, read-only and non-contiguous arrays.
Property: the call returns a correct result (the input's dtype and shape, finite where the
dtype is float) or raises the project's RestoreInputError; nothing else escapes, and the
input is unchanged. Tiny networks keep each example to milliseconds; the examples are fixed
(derandomized) so CI runs are reproducible and bounded in time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_restore import (
    compute_metrics,
    denoise,
    destripe,
    detect_stripe_direction,
    measure_stripes,
    simulate_noise,
    simulate_stripes,
)
from napari_restore.errors import RestoreInputError
from napari_restore.models.rescbam_unet import ResCBAMUNet
from napari_restore.models.srdtrans import SRDTrans

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

torch.manual_seed(0)
UNET = ResCBAMUNet(base_channels=4, depth=2).eval()
SRD = SRDTrans(patch_t=16, channels=(2, 4, 4, 8), embed_dim=16, heads=2).eval()

INTEGERS = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
DTYPES = st.sampled_from([np.bool_, *INTEGERS, np.float16, np.float32, np.float64, np.complex64])
SIDES = st.sampled_from([0, 1, 3, 16, 20])  # empty, too small, and workable plane sizes
LEADS = st.lists(st.sampled_from([0, 1, 2]), max_size=3)  # up to 5D in all


@st.composite
def images(draw, *, sides=SIDES):
    """An array (or a nested list) with one of the variants the API must survive."""
    dtype = np.dtype(draw(DTYPES))
    shape = (*draw(LEADS), draw(sides), draw(sides))
    if draw(st.integers(0, 5)) == 0:  # sometimes 0D / 1D as well
        shape = shape[len(shape) - draw(st.integers(0, 1)) :]
    if dtype.kind == "f":
        # Finite values in a typical range, or the dtype's extremes, NaN and Inf.
        finite = st.floats(-1e4, 1e4, width=8 * min(dtype.itemsize, 8))
        special = st.sampled_from([np.nan, np.inf, -np.inf, float(np.finfo(dtype).max), 0.0])
        elements = st.one_of(finite, finite, special) if draw(st.booleans()) else finite
        arr = draw(hnp.arrays(dtype, shape, elements=elements, fill=finite))
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        ends = st.sampled_from([int(info.min), int(info.max)])
        elements = st.one_of(st.integers(int(info.min), int(info.max)), ends)
        arr = draw(hnp.arrays(dtype, shape, elements=elements))
    else:
        arr = draw(hnp.arrays(dtype, shape))
    variant = draw(st.sampled_from(["plain", "read-only", "strided", "fortran", "list"]))
    if variant == "read-only":
        arr.flags.writeable = False
    elif variant == "strided" and arr.ndim >= 1:
        arr = np.repeat(arr, 2, axis=-1)[..., ::2]  # same values, non-contiguous view
    elif variant == "fortran":
        arr = np.asfortranarray(arr)
    elif variant == "list" and arr.size <= 4096 and arr.ndim >= 1:
        listed = arr.tolist()
        return listed, np.asarray(listed)  # a list's dtype is what numpy makes of it
    return arr, arr


def _snapshot(arr):
    return np.array(arr, copy=True)


def _check_result(out, reference, expected_dtype=None):
    """A result of the input's dtype and shape, finite where float."""
    want = np.dtype(expected_dtype or reference.dtype)
    assert isinstance(out, np.ndarray) and out.dtype == want
    assert out.shape == reference.shape
    if out.dtype.kind == "f":
        assert np.isfinite(out).all()


def _run(call, image, reference, expected_dtype="input"):
    before = _snapshot(np.asarray(image))
    try:
        out = call(image)
    except RestoreInputError:
        out = None
    np.testing.assert_array_equal(np.asarray(image), before)  # input unchanged
    if out is not None and expected_dtype is not None:
        _check_result(out, reference, None if expected_dtype == "input" else expected_dtype)
    return out


@SETTINGS
@given(images())
def test_destripe_property(case):
    image, ref = case
    _run(lambda a: destripe(a, UNET, device="cpu"), image, ref)


@SETTINGS
@given(images(sides=st.sampled_from([0, 3, 8, 16])))
def test_denoise_property(case):
    image, ref = case
    _run(lambda a: denoise(a, SRD, device="cpu", tile=16), image, ref)


@SETTINGS
@given(images(), st.sampled_from(["regular", "gaussian", "tilted"]), st.booleans())
def test_simulate_stripes_property(case, kind, additive):
    image, ref = case
    mode = "additive" if additive else "multiplicative"
    _run(lambda a: simulate_stripes(a, kind=kind, mode=mode, seed=0).image, image, ref)


@SETTINGS
@given(images())
def test_simulate_noise_property(case):
    image, ref = case
    _run(lambda a: simulate_noise(a, output_dtype="input").image, image, ref)


@SETTINGS
@given(images())
def test_metrics_property(case):
    image, ref = case
    other = np.flip(ref, axis=-1) if ref.ndim else ref
    out = _run(lambda a: compute_metrics(a, other), image, ref, expected_dtype=None)
    if out is not None:
        assert out.shape == ref.shape and np.isfinite([out.mae, out.ssim]).all()
        assert out.data_range > 0


@SETTINGS
@given(images())
def test_stripe_meter_property(case):
    image, ref = case
    out = _run(lambda a: measure_stripes(a, ref), image, ref, expected_dtype=None)
    if out is not None:
        assert out.direction in ("horizontal", "vertical", "none", "mixed")


@SETTINGS
@given(images())
def test_detect_stripe_direction_property(case):
    image, ref = case
    out = _run(detect_stripe_direction, image, ref, expected_dtype=None)
    assert out in (None, "horizontal", "vertical")


@pytest.mark.parametrize("fn", [destripe, simulate_stripes, simulate_noise])
def test_property_strategies_reach_both_outcomes(fn):
    """The strategies are not vacuous: some examples give results, some are refused."""
    outcomes = set()

    @settings(max_examples=30, deadline=None, derandomize=True, database=None)
    @given(images())
    def probe(case):
        image, _ = case
        try:
            fn(image, UNET, device="cpu") if fn is destripe else fn(image)
            outcomes.add("result")
        except RestoreInputError:
            outcomes.add("refused")

    probe()
    assert outcomes == {"result", "refused"}
