"""Destriping inference: normalisation, stacks, tiling without seams, dtypes, direction, files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_restore import load_sample
from napari_restore.destripe import infer as destripe_infer
from napari_restore.destripe.data import intensity_range, normalise
from napari_restore.destripe.infer import (
    destripe,
    destripe_file,
    destripe_file_progress,
    destripe_progress,
    detect_stripe_direction,
    load_destripe_model,
)
from napari_restore.engine.model_files import save_model_file
from napari_restore.errors import RestoreInputError
from napari_restore.models.rescbam_unet import ResCBAMUNet
from napari_restore.simulate import simulate_stripes


@pytest.fixture(scope="module")
def net() -> ResCBAMUNet:
    torch.manual_seed(0)
    return ResCBAMUNet(base_channels=4, depth=2).eval()


@pytest.fixture(scope="module")
def striped() -> np.ndarray:
    return simulate_stripes(load_sample("nuclei")[:96, :120], seed=3).image  # uint16


# The network alone: every plane through it, no spectral clean-up (tests of the tiling and the
# normalisation compare against the network applied by hand).
NETWORK_ONLY = {"only_striped": False, "cleanup": False}


def reference(net: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The network applied by hand: whole-image normalisation, every plane, no tiles."""
    lo, hi = intensity_range(image)
    x = normalise(image, lo, hi).reshape(-1, 1, *image.shape[-2:])
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    return (y * (hi - lo) + lo).reshape(image.shape)


def test_2d_matches_the_network_with_global_normalisation(net, striped):
    out = destripe(striped, net, device="cpu", output_dtype="float32", tile=512, **NETWORK_ONLY)
    assert out.shape == striped.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, reference(net, striped), atol=1e-3)
    assert not np.allclose(out, striped)


@pytest.mark.parametrize("shape", [(3, 37, 53), (2, 2, 21, 30)])
def test_stacks_plane_by_plane_with_one_normalisation(net, shape):
    rng = np.random.default_rng(0)
    stack = (
        rng.random(shape) * 1000 * np.arange(1, shape[0] + 1).reshape(-1, *[1] * (len(shape) - 1))
    ).astype(np.float32)
    out = destripe(stack, net, device="cpu", tile=64, **NETWORK_ONLY)
    assert out.shape == stack.shape and out.dtype == np.float32
    # Normalised over the whole stack (plane 0 is darker and stays darker), never per plane.
    np.testing.assert_allclose(out, reference(net, stack), rtol=1e-4, atol=1e-2)


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    """A tiny network after 60 training steps (an untrained one has arbitrary, huge outputs)."""
    from napari_restore.core.progress import run_to_end
    from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer

    images = [load_sample("nuclei")[100:196, 100:196], load_sample("maize")[:80, :90]]
    cfg = DestripeTrainConfig(
        steps=60,
        base_channels=4,
        depth=2,
        patch_size=32,
        batch_size=4,
        learning_rate=2e-3,
        val_patches=0,
        preview_every=0,
        device="cpu",
    )
    trainer = DestripeTrainer(images, cfg)
    run_to_end(trainer.train(), progress_bar=False)
    return trainer.model.eval()


def test_tiles_blend_without_seams(trained, striped):
    whole = destripe(striped, trained, device="cpu", output_dtype="float32", tile=256)
    tiled = destripe(
        striped, trained, device="cpu", output_dtype="float32", tile=64, overlap=32, batch_size=3
    )
    diff = np.abs(whole - tiled)
    # CBAM's channel attention pools over a whole tile, so tiles cannot match the whole image
    # exactly; blending keeps the difference small and smooth.
    assert diff.max() < 0.02 * np.ptp(whole)
    assert diff.max() < 0.1 * np.abs(whole - striped).max()
    assert diff.mean() < 0.002 * np.ptp(whole)


