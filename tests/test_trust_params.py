"""Absurd simulator parameters are refused with their limits before anything is allocated;
the largest allowed ones stay bounded in memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tifffile

from napari_restore.cli import main
from napari_restore.errors import RestoreInputError
from napari_restore.simulate import StripeParams, simulate_noise, simulate_stripes

IMAGE = np.random.default_rng(0).uniform(100, 1000, (48, 40)).astype(np.float32)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"width": (1e6, 1e6)}, r"width=.*at most 1000"),
        ({"width": ("a", 1)}, r"width=.*pair of numbers"),
        ({"width": (1.0,)}, r"width=.*pair of numbers"),
        ({"length": (1.0, 1e12)}, r"length=.*at most 1e\+06"),
        ({"density": 1e9}, r"density=.*0 to 100 stripes per 100 pixels"),
        ({"density": float("nan")}, r"density=nan"),
        ({"count": 100_000_000}, r"count=.*0 to 10000 stripes"),
        ({"count": 2.5}, r"count=2.5: give a whole number"),
        ({"count": -1}, r"count=-1"),
        ({"period": 1e-6}, r"period=.*1 to 1e\+06 pixels"),
        ({"period": float("nan")}, r"period=nan"),
        ({"period": float("inf")}, r"period=inf"),
        ({"angle": (float("nan"), 0.0)}, r"angle=.*finite"),
        ({"angle": (0.0, 90.0)}, r"80 degrees"),
        ({"mode": "additive", "amplitude": (0.0, 1e300)}, r"at most 100 times"),
        ({"amplitude": (-1.0, 0.5)}, r"amplitude must be >= 0"),
        ({"seed": -1}, r"seed=-1"),
        ({"seed": 1.5}, r"seed=1.5"),
    ],
)
def test_stripe_parameters_out_of_bounds_are_refused(changes, match):
    with pytest.raises(RestoreInputError, match=match):
        StripeParams(**changes)
    with pytest.raises(RestoreInputError, match=match):
        simulate_stripes(IMAGE, **changes)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"intensity_range": float("nan")}, "intensity_range=nan"),
        ({"intensity_range": -1.0}, "intensity_range=-1.0"),
        ({"baseline": float("inf")}, "baseline=inf"),
        ({"baseline": 1e200}, r"magnitude up to 1e\+30"),
    ],
)
def test_stripe_scalars_out_of_bounds_are_refused(kwargs, match):
    with pytest.raises(RestoreInputError, match=match):
        simulate_stripes(IMAGE, mode="additive", **kwargs)


def _peak_bytes(call):
    """Peak memory that numpy allocated during ``call`` (numpy reports to tracemalloc)."""
    tracemalloc.start()
    try:
        out = call()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_widest_allowed_stripes_cost_little_more_than_the_image():
    # One stripe of sigma 1000 px reaches 4000 rows from its centre line, ~21000 at 79
    # degrees: unclipped, (2 * reach) x 256 values per temporary array (16 / 86 MB each, about
    # 100 / 500 MB in all); the reach is now clipped to the rows it can touch in the image.
    image = np.full((64, 256), 500.0, dtype=np.float32)
    for kind, limit in (("gaussian", 30e6), ("tilted", 150e6)):
        kw = {"kind": kind, "width": (1000.0, 1000.0), "angle": (79.0, 79.0), "count": 1}
        out, peak = _peak_bytes(lambda kw=kw: simulate_stripes(image, seed=0, **kw))
        assert out.image.shape == image.shape and np.isfinite(out.image).all()
        assert peak < limit, f"{kind}: {peak / 1e6:.0f} MB"


def test_dense_regular_bands_are_summed_in_blocks(monkeypatch):
    import napari_restore.simulate.stripes as stripes

    tall = np.full((6000, 4), 500.0, dtype=np.float32)  # 6000 rows x 6002 bands: 9 blocks
    kw = {"kind": "regular", "period": 1.0, "width": (0.5, 2.0), "seed": 0}
    blocks, peak = _peak_bytes(lambda: simulate_stripes(tall, **kw).field)
    assert peak < 200e6, f"{peak / 1e6:.0f} MB"  # one (6000, 6002) matrix is 288 MB
    monkeypatch.setattr(stripes, "_CHUNK_ELEMENTS", 10**9)  # the whole matrix at once
    whole = simulate_stripes(tall, **kw).field
    np.testing.assert_allclose(blocks, whole, rtol=1e-6, atol=1e-7)
    assert 0 < float(blocks.mean()) < 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"photons": 1e300}, r"photons=1e\+300: give a number above 0 up to 1e\+06"),
        ({"photons": float("nan")}, "photons=nan"),
        ({"read_noise": float("nan")}, "read_noise=nan"),
        ({"read_noise": -1.0}, "read_noise=-1.0"),
        ({"gain": float("inf")}, "gain=inf"),
        ({"gain": 0.0}, "gain=0.0"),
        ({"offset": float("nan")}, "offset=nan"),
        ({"seed": -3}, "seed=-3"),
    ],
)
def test_noise_parameters_out_of_bounds_are_refused(kwargs, match):
    with pytest.raises(RestoreInputError, match=match):
        simulate_noise(IMAGE, **kwargs)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["simulate", "--count", "100000000"], "0 to 10000 stripes"),
        (["simulate", "--width", "1e6", "1e6"], "at most 1000"),
        (["simulate", "--period", "1e-6"], "1 to 1e+06 pixels"),
        (["simulate", "--density", "1e9"], "0 to 100 stripes per 100"),
        (["simulate", "--angle", "-90", "10"], "80 degrees"),
        (["noise", "--photons", "1e300"], "photons=1e+300"),
        (["noise", "--read-noise", "nan"], "read_noise=nan"),
    ],
)
def test_cli_refuses_out_of_bounds_parameters_before_reading(tmp_path, capsys, args, match):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, IMAGE)
    out = tmp_path / "out.tif"
    assert main([args[0], str(src), str(out), *args[1:]]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not out.exists()
