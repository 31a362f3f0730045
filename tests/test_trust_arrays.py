"""Empty arrays, Python lists, huge values, non-contiguous and read-only arrays across the
public API: a result of the input's dtype or RestoreInputError, and the input unchanged."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

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


@pytest.fixture(scope="module")
def calls():
    torch.manual_seed(0)
    unet = ResCBAMUNet(base_channels=4, depth=2).eval()
    srd = SRDTrans(patch_t=16, channels=(2, 4, 4, 8), embed_dim=16, heads=2).eval()
    return {
        "destripe": lambda a: destripe(a, unet, device="cpu"),
        "denoise": lambda a: denoise(a, srd, device="cpu"),
        "metrics": lambda a: compute_metrics(a, a),
        "stripe meter": lambda a: measure_stripes(a, a),
        "simulate_stripes": lambda a: simulate_stripes(a, seed=0).image,
        "simulate_noise": lambda a: simulate_noise(a, output_dtype="input").image,
        "direction": detect_stripe_direction,
    }


NAMES = [
    "destripe",
    "denoise",
    "metrics",
    "stripe meter",
    "simulate_stripes",
    "simulate_noise",
    "direction",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(0, 32), (32, 0), (0, 32, 32), (2, 0, 32)])
def test_empty_arrays_are_refused_by_name(calls, name, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" on the way
        with pytest.raises(RestoreInputError, match=r"empty|no pixels|0x32|32x0"):
            calls[name](np.zeros(shape, np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_python_lists_work_like_arrays(calls, name):
    image = np.random.default_rng(0).uniform(10, 100, (32, 32))
    got = calls[name](image.tolist())
    want = calls[name](image)
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype == np.float64
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want if isinstance(want, str) else got.as_dict() == want.as_dict()


@pytest.mark.parametrize("name", NAMES)
def test_values_beyond_float32_are_refused_without_overflow(calls, name):
    image = np.random.default_rng(0).uniform(1e199, 1e200, (32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "overflow encountered in cast" was the symptom
        with pytest.raises(RestoreInputError, match=r"1e\+30"):
            calls[name](image)


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_and_read_only_inputs(calls, name):
    base = np.random.default_rng(1).uniform(10, 100, (2, 64, 64)).astype(np.float32)
    strided = base[:, ::2, ::2]
    readonly = np.ascontiguousarray(strided)
    readonly.flags.writeable = False
    fortran = np.asfortranarray(strided[0])
    keep = base.copy()
    a, b = calls[name](strided), calls[name](readonly)
    c, d = calls[name](fortran), calls[name](np.ascontiguousarray(strided[0]))
    np.testing.assert_array_equal(base, keep)  # inputs untouched
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype == c.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)


def test_constant_image_at_the_top_of_uint64_destripes_without_nan():
    image = np.full((32, 32), np.iinfo(np.uint64).max, dtype=np.uint64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "invalid value encountered in divide" before
        out = destripe(image, ResCBAMUNet(base_channels=4, depth=2).eval(), device="cpu")
    assert out.dtype == np.uint64 and out.min() > np.iinfo(np.uint64).max // 2


def test_ragged_lists_are_refused():
    with pytest.raises(RestoreInputError, match="Cannot read list"):
        simulate_stripes([[1.0, 2.0], [3.0]])


def test_training_refuses_boolean_clean_images(tmp_path, capsys):
    from napari_restore.cli import main
    from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer

    mask = np.random.default_rng(0).random((64, 64)) > 0.5
    config = DestripeTrainConfig(steps=1, patch_size=32, base_channels=4, depth=2, device="cpu")
    with pytest.raises(RestoreInputError, match="boolean"):
        DestripeTrainer([mask], config)
    import tifffile

    tifffile.imwrite(tmp_path / "mask.tif", mask)
    assert tifffile.imread(tmp_path / "mask.tif").dtype == bool
    args = ["train-destripe", str(tmp_path / "mask.tif"), "-o", str(tmp_path / "m")]
    assert main([*args, "--steps", "1", "--patch-size", "32"]) == 2
    assert "boolean" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("scale", [1e12, 1e25])
def test_stripe_meter_of_big_values_does_not_overflow(scale):
    rng = np.random.default_rng(0)
    clean = rng.uniform(100, 1000, (64, 64))
    striped = simulate_stripes(clean, seed=0).image
    small = measure_stripes(striped, clean)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 spectra of such values overflowed to Inf
        big = measure_stripes(striped * scale, clean * scale)
    assert big.stripe_removed == pytest.approx(small.stripe_removed, rel=1e-5)
    assert big.structure_changed == pytest.approx(small.structure_changed, rel=1e-4, abs=1e-7)