def test_progress_reports_tiles(net, striped):
    gen = destripe_progress(striped, net, device="cpu", tile=32, overlap=8)
    steps = []
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            out = stop.value
            break
        steps.append((p.step, p.total, p.stage))
    assert out.shape == striped.shape
    assert all(stage == "tiles" for *_, stage in steps)
    assert steps[-1][0] == steps[-1][1] > 1
    assert [s for s, *_ in steps] == sorted(s for s, *_ in steps)


def test_output_dtype_clips_and_casts():
    torch.manual_seed(0)
    brightener = ResCBAMUNet(base_channels=4, depth=2)
    with torch.no_grad():  # predicts a stripe component of -50: adds 50 robust ranges
        brightener.head.weight.zero_()
        brightener.head.bias.fill_(-50.0)
    image = load_sample("maize")[:40, :48]
    out = destripe(image, brightener, device="cpu", **NETWORK_ONLY)
    assert out.dtype == np.uint8
    assert (out == 255).all()  # clipped to the dtype's range, never wrapped around
    as_float = destripe(image, brightener, device="cpu", output_dtype="float32", **NETWORK_ONLY)
    assert as_float.dtype == np.float32 and as_float.min() > 255
    as_u16 = destripe(image, brightener, device="cpu", output_dtype=np.uint16, **NETWORK_ONLY)
    assert as_u16.dtype == np.uint16
    with pytest.raises(RestoreInputError, match="real number"):
        destripe(image, brightener, device="cpu", output_dtype="complex64")


@pytest.mark.parametrize("key", ["nuclei", "maize", "tribolium"])
@pytest.mark.parametrize("kind", ["regular", "gaussian", "tilted"])
def test_detect_stripe_direction(key, kind):
    clean = load_sample(key)
    if clean.ndim == 3:
        clean = clean[:4]
    horizontal = simulate_stripes(clean, kind=kind, seed=5).image
    vertical = np.ascontiguousarray(np.swapaxes(horizontal, -1, -2))
    assert detect_stripe_direction(horizontal) == "horizontal"
    assert detect_stripe_direction(vertical) == "vertical"


def test_vertical_is_transpose_run_transpose(net, striped):
    vertical = np.ascontiguousarray(striped.T)
    by_hand = destripe(striped, net, device="cpu", tile=256).T
    out = destripe(vertical, net, device="cpu", tile=256, direction="vertical")
    np.testing.assert_array_equal(out, by_hand)
    auto = destripe(vertical, net, device="cpu", tile=256, direction="auto")
    np.testing.assert_array_equal(auto, by_hand)
    with pytest.raises(RestoreInputError, match="direction"):
        destripe(striped, net, device="cpu", direction="diagonal")


def test_model_files(net, striped, tmp_path, monkeypatch):
    save_model_file(
        tmp_path / "m", net.state_dict(), {"task": "destripe", "architecture": net.architecture()}
    )
    loaded, meta = load_destripe_model(tmp_path / "m.safetensors", device="cpu")
    assert not loaded.training and meta["task"] == "destripe"
    a = destripe(striped, tmp_path / "m", device="cpu", tile=256)
    b = destripe(striped, (loaded, meta), device="cpu", tile=256)
    np.testing.assert_array_equal(a, b)

    save_model_file(
        tmp_path / "d", net.state_dict(), {"task": "denoise", "architecture": net.architecture()}
    )
    with pytest.raises(RestoreInputError, match="'denoise' model"):
        load_destripe_model(tmp_path / "d", device="cpu")
    with pytest.raises(RestoreInputError, match="not found"):
        load_destripe_model(tmp_path / "missing.safetensors", device="cpu")
    monkeypatch.setattr(destripe_infer, "builtin_model_path", lambda: tmp_path / "nope.safetensors")
    for spec in (None, "builtin"):
        with pytest.raises(RestoreInputError, match="built-in destriping model is not installed"):
            load_destripe_model(spec, device="cpu")
    with pytest.raises(RestoreInputError, match="CUDA"):
        load_destripe_model(
            tmp_path / "m", device="cuda:7" if torch.cuda.is_available() else "cuda"
        )


