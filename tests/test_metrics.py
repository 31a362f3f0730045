"""Metrics equal scikit-image's on real images; clear errors for bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_restore._sample_data import load_sample
from napari_restore.core.progress import run_to_end
from napari_restore.errors import RestoreInputError
from napari_restore.metrics import (
    compare_progress,
    compute_metrics,
    metrics_rows,
    write_metrics_csv,
)
from napari_restore.simulate import simulate_noise, simulate_stripes


def skimage_ssim(x, y, r):
    return structural_similarity(
        x, y, data_range=r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )


@pytest.fixture(scope="module", params=["maize", "nuclei", "brain"])
def pair(request):
    """A real clean image (float64) and a degraded version of it."""
    clean = load_sample(request.param).astype(np.float64)
    degraded = simulate_stripes(clean, kind="tilted", seed=4).image
    degraded = simulate_noise(degraded, photons=20, seed=1).image.astype(np.float64)
    return degraded * (clean.mean() / degraded.mean()), clean


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_equal_to_scikit_image_on_real_images(pair, backend):
    image, gt = pair
    m = compute_metrics(image, gt, backend=backend, device="cpu")
    r = gt.max() - gt.min()
    assert m.data_range == r and m.data_range_source == "ground truth"
    assert m.mae == pytest.approx(np.abs(image - gt).mean(), abs=1e-9)
    assert abs(m.psnr - peak_signal_noise_ratio(gt, image, data_range=r)) < 1e-6
    assert abs(m.ssim - skimage_ssim(image, gt, r)) < 1e-6
    assert m.per_slice == {}


def test_stack_per_slice_and_user_range():
    gt = load_sample("tribolium")[:6].astype(np.float64)
    img = simulate_stripes(gt, seed=2, output_dtype="float64").image
    m = compute_metrics(img, gt, data_range=1000.0)
    assert m.data_range == 1000.0 and m.data_range_source == "user"
    for z in range(6):
        assert abs(m.per_slice["ssim"][z] - skimage_ssim(img[z], gt[z], 1000.0)) < 1e-6
        psnr_z = peak_signal_noise_ratio(gt[z], img[z], data_range=1000.0)
        assert abs(m.per_slice["psnr"][z] - psnr_z) < 1e-6
    assert m.ssim == pytest.approx(m.per_slice["ssim"].mean())
    assert abs(m.psnr - peak_signal_noise_ratio(gt, img, data_range=1000.0)) < 1e-6
    mt = compute_metrics(img, gt, data_range=1000.0, backend="torch", device="cpu")
    np.testing.assert_allclose(mt.per_slice["ssim"], m.per_slice["ssim"], atol=1e-10)


def test_integer_inputs_and_identical_images():
    gt = load_sample("nuclei")
    m = compute_metrics(gt, gt)
    assert m.mae == 0 and m.psnr == np.inf and m.ssim == pytest.approx(1.0)
    assert json.loads(json.dumps(m.as_dict()))["psnr"] == "inf"


@pytest.mark.parametrize(
    ("image", "gt", "match"),
    [
        (np.zeros((20, 20)), np.zeros((20, 21)), "Shape mismatch"),
        (np.full((20, 20), np.nan), np.eye(20), "image contains NaN"),
        (
            np.ones((20, 20)),
            np.r_[np.eye(20)[1:], np.full((1, 20), np.inf)],
            "ground truth contains",
        ),
        (np.ones((20, 20)), np.ones((20, 20)), "constant"),
        (np.ones((20, 20), complex), np.ones((20, 20)), "complex"),
        (np.ones((20, 20, 3)), np.ones((20, 20, 3)), "RGB"),
        (np.ones((5, 5)), np.ones((5, 5)), "at least 11"),
    ],
)
def test_bad_input_is_explained(image, gt, match):
    with pytest.raises(RestoreInputError, match=match):
        compute_metrics(image, gt)


def test_bad_data_range():
    with pytest.raises(RestoreInputError, match="positive"):
        compute_metrics(np.ones((20, 20)), np.ones((20, 20)), data_range=0)


def test_compare_many_keeps_going_and_csv(tmp_path, rng):
    gt = rng.random((2, 16, 16))
    results = run_to_end(compare_progress([gt + 0.1, np.ones((3, 3)), gt], gt), progress_bar=False)
    assert results[0].mae == pytest.approx(0.1)
    assert isinstance(results[1], RestoreInputError)
    assert results[2].psnr == np.inf
    rows = metrics_rows("a", "gt", results[0]) + metrics_rows("c", "gt", results[2])
    path = write_metrics_csv(tmp_path / "m.csv", rows)
    with open(path, newline="") as fh:
        read = list(csv.DictReader(fh))
    assert [r["plane"] for r in read] == ["all", "0", "1"] * 2
    assert float(read[1]["mae"]) == pytest.approx(0.1)
    assert read[3]["psnr"] == "inf"
