"""SRDTrans training: learning, determinism, stop/continue, save/resume, data handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_restore.core.progress import run_to_end
from napari_restore.denoise.infer import load_denoise_model
from napari_restore.denoise.train import (
    DenoiseTrainConfig,
    DenoiseTrainer,
    effective_patch,
)
from napari_restore.errors import RestoreInputError
from napari_restore.simulate.timelapse import simulate_timelapse

TINY = {"channels": (2, 4, 4, 8), "embed_dim": 16, "heads": 2}


def tiny_config(**kw: object) -> DenoiseTrainConfig:
    base = dict(
        patch_t=16,
        patch_xy=16,
        batch_size=2,
        epochs=1,
        patches_per_epoch=8,
        device="cpu",
        preview_every=0,
        model_kwargs=TINY,
    )
    return DenoiseTrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def noisy() -> np.ndarray:
    return simulate_timelapse((20, 32, 32), seed=3, output_dtype="uint16").noisy


def weights(trainer: DenoiseTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_loss_decreases() -> None:
    # Bright (200 photons/pixel): structure, not noise, dominates the first losses.
    bright = simulate_timelapse((20, 32, 32), photons=200, seed=3).noisy
    trainer = DenoiseTrainer(bright, tiny_config(learning_rate=3e-3))
    before = trainer.evaluate()
    summary = run_to_end(trainer.train(steps=30), progress_bar=False)
    after = trainer.evaluate()  # the same fixed batches: comparable
    assert summary["steps"] == 30 and len(trainer.history) == 30
    assert after["total"] < 0.8 * before["total"]
    assert after["total"] == pytest.approx(0.5 * after["l1"] + 0.5 * after["mse"], rel=1e-5)
    assert trainer.evaluate() == after  # evaluation draws nothing new and changes nothing
    last = trainer.history[-1]
    assert last["total"] == pytest.approx(0.5 * last["l1"] + 0.5 * last["mse"], rel=1e-5)


def test_same_seed_gives_identical_losses(noisy: np.ndarray) -> None:
    runs = []
    for seed in (0, 0, 1):
        trainer = DenoiseTrainer(noisy, tiny_config(seed=seed))
        run_to_end(trainer.train(steps=3), progress_bar=False)
        runs.append([h["total"] for h in trainer.history])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_stop_and_continue_equals_an_uninterrupted_run(noisy: np.ndarray) -> None:
    whole = DenoiseTrainer(noisy, tiny_config())
    run_to_end(whole.train(steps=4), progress_bar=False)

    parts = DenoiseTrainer(noisy, tiny_config())
    gen = parts.train(steps=4)
    for progress in gen:
        assert progress.stage == "train"
        assert set(progress.losses) == {"total", "l1", "mse"}
        if progress.step == 2:
            gen.close()  # what a napari worker does on Stop
    assert parts.step == 2 and len(parts.history) == 2
    summary = run_to_end(parts.train(steps=2), progress_bar=False)
    assert summary["steps"] == 4 and summary["steps_run"] == 2
    assert parts.history == whole.history
    assert_same_weights(weights(parts), weights(whole))


def test_save_and_resume_continues_exactly(noisy: np.ndarray, tmp_path) -> None:
    whole = DenoiseTrainer(noisy, tiny_config())
    run_to_end(whole.train(steps=4), progress_bar=False)

    first = DenoiseTrainer(noisy, tiny_config(), source="noisy.tif")
    run_to_end(first.train(steps=2), progress_bar=False)
    path = first.save(tmp_path / "model")
    assert path.name == "model.safetensors" and (tmp_path / "model.json").exists()

    resumed = DenoiseTrainer.resume(tmp_path / "model", noisy)
    assert resumed.step == 2 and resumed.history == first.history
    assert resumed.patch_t == 16 and resumed.config.model_kwargs["channels"] == [2, 4, 4, 8]
    run_to_end(resumed.train(steps=2), progress_bar=False)
    assert resumed.history == whole.history
    assert_same_weights(weights(resumed), weights(whole))

    meta = load_denoise_model(tmp_path / "model", "cpu").metadata
    assert meta["task"] == "denoise"
    assert meta["architecture"]["kwargs"]["patch_t"] == 16
    assert meta["steps"] == 2 and meta["data"]["shape"] == [20, 32, 32]
    assert meta["data"]["source"] == "noisy.tif"
    assert meta["training"]["config"]["learning_rate"] == 1e-4
    assert meta["napari_restore_version"]


def test_resume_refuses_a_different_patch_t_and_unknown_settings(noisy, tmp_path) -> None:
    trainer = DenoiseTrainer(noisy, tiny_config())
    trainer.save_optimizer = False
    trainer.save(tmp_path / "m")
    with pytest.raises(RestoreInputError, match="patch_t"):
        DenoiseTrainer.resume(tmp_path / "m", noisy, patch_t=32)
    with pytest.raises(RestoreInputError, match="Unknown"):
        DenoiseTrainer.resume(tmp_path / "m", noisy, speed=3)
    resumed = DenoiseTrainer.resume(tmp_path / "m", noisy, learning_rate=1e-3)
    assert resumed.optimizer.param_groups[0]["lr"] == 1e-3


def test_time_budget_and_epochs_bound_a_run(noisy: np.ndarray) -> None:
    trainer = DenoiseTrainer(noisy, tiny_config(epochs=None, minutes=1e-9))
    summary = run_to_end(trainer.train(), progress_bar=False)
    assert summary["stopped_by"] == "time" and summary["steps_run"] == 0
    trainer = DenoiseTrainer(noisy, tiny_config(epochs=1, patches_per_epoch=6, batch_size=2))
    summary = run_to_end(trainer.train(), progress_bar=False)
    assert summary["stopped_by"] == "epochs" and trainer.step == 3
    summary = run_to_end(trainer.train(), progress_bar=False)  # the epochs are done
    assert summary["steps_run"] == 0


def test_preview_shows_the_middle_frame_noisy_and_denoised(noisy: np.ndarray) -> None:
    trainer = DenoiseTrainer(noisy, tiny_config(preview_every=2))
    previews = [p.preview for p in trainer.train(steps=4)]
    assert previews[0] is None and previews[2] is None
    for preview in (previews[1], previews[3]):
        assert set(preview) == {"input", "output"}
        assert preview["input"].shape == preview["output"].shape == (32, 32)
        assert preview["input"].dtype == preview["output"].dtype == np.float32
        np.testing.assert_array_equal(preview["input"], noisy[10].astype(np.float32))
        assert np.isfinite(preview["output"]).all()
    assert trainer.model.training  # back in training mode after the preview


def test_short_stacks_are_mirrored_in_time_and_patches_clamped() -> None:
    cfg = DenoiseTrainConfig(patch_t=128, patch_xy=128)
    assert effective_patch((300, 512, 512), cfg) == (128, 128)
    assert effective_patch((40, 100, 61), cfg) == (32, 60)
    assert effective_patch((5, 64, 64), cfg) == (16, 64)
    stack = simulate_timelapse((5, 24, 20), seed=0).noisy
    trainer = DenoiseTrainer(stack, tiny_config(patch_t=32, patch_xy=64))
    assert (trainer.patch_t, trainer.patch_xy) == (16, 20)
    s1, s2, s3, n_real = trainer._batch(0)
    assert s1.shape == (2, 16, 10, 10) and s2.shape == s3.shape == (2, 5, 10, 10)
    assert n_real == 5
    # Frames 5.. mirror frames 3, 2, 1, 0, 1, ...: copies of the *input* pixels only.
    torch.testing.assert_close(s1[:, 5], s1[:, 3])
    torch.testing.assert_close(s1[:, 8], s1[:, 0])
    run_to_end(trainer.train(steps=2), progress_bar=False)
    assert np.isfinite(trainer.history[-1]["total"])


def test_a_single_image_trains_as_a_one_frame_stack() -> None:
    image = simulate_timelapse((1, 24, 24), seed=0).noisy[0]
    trainer = DenoiseTrainer(image, tiny_config())
    assert trainer.shape == (1, 24, 24)
    run_to_end(trainer.train(steps=1), progress_bar=False)
    with pytest.raises(RestoreInputError, match="stack"):
        DenoiseTrainer(np.zeros((2, 3, 8, 8)), tiny_config())


def test_memory_mapped_stacks_are_cropped_not_copied(noisy: np.ndarray, tmp_path) -> None:
    np.save(tmp_path / "stack.npy", noisy)
    mm = np.load(tmp_path / "stack.npy", mmap_mode="r")
    trainer = DenoiseTrainer(mm, tiny_config())
    assert trainer.stack is mm
    ref = DenoiseTrainer(noisy, tiny_config())
    run_to_end(trainer.train(steps=2), progress_bar=False)
    run_to_end(ref.train(steps=2), progress_bar=False)
    assert trainer.history == ref.history
    assert trainer.mean == pytest.approx(float(noisy.mean()))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"patch_t": 24}, "multiple of 16"),
        ({"patch_xy": 15}, "even"),
        ({"epochs": None, "minutes": None}, "epochs or minutes"),
        ({"learning_rate": 0.0}, "positive"),
        ({"model_kwargs": {"patch_t": 32}}, "patch_t"),
    ],
)
def test_invalid_settings_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(RestoreInputError, match=match):
        tiny_config(**kw)


@pytest.mark.gpu
def test_cuda_bf16_training_and_inference(noisy: np.ndarray) -> None:
    from napari_restore.denoise.infer import denoise

    trainer = DenoiseTrainer(noisy, tiny_config(device="cuda", preview_every=2))
    progress = list(trainer.train(steps=4))
    assert all(np.isfinite(p.losses["total"]) for p in progress)
    assert progress[1].preview["output"].dtype == np.float32
    out = denoise(noisy, trainer.model, device="cuda", output_dtype="float32")
    ref = denoise(noisy, trainer.model, device="cuda", output_dtype="float32", amp=False)
    assert out.shape == noisy.shape and np.isfinite(out).all()
    assert np.abs(out - ref).mean() < 0.05 * np.abs(ref - ref.mean()).mean() + 1e-3