def test_bad_images_are_refused(net):
    with pytest.raises(RestoreInputError, match="NaN"):
        destripe(np.full((32, 32), np.nan, np.float32), net, device="cpu")
    with pytest.raises(RestoreInputError, match="complex"):
        destripe(np.zeros((32, 32), np.complex64), net, device="cpu")
    with pytest.raises(RestoreInputError, match="dimensions"):
        destripe(np.zeros(32), net, device="cpu")


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_destripe_file_streams_planes(net, tmp_path, suffix):
    stack = simulate_stripes(load_sample("tribolium")[:5, :48, :40], seed=1).image
    tifffile.imwrite(tmp_path / "in.tif", stack, photometric="minisblack")
    out = destripe_file(tmp_path / "in.tif", tmp_path / f"out{suffix}", net, device="cpu", tile=32)
    from napari_restore.io import read_image

    result = read_image(out)
    assert result.dtype == stack.dtype
    np.testing.assert_array_equal(result, destripe(stack, net, device="cpu", tile=32))
    with pytest.raises(RestoreInputError, match="exists"):
        destripe_file(tmp_path / "in.tif", out, net, device="cpu")


def test_stopped_file_job_leaves_no_output(net, tmp_path):
    stack = load_sample("tribolium")[:4, :48, :48]
    tifffile.imwrite(tmp_path / "in.tif", stack, photometric="minisblack")
    gen = destripe_file_progress(
        tmp_path / "in.tif", tmp_path / "out.tif", net, device="cpu", tile=32
    )
    next(gen)
    gen.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_default_tile_is_the_same_on_every_device(net):
    # CBAM pools over a tile, so the tile is part of the result: the default must not depend on
    # the device (only the batch does).
    from napari_restore.destripe.infer import DEFAULT_TILE, tile_settings_for

    cpu = tile_settings_for(net, torch.device("cpu"))
    assert cpu.tile == (DEFAULT_TILE, DEFAULT_TILE) == (256, 256)
    assert cpu.overlap == (32, 32) and cpu.batch_size == 1
    image = load_sample("nuclei")[:300, :280]
    np.testing.assert_array_equal(
        destripe(image, net, device="cpu"), destripe(image, net, device="cpu", tile=DEFAULT_TILE)
    )


@pytest.mark.gpu
def test_cuda_bf16_matches_cpu(net, striped):
    cpu = destripe(striped, net, device="cpu", output_dtype="float32", tile=64)
    gpu = destripe(striped, net, device="cuda:0", output_dtype="float32", tile=64)
    # bf16 activations: agreement to a small fraction of the range.
    assert np.abs(cpu - gpu).max() < 0.02 * np.ptp(cpu)
    from napari_restore.destripe.infer import DEFAULT_TILE, tile_settings_for

    settings = tile_settings_for(net, torch.device("cuda:0"))
    assert settings.tile == (DEFAULT_TILE, DEFAULT_TILE) and settings.batch_size > 1


def test_public_api_is_lazy_and_complete():
    import subprocess
    import sys

    import napari_restore as nr

    assert nr.destripe is destripe and nr.destripe_file is destripe_file
    assert nr.load_destripe_model is load_destripe_model
    assert nr.detect_stripe_direction is detect_stripe_direction
    from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer

    assert nr.DestripeTrainer is DestripeTrainer and nr.DestripeTrainConfig is DestripeTrainConfig
    code = "import sys, napari_restore; print('torch' in sys.modules, 'napari' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_model_on_another_device_is_copied_not_moved():
    from napari_restore.core.device import module_on

    net = ResCBAMUNet(base_channels=4, depth=2)
    assert module_on(net, torch.device("cpu")) is net
    meta_dev = torch.device("meta")
    moved = module_on(net, meta_dev)
    assert moved is not net and next(moved.parameters()).device == meta_dev
    assert next(net.parameters()).device.type == "cpu", "the original stays where it trains"
