"""Both trainers keep one protocol: the same names, summaries and model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_restore import load_sample
from napari_restore.denoise.train import DenoiseTrainConfig, DenoiseTrainer
from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer
from napari_restore.engine.model_files import load_model
from napari_restore.engine.options import InferenceOptions
from napari_restore.engine.trainer import Trainer
from napari_restore.simulate.timelapse import simulate_timelapse

TINY_SRD = {"channels": (2, 4, 4, 8), "embed_dim": 16, "heads": 2}


def destripe_trainer() -> DestripeTrainer:
    config = DestripeTrainConfig(
        steps=50, batch_size=2, patch_size=32, base_channels=4, depth=2, val_patches=2,
        val_every=50, device="cpu",
    )  # fmt: skip
    return DestripeTrainer([load_sample("nuclei")[:64, :64]], config)


def denoise_trainer() -> DenoiseTrainer:
    noisy = simulate_timelapse((20, 32, 32), photons=5.0, seed=0).noisy
    config = DenoiseTrainConfig(
        patch_t=16, patch_xy=16, epochs=1, patches_per_epoch=50, device="cpu",
        preview_every=0, model_kwargs=TINY_SRD,
    )  # fmt: skip
    return DenoiseTrainer(noisy, config)


@pytest.fixture(params=["destripe", "denoise"])
def trainer(request) -> Trainer:
    return destripe_trainer() if request.param == "destripe" else denoise_trainer()


def test_stop_ends_training_after_the_current_step(trainer):
    gen = trainer.train(steps=10)
    first = next(gen)
    trainer.stop()
    reports = [first, *gen]
    summary = trainer.summary()
    assert [p.step for p in reports] == [1] and trainer.step == 1
    assert summary["stopped_by"] == "stop" and summary["steps_run"] == 1
    # train() continues the same model; stop() only ended that call
    for _ in trainer.train(steps=2):
        pass
    assert trainer.step == 3 and trainer.summary()["stopped_by"] == "steps"


def test_both_tasks_report_the_same_summary_and_files(trainer, tmp_path):
    for _ in trainer.train(steps=2):
        pass
    summary = trainer.summary()
    assert set(summary) == {
        "steps", "steps_run", "seconds", "ms_per_step", "losses", "metrics", "stopped_by",
    }  # fmt: skip
    assert summary["steps"] == 2 and np.isfinite(summary["losses"]["total"])
    assert isinstance(trainer.evaluate(), dict) and trainer.evaluate()
    config = type(trainer.config).from_dict(trainer.config.to_dict())
    assert config.to_dict() == trainer.config.to_dict()

    trainer.save(tmp_path / "model", extra={"note": "protocol test"})
    net, meta = load_model(tmp_path / "model", "cpu")  # the task comes from the metadata
    assert meta["task"] == trainer.task and meta["note"] == "protocol test"
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(net.state_dict()[name], value.cpu())
    resumed = type(trainer).resume(tmp_path / "model", _data_of(trainer))
    assert resumed.step == 2


def _data_of(trainer: Trainer):
    if isinstance(trainer, DestripeTrainer):
        return [load_sample("nuclei")[:64, :64]]
    return trainer.stack


def test_inference_options_take_fields_by_name():
    opts = InferenceOptions.of(None, device="cpu", tile=64)
    assert opts == InferenceOptions(device="cpu", tile=64)
    assert InferenceOptions.of(opts, batch_size=2).tile == 64
    with pytest.raises(TypeError, match="tiles"):
        InferenceOptions.of(None, tiles=64)
