"""SRDTrans on small machines: input scaling, device defaults, the pretrained start, progress
that moves with time, previews by the clock, and the warnings about likely poor results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_restore.core.progress import run_to_end
from napari_restore.denoise import config as denoise_config
from napari_restore.denoise.config import CPU_DEFAULTS, CPU_FINETUNE_LR, DenoiseTrainConfig
from napari_restore.denoise.infer import (
    contrast_fit,
    denoise,
    load_denoise_model,
    output_warnings,
)
from napari_restore.denoise.train import DenoiseTrainer, training_warnings
from napari_restore.engine.model_files import read_model_metadata, save_model_file
from napari_restore.errors import RestoreInputError
from napari_restore.models.srdtrans import SRDTrans
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
        preview_seconds=0,
        model_kwargs=TINY,
    )
    return DenoiseTrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def sim():
    return simulate_timelapse((20, 32, 32), photons=3.0, seed=4)


def test_training_and_output_do_not_depend_on_the_units_of_the_data(sim) -> None:
    """The network sees (x - mean) / std: the same stack in other units (a camera with 1000x
    the gain and an offset) gives the same losses, and the same output in those units."""
    x = sim.noisy.astype(np.float32)
    y = (1000.0 * x.astype(np.float64) + 5000.0).astype(np.float32)
    a = DenoiseTrainer(x, tiny_config())
    b = DenoiseTrainer(y, tiny_config())
    assert b.scale == pytest.approx(1000.0 * a.scale, rel=1e-5)
    run_to_end(a.train(steps=4), progress_bar=False)
    run_to_end(b.train(steps=4), progress_bar=False)
    for ha, hb in zip(a.history, b.history, strict=True):
        assert hb["total"] == pytest.approx(ha["total"], rel=1e-3)
    out_a = denoise(x, a.model, device="cpu", output_dtype="float32")
    out_b = denoise(y, b.model, device="cpu", output_dtype="float32")
    np.testing.assert_allclose(out_b, 1000.0 * out_a + 5000.0, rtol=1e-4, atol=1.0)


def test_the_scaling_is_stored_and_old_model_files_keep_working(sim, tmp_path) -> None:
    trainer = DenoiseTrainer(sim.noisy, tiny_config())
    run_to_end(trainer.train(steps=2), progress_bar=False)
    trainer.save(tmp_path / "new")
    meta = read_model_metadata(tmp_path / "new")
    assert meta["normalization"]["method"] == "mean_std"
    assert meta["data"]["std"] == pytest.approx(float(np.std(sim.noisy)), rel=1e-4)
    assert load_denoise_model(tmp_path / "new", "cpu").normalization == "mean_std"

    # A file written before the scaling existed: a sentence, no method. Its network works in
    # the units of the data, so it must get the mean subtracted only.
    meta["normalization"] = "per stack: float32 minus the stack mean; no other scaling"
    save_model_file(tmp_path / "old", dict(trainer.model.state_dict()), meta)
    old = load_denoise_model(tmp_path / "old", "cpu")
    assert old.normalization == "mean"
    x = sim.noisy[:16].astype(np.float32)
    mean = float(x.mean(dtype=np.float64))
    with torch.no_grad():
        raw = old(torch.from_numpy(x - np.float32(mean))[None, None])[0, 0].numpy()
    got = denoise(x, old, device="cpu", output_dtype="float32", intensity="none", flips=1)
    np.testing.assert_allclose(got, raw + mean, rtol=1e-5, atol=1e-3)
    resumed = DenoiseTrainer.resume(tmp_path / "old", sim.noisy)
    assert resumed.normalization == "mean" and resumed.scale == 1.0


def test_defaults_follow_the_device(monkeypatch) -> None:
    gpu = DenoiseTrainConfig.for_device("cuda")
    paper = DenoiseTrainConfig()
    assert (gpu.patch_t, gpu.patch_xy, gpu.learning_rate, gpu.batch_size, gpu.init) == (
        paper.patch_t,
        paper.patch_xy,
        paper.learning_rate,
        paper.batch_size,
        "scratch",
    )
    # A trained start is fine-tuned on a CPU at a lower rate; from scratch the CPU default.
    monkeypatch.setattr(denoise_config, "pretrained_model_path", lambda: Path("pre"))
    assert DenoiseTrainConfig.for_device("cpu").learning_rate == CPU_FINETUNE_LR
    assert DenoiseTrainConfig.for_device("cpu", init="m.safetensors").learning_rate == (
        CPU_FINETUNE_LR
    )
    scratch = DenoiseTrainConfig.for_device("cpu", init="scratch")
    assert scratch.learning_rate == CPU_DEFAULTS["learning_rate"]
    assert DenoiseTrainConfig.for_device("cuda", init="pretrained").learning_rate == (
        paper.learning_rate
    )
    monkeypatch.setattr(denoise_config, "pretrained_model_path", lambda: None)
    cpu = DenoiseTrainConfig.for_device("cpu", learning_rate=2e-3)
    assert cpu.patch_t == CPU_DEFAULTS["patch_t"] and cpu.patch_xy == CPU_DEFAULTS["patch_xy"]
    assert cpu.learning_rate == 2e-3  # an explicit setting wins
    assert cpu.init == "scratch"  # no pretrained network installed: from scratch


def test_a_new_run_starts_from_the_pretrained_network(sim, tmp_path, monkeypatch) -> None:
    torch.manual_seed(1)
    net = SRDTrans(patch_t=16, **TINY)
    meta = {
        "task": "denoise",
        "architecture": net.architecture(),
        "normalization": {"method": "mean_std"},
    }
    path = save_model_file(tmp_path / "pre", dict(net.state_dict()), meta)
    monkeypatch.setattr(denoise_config, "pretrained_model_path", lambda: path)
    config = DenoiseTrainConfig.for_device("cpu", patch_t=16, patch_xy=16, epochs=1)
    assert config.init == "pretrained"
    trainer = DenoiseTrainer(sim.noisy, config)
    for k, v in net.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[k], v), k
    assert trainer.start_description == "from the pretrained network"
    # Training changes the copy, never the pretrained file.
    run_to_end(trainer.train(steps=1), progress_bar=False)
    again = load_denoise_model(path, "cpu").state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(again[k], v), k
    # patch_t is the pretrained network's (its temporal position embedding).
    with pytest.raises(RestoreInputError, match="patch_t=16, or train from scratch"):
        DenoiseTrainer(sim.noisy, DenoiseTrainConfig.for_device("cpu", patch_t=32))
    monkeypatch.setattr(denoise_config, "pretrained_model_path", lambda: None)
    with pytest.raises(RestoreInputError, match="no pretrained denoising network"):
        DenoiseTrainer(sim.noisy, tiny_config(init="pretrained", model_kwargs={}))


def test_time_budget_progress_has_a_total_and_previews_come_by_the_clock(sim) -> None:
    trainer = DenoiseTrainer(sim.noisy, tiny_config(epochs=None, minutes=0.02))
    reports = []
    gen = trainer.train()
    while True:
        try:
            reports.append(next(gen))
        except StopIteration:
            break
    assert reports and all(p.total >= p.step for p in reports)
    assert all(p.total > 0 for p in reports)  # the bar moves, unlike a total of 0
    # preview_every=0 and preview_seconds=0: no previews at all.
    assert all(p.preview is None for p in reports)

    trainer = DenoiseTrainer(sim.noisy, tiny_config(preview_seconds=1e-6))
    reports = list(_drain(trainer.train(steps=12)))
    previews = [p.preview for p in reports if p.preview is not None]
    assert previews, "time-based previews came without preview_every"
    assert set(previews[0]) == {"input", "output"}


def _drain(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


def test_training_warnings_say_what_to_do(sim, tmp_path) -> None:
    trainer = DenoiseTrainer(sim.noisy, tiny_config())
    run_to_end(trainer.train(steps=3), progress_bar=False)
    warnings = training_warnings(trainer)
    assert len(warnings) == 1 and "Only 3 training steps from scratch" in warnings[0]
    assert "blurred or flat" in warnings[0] and "Train longer" in warnings[0]
    # From a trained start, few steps leave that network's output, not a flat one.
    net = SRDTrans(patch_t=16, **TINY)
    meta = {"task": "denoise", "architecture": net.architecture()}
    start = save_model_file(tmp_path / "start", dict(net.state_dict()), meta)
    tuned = DenoiseTrainer(sim.noisy, tiny_config(init=str(start), model_kwargs={}))
    run_to_end(tuned.train(steps=2), progress_bar=False)
    (warning,) = training_warnings(tuned)
    assert "Only 2 training steps from the pretrained network" in warning
    assert "not yet tuned" in warning and "flat" not in warning
    # A loss still falling steeply at the end (a real trainer, its history replaced).
    trainer.step = 1000
    trainer.history = [{"step": i, "total": 1.0 / (1 + 0.01 * i)} for i in range(1000)]
    (warning,) = training_warnings(trainer)
    assert "still falling steeply" in warning
    # Flat at the end (converged): nothing to say.
    trainer.history = [{"step": i, "total": 0.5 + 0.01 * (i % 3)} for i in range(1000)]
    assert training_warnings(trainer) == []


def test_output_warnings_catch_a_flattened_result(sim) -> None:
    noisy, clean = sim.noisy, sim.clean
    a, _ = contrast_fit(noisy, clean)
    assert 0.9 < a < 1.1  # the truth keeps the contrast of the noisy input
    assert output_warnings(noisy, clean) == []
    flat = np.full_like(clean, clean.mean())
    assert contrast_fit(noisy, flat)[0] == float("inf")
    (warning,) = output_warnings(noisy, flat)
    assert "undertrained" in warning and "Train longer" in warning
    faded = clean.mean() + 0.2 * (clean - clean.mean())
    (warning,) = output_warnings(noisy, faded)
    assert "1/5.0 of the input's contrast" in warning


def test_the_shipped_pretrained_network() -> None:
    from napari_restore.denoise.config import pretrained_model_path

    path = pretrained_model_path()
    if path is None:
        pytest.skip("this installation ships no pretrained denoising network")
    model = load_denoise_model(path, "cpu")
    assert model.normalization == "mean_std"
    assert model.patch_t == CPU_DEFAULTS["patch_t"]
    assert 1.7e6 < sum(p.numel() for p in model.parameters()) < 1.9e6  # the paper's network
    meta = model.metadata
    assert meta["optimizer_state"] is False  # weights only
    stacks = " ".join(meta["data"]["stacks"])
    for held_out in ("cancer_cell", "calibzapw", "tribolium_nuclei_lund", "clearmap", "tosi"):
        assert held_out not in stacks  # benchmark stacks and unlicensed data kept out
    assert DenoiseTrainConfig.for_device("cpu").init == "pretrained"
    x = simulate_timelapse((8, 24, 24), photons=5.0, seed=1, output_dtype="uint16").noisy
    out = denoise(x, model, device="cpu", output_dtype="float32")
    assert out.shape == x.shape and np.isfinite(out).all()
