"""SRDTrans inference: shapes, tiling, dtypes, intensity bias, axes, files, model round trips."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_restore.core.progress import run_to_end
from napari_restore.denoise.infer import (
    denoise,
    denoise_file,
    denoise_file_progress,
    denoise_progress,
    load_denoise_model,
)
from napari_restore.denoise.train import DenoiseTrainConfig, DenoiseTrainer
from napari_restore.engine.model_files import save_model_file
from napari_restore.errors import RestoreInputError
from napari_restore.models.srdtrans import SRDTrans
from napari_restore.simulate.timelapse import simulate_timelapse

TINY = {"channels": (2, 4, 4, 8), "embed_dim": 16, "heads": 2}


@pytest.fixture(scope="module")
def model() -> SRDTrans:
    torch.manual_seed(0)
    return SRDTrans(patch_t=16, **TINY).eval()


@pytest.fixture(scope="module")
def trained() -> tuple[DenoiseTrainer, np.ndarray, np.ndarray]:
    """A tiny network trained briefly on a synthetic low-light time-lapse (2 photons/px)."""
    data = simulate_timelapse((32, 48, 48), photons=2.0, seed=5)
    config = DenoiseTrainConfig(
        patch_t=16,
        patch_xy=32,
        batch_size=2,
        learning_rate=3e-3,
        epochs=1,
        device="cpu",
        preview_every=0,
        model_kwargs=TINY,
    )
    trainer = DenoiseTrainer(data.noisy, config)
    run_to_end(trainer.train(steps=60), progress_bar=False)
    return trainer, data.noisy, data.clean


def noisy_stack(shape: tuple[int, ...], seed: int = 0, dtype: str = "uint16") -> np.ndarray:
    return simulate_timelapse(shape, photons=5.0, seed=seed, output_dtype=dtype).noisy


@pytest.mark.parametrize(
    "shape",
    [(5, 37, 29), (16, 20, 20), (40, 23, 50), (17, 9, 11)],
)
def test_any_stack_size_gives_the_input_shape_and_dtype(model: SRDTrans, shape) -> None:
    x = noisy_stack(shape)
    out = denoise(x, model, device="cpu", tile=16)
    assert out.shape == x.shape and out.dtype == np.uint16
    assert model.training is False


def test_progress_is_reported_per_batch_of_tiles(model: SRDTrans) -> None:
    x = noisy_stack((40, 30, 30))
    for flips in (1, 4):
        gen = denoise_progress(
            x, model, device="cpu", tile=16, overlap=4, output_dtype="float32", flips=flips
        )
        steps = []
        try:
            while True:
                p = next(gen)
                steps.append((p.step, p.total, p.stage))
        except StopIteration as stop:
            out = stop.value
        # Time tiles start at 0, 8, 16, 24; y and x at 0, 12, 14: 36 tiles, one per batch,
        # and once more per mirrored pass.
        n = 36 * flips
        assert steps == [(i, n, "denoise") for i in range(1, n + 1)]
        assert out.shape == x.shape and out.dtype == np.float32


def test_a_flip_ensemble_averages_the_network_on_mirrored_stacks(model: SRDTrans) -> None:
    x = noisy_stack((16, 32, 32), seed=3)
    kw = dict(device="cpu", tile=32, output_dtype="float32", intensity="none")
    single = {
        axes: np.flip(denoise(np.ascontiguousarray(np.flip(x, axes)), model, flips=1, **kw), axes)
        for axes in ((), (2,), (1,), (1, 2))
    }
    two = denoise(x, model, flips=2, **kw)
    four = denoise(x, model, flips=4, **kw)
    np.testing.assert_allclose(two, (single[()] + single[(2,)]) / 2, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(four, np.mean(list(single.values()), 0), rtol=1e-5, atol=1e-4)
    assert not np.allclose(four, single[()], atol=1e-3)  # the mirrored passes differ
    assert np.array_equal(denoise(x, model, flips="auto", **kw), four)  # small, on the CPU


def test_auto_flips_are_four_on_the_cpu_for_small_stacks_only() -> None:
    import torch

    from napari_restore.denoise.infer import AUTO_FLIPS_MAX_VOXELS, resolve_flips

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_flips("auto", AUTO_FLIPS_MAX_VOXELS, cpu) == 4
    assert resolve_flips("auto", AUTO_FLIPS_MAX_VOXELS + 1, cpu) == 1
    assert resolve_flips("auto", 1000, gpu) == 1  # the paper's single pass on a GPU
    assert resolve_flips(2, 10**12, gpu) == 2
    for bad in (3, 0, True, "4", None):
        with pytest.raises(RestoreInputError, match="flips="):
            resolve_flips(bad, 1000, cpu)


def test_tiles_blend_into_the_whole_image_result(model: SRDTrans) -> None:
    x = noisy_stack((16, 48, 48), seed=1)
    whole = denoise(x, model, device="cpu", tile=48, output_dtype="float32", intensity="none")
    tiled = denoise(
        x, model, device="cpu", tile=32, overlap=16, output_dtype="float32", intensity="none"
    )
    batched = denoise(
        x,
        model,
        device="cpu",
        tile=32,
        overlap=16,
        batch_size=4,
        output_dtype="float32",
        intensity="none",
    )
    np.testing.assert_allclose(batched, tiled, rtol=1e-5, atol=1e-4)
    # Tiles see less context at their borders; the blending keeps the difference small.
    rel = np.sqrt(np.mean((tiled - whole) ** 2)) / np.std(whole)
    assert rel < 0.05, rel


def test_output_dtypes_are_cast_with_clipping(model: SRDTrans) -> None:
    x = noisy_stack((16, 16, 16), dtype="float32")
    ref = denoise(x, model, device="cpu", output_dtype="float32", intensity="none")
    assert ref.dtype == np.float32
    assert denoise(x, model, device="cpu", intensity="none").dtype == np.float32
    as64 = denoise(x.astype(np.float64), model, device="cpu", intensity="none")
    assert as64.dtype == np.float64
    # uint8 input near the top of its range: rounded and clipped, never wrapped around.
    x8 = np.clip(x + 160, 0, 255).astype(np.uint8)
    f = denoise(x8, model, device="cpu", output_dtype="float32", intensity="none")
    u = denoise(x8, model, device="cpu", intensity="none")
    assert u.dtype == np.uint8
    np.testing.assert_array_equal(u, np.clip(np.rint(f), 0, 255).astype(np.uint8))
    with pytest.raises(RestoreInputError, match="not a dtype"):
        denoise(x, model, device="cpu", output_dtype="pixels")


def fit_gain_offset(out: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    a, b = np.polyfit(truth.ravel().astype(np.float64), out.ravel().astype(np.float64), 1)
    return float(a), float(b)


def test_intensity_bias_is_measured_and_removed(trained, record_property) -> None:
    """Fit ``output ≈ a·truth + b`` on synthetic data with a known truth, for the raw network
    output, the reference's rescaling (sqrt(sum(raw) / sum(out)), here over the one tile)
    and our mean-preserving shift; report a, b and the mean bias (see `pytest -rP`)."""
    trainer, noisy, truth = trained
    raw = denoise(noisy, trainer.model, device="cpu", output_dtype="float32", intensity="none")
    ours = denoise(noisy, trainer.model, device="cpu", output_dtype="float32", intensity="mean")
    reference = raw * np.sqrt(noisy.sum(dtype=np.float64) / raw.sum(dtype=np.float64))
    noise_sd = float(np.std(noisy - truth))
    # The shot-noise-limited error of the mean of the truth estimated from the data:
    tolerance = 4 * noise_sd / np.sqrt(noisy.size)
    report = {}
    for name, out in (("none", raw), ("reference", reference), ("mean", ours)):
        a, b = fit_gain_offset(out, truth)
        bias = float(np.mean(out - truth, dtype=np.float64))
        report[name] = (a, b, bias)
        record_property(f"{name}_gain_offset_bias", (round(a, 4), round(b, 3), round(bias, 4)))
        print(f"intensity={name}: output = {a:.4f} * truth + {b:.3f}, mean bias {bias:+.4f}")
    assert abs(report["mean"][2]) < tolerance
    assert abs(report["mean"][2]) <= abs(report["none"][2]) + tolerance
    assert abs(report["mean"][2]) <= abs(report["reference"][2]) + tolerance
    # The mean shift changes the level only, never the contrast.
    assert report["mean"][0] == pytest.approx(report["none"][0], rel=1e-4)
    # And the network has learnt to denoise: much closer to the truth than the input is.
    assert np.mean((ours - truth) ** 2) < 0.7 * np.mean((noisy - truth) ** 2)


def test_four_d_data_are_denoised_stack_by_stack(model: SRDTrans) -> None:
    ct = np.stack([noisy_stack((20, 16, 16), seed=s) for s in (1, 2)])  # (C, T, Y, X)
    out = denoise(ct, model, device="cpu", stack_axis=1)
    for c in range(2):
        np.testing.assert_array_equal(out[c], denoise(ct[c], model, device="cpu"))
    tc = np.ascontiguousarray(ct.transpose(1, 0, 2, 3))  # (T, C, Y, X)
    out_tc = denoise(tc, model, device="cpu", stack_axis=0)
    np.testing.assert_array_equal(out_tc, out.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(denoise(ct, model, device="cpu", stack_axis=-3), out)
    with pytest.raises(RestoreInputError, match="stack_axis=2"):
        denoise(ct, model, device="cpu", stack_axis=2)


def test_a_single_image_is_a_one_frame_stack_and_1d_is_refused(model: SRDTrans) -> None:
    image = noisy_stack((1, 20, 24))[0]
    out = denoise(image, model, device="cpu")
    assert out.shape == image.shape and out.dtype == image.dtype
    np.testing.assert_array_equal(out, denoise(image[None], model, device="cpu")[0])
    with pytest.raises(RestoreInputError, match="stacks"):
        denoise(np.zeros(30), model, device="cpu")
    with pytest.raises(RestoreInputError, match="at least 4x4"):
        denoise(np.zeros((16, 3, 30)), model, device="cpu")


def test_saved_model_gives_identical_output(trained, tmp_path) -> None:
    trainer, noisy, _ = trained
    trainer.save(tmp_path / "m")
    loaded = load_denoise_model(tmp_path / "m.safetensors", device="cpu")
    assert not loaded.training and loaded.patch_t == 16
    a = denoise(noisy, trainer.model, device="cpu", output_dtype="float32")
    b = denoise(noisy, loaded, device="cpu", output_dtype="float32")
    np.testing.assert_array_equal(a, b)
    c = denoise(noisy, tmp_path / "m.json", device="cpu", output_dtype="float32")
    np.testing.assert_array_equal(a, c)


def test_model_file_errors(tmp_path, model: SRDTrans) -> None:
    with pytest.raises(RestoreInputError, match="not found"):
        load_denoise_model(tmp_path / "missing.safetensors", "cpu")
    save_model_file(tmp_path / "d", model.state_dict(), {"task": "destripe", "architecture": {}})
    with pytest.raises(RestoreInputError, match="'destripe' model"):
        load_denoise_model(tmp_path / "d", "cpu")


def test_file_streaming_matches_in_memory(trained, tmp_path) -> None:
    net = trained[0].model
    x = simulate_timelapse((70, 20, 22), photons=2.0, seed=4, output_dtype="uint16").noisy
    tifffile.imwrite(tmp_path / "in.tif", x)
    kw = {"device": "cpu", "output_dtype": "float32"}
    memory = denoise(x, net, **kw)
    # One chunk: the same computation as in memory.
    denoise_file(tmp_path / "in.tif", tmp_path / "one.tif", net, chunk_t=80, **kw)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "one.tif"), memory, rtol=1e-6)
    # Chunks of 32 frames overlapping by at least 8, blended across the overlaps.
    raw = denoise(x, net, intensity="none", **kw)
    denoise_file(tmp_path / "in.tif", tmp_path / "c.tif", net, chunk_t=32, intensity="none", **kw)
    chunked = tifffile.imread(tmp_path / "c.tif")
    assert chunked.shape == x.shape and chunked.dtype == np.float32
    error_vs_noise = np.sqrt(np.mean((chunked - raw) ** 2)) / np.std(x - raw)
    assert error_vs_noise < 0.1, error_vs_noise
    with pytest.raises(RestoreInputError, match="chunk_t"):
        denoise_file(tmp_path / "in.tif", tmp_path / "x.tif", net, chunk_t=20, **kw)
    assert not (tmp_path / "x.tif").exists()


def test_file_streaming_of_4d_npy_and_stopping_leaves_no_output(model, tmp_path) -> None:
    ct = np.stack([noisy_stack((20, 12, 12), seed=s) for s in (1, 2)])
    np.save(tmp_path / "in.npy", ct)
    denoise_file(tmp_path / "in.npy", tmp_path / "out.npy", model, device="cpu", stack_axis=1)
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(out, denoise(ct, model, device="cpu", stack_axis=1))
    stop = tmp_path / "stop.npy"
    gen = denoise_file_progress(tmp_path / "in.npy", stop, model, device="cpu", stack_axis=1)
    next(gen)
    gen.close()  # Stop in the dock, or Ctrl-C
    assert not stop.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]
