"""No silent wrong output: non-finite, huge, boolean and colour inputs are refused before any
work, integer results saturate instead of wrapping, damaged TIFFs and model files are refused."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_restore.cli import main
from napari_restore.core.arrays import cast_clipped
from napari_restore.denoise.infer import denoise, load_denoise_model
from napari_restore.destripe.infer import destripe, detect_stripe_direction
from napari_restore.engine.model_files import save_model_file
from napari_restore.errors import RestoreInputError
from napari_restore.io import open_image
from napari_restore.models.srdtrans import SRDTrans
from napari_restore.simulate import simulate_stripes

TINY_SRD = {"channels": (2, 4, 4, 8), "embed_dim": 16, "heads": 2}


@pytest.fixture(scope="module")
def srd():
    torch.manual_seed(0)
    return SRDTrans(patch_t=16, **TINY_SRD).eval()


def _stack(dtype=np.float32, shape=(40, 32, 32)):
    return np.random.default_rng(0).uniform(100, 1000, shape).astype(dtype)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_bad_value_outside_the_sampled_planes_is_refused(bad):
    image = _stack()
    image[1, 5, 7] = bad  # destripe samples at most 16 evenly spaced planes: plane 1 is not one
    before = image.copy()
    with pytest.raises(RestoreInputError, match=r"NaN or infinite.*\(1, 5, 7\)"):
        destripe(image, device="cpu")
    for call in (
        lambda: detect_stripe_direction(image),
        lambda: simulate_stripes(image, kind="regular", mode="additive", seed=0),
    ):
        with pytest.raises(RestoreInputError, match="NaN or infinite"):
            call()
    np.testing.assert_array_equal(image, before)


def test_nan_in_a_lazy_zarr_is_found_block_by_block(tmp_path):
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(40, 32, 32), dtype="f4")
    z[...] = _stack()
    z[1, 0, 0] = np.nan  # not among the planes that the normalisation samples
    assert main(["destripe", str(tmp_path / "a.zarr"), "-o", str(tmp_path / "o.tif")]) == 2
    assert not (tmp_path / "o.tif").exists()


def test_denoise_refuses_nan_and_huge_values(srd):
    image = _stack()
    image[30, 2, 2] = np.nan
    with pytest.raises(RestoreInputError, match="NaN or infinite"):
        denoise(image, srd, device="cpu")
    image[30, 2, 2] = 3e38
    with pytest.raises(RestoreInputError, match="rescale"):
        denoise(image, srd, device="cpu")


@pytest.mark.parametrize(("dtype", "value"), [(np.float32, 3e38), (np.float64, 1e39)])
def test_huge_float_values_are_refused_not_turned_into_nan(dtype, value):
    image = _stack(dtype)
    image[3, 3, 3] = value
    with pytest.raises(RestoreInputError, match="rescale"):
        destripe(image, device="cpu")


@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.int64, np.uint64])
def test_integer_results_saturate_at_the_dtype_maximum(dtype):
    info = np.iinfo(dtype)
    top = np.array([info.max, info.max - 1, info.min], dtype=np.float64)
    np.testing.assert_array_equal(
        cast_clipped(top.astype(np.float32), dtype), [info.max, info.max, info.min]
    )
    np.testing.assert_array_equal(cast_clipped(top * 2, dtype), [info.max, info.max, info.min])


@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.int64])
def test_destripe_of_an_image_at_the_dtype_maximum_does_not_wrap(dtype):
    info = np.iinfo(dtype)
    image = np.full((64, 64), info.max, dtype=dtype)
    image[::8] = info.max // 2
    out = destripe(image, device="cpu")
    assert out.dtype == dtype
    # Wrapping would put values near the minimum (0 / INT_MIN) where the input is near its top.
    assert out.min() > info.max // 4


def test_float16_near_its_maximum_saturates():
    values = np.array([65000.0, 65504.0, 70000.0, 1e9])
    out = cast_clipped(values, np.float16)
    assert np.isfinite(out).all()
    assert out.max() == np.finfo(np.float16).max


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((32, 32), bool), "boolean"),
        (np.zeros((32, 32), np.complex64), "complex"),
        (np.zeros((32, 32, 3), np.uint8), "RGB"),
        (np.zeros((32, 32, 4), np.uint16), "RGB"),
    ],
)
def test_bool_complex_and_colour_arrays_are_refused(image, match, srd):
    for call in (
        lambda: destripe(image, device="cpu"),
        lambda: simulate_stripes(image, seed=0),
        lambda: denoise(image, srd, device="cpu"),
    ):
        with pytest.raises(RestoreInputError, match=match):
            call()


def test_truncated_tiff_is_refused(tmp_path, capsys):
    data = np.random.default_rng(1).integers(0, 1000, (4, 64, 64)).astype(np.uint16)
    for compression in ("zlib", None):
        full = tmp_path / f"full_{compression}.tif"
        tifffile.imwrite(full, data, compression=compression, photometric="minisblack")
        blob = full.read_bytes()
        cut = tmp_path / f"cut_{compression}.tif"
        cut.write_bytes(blob[: len(blob) // 2])
        np.testing.assert_array_equal(np.asarray(open_image(full)[...]), data)
        with pytest.raises(RestoreInputError, match="truncated or damaged"):
            open_image(cut)
        out = tmp_path / f"out_{compression}.tif"
        assert main(["destripe", str(cut), "-o", str(out), "-q"]) == 2
        assert "truncated" in capsys.readouterr().err
        assert not out.exists()


def test_tiff_header_claiming_a_huge_image_is_refused_before_allocating(tmp_path):
    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), compression="zlib")
    blob = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        for name, value in (("ImageWidth", 40000), ("ImageLength", 50000), ("RowsPerStrip", 50000)):
            assert tags[name].dtype == 4  # LONG, little-endian
            struct.pack_into("<I", blob, tags[name].valueoffset, value)
    path.write_bytes(bytes(blob))
    assert path.stat().st_size < 1024
    with pytest.raises(RestoreInputError, match="claims"):
        open_image(path)


def test_model_file_with_a_nan_weight_is_refused(srd, tmp_path):
    state = {k: v.clone() for k, v in srd.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    meta = {"task": "denoise", "architecture": srd.architecture()}
    save_model_file(tmp_path / "bad", state, meta)
    with pytest.raises(RestoreInputError, match="NaN or infinite"):
        load_denoise_model(tmp_path / "bad", "cpu")
