"""Destriping training: pairs, losses, validation, determinism, stop/continue, save/resume."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from napari_restore import load_sample
from napari_restore.core.progress import run_to_end
from napari_restore.destripe.data import (
    NORM_PERCENTILES,
    check_mix,
    intensity_range,
    random_degradation,
)
from napari_restore.destripe.infer import load_destripe_model
from napari_restore.destripe.shadows import _cross_section, shadow_field
from napari_restore.destripe.train import (
    DestripeTrainConfig,
    DestripeTrainer,
    stripe_free_level_error,
)
from napari_restore.errors import RestoreInputError


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    nuclei = load_sample("nuclei")[100:196, 100:196]  # 2D uint16
    maize = load_sample("maize")[:80, :90]  # 2D uint8
    stack = load_sample("tribolium")[:3, 60:124, 60:124]  # 3D uint16: its planes are used
    return [nuclei, maize, stack]


def tiny_config(**changes) -> DestripeTrainConfig:
    base = DestripeTrainConfig(
        steps=6,
        learning_rate=2e-3,
        batch_size=4,
        patch_size=32,
        base_channels=4,
        depth=2,
        val_patches=4,
        val_every=3,
        preview_every=2,
        val_seconds=0,  # by steps only: the reports do not depend on the machine's speed
        device="cpu",
        seed=0,
    )
    return base.replace(**changes)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_pairs_have_stripes_and_stay_in_scale(images):
    trainer = DestripeTrainer(images, tiny_config())
    x, y = trainer._pairs(np.random.default_rng(1), trainer.sources, 16)
    assert x.shape == y.shape == (16, 1, 32, 32)
    assert x.dtype == y.dtype == np.float32
    diff = np.abs(x - y).reshape(16, -1).max(axis=1)
    assert (diff > 0).all()  # every pair is degraded
    assert np.abs(y).max() < 5  # normalised by the robust range, with a modest gain
    # Sources are normalised by the percentiles of the whole image or stack.
    lo, hi = intensity_range(images[2])
    s = trainer.sources[2]
    assert (s.lo, s.hi) == (lo, hi)
    assert s.planes.shape == (3, 64, 64)
    np.testing.assert_allclose(s.planes[1], (images[2][1] - lo) / (hi - lo), rtol=1e-5)


def test_clean_fraction_leaves_some_patches_without_stripes(images):
    trainer = DestripeTrainer(images, tiny_config(clean_fraction=0.5))
    x, y = trainer._pairs(np.random.default_rng(3), trainer.sources, 200)
    unchanged = (x == y).reshape(200, -1).all(axis=1)
    # Stripe-free pairs are exact copies (target = input); the others are all degraded.
    assert 70 < unchanged.sum() < 130
    assert (np.abs(x - y).reshape(200, -1).max(axis=1)[~unchanged] > 0).all()
    meta = trainer.metadata()
    assert meta["training"]["config"]["clean_fraction"] == 0.5


def test_clean_fraction_zero_keeps_the_stream_of_pairs(images):
    # Runs without stripe-free patches draw exactly what they drew before the option existed.
    trainer = DestripeTrainer(images, tiny_config())
    x, y = trainer._pairs(np.random.default_rng(5), trainer.sources, 8)
    rng = np.random.default_rng(5)
    clean = [trainer._patch(rng, trainer.sources) for _ in range(8)]
    mix, modes = check_mix(trainer.config.stripe_mix, trainer.config.modes)
    striped = [random_degradation(rng, c, mix, modes) for c in clean]
    np.testing.assert_array_equal(y[:, 0], np.stack(clean))
    np.testing.assert_array_equal(x[:, 0], np.stack(striped))


def test_bright_fraction_brightens_some_multiplicative_fields():
    # Streaks where the sheet is stronger: with bright_fraction some multiplicative fields
    # multiply by 1 + field (brighter than the clean patch), the rest still attenuate.
    rng = np.random.default_rng(0)
    clean = np.full((48, 48), 0.5, np.float32)
    mix, modes = check_mix((1, 1, 1), ("multiplicative",))
    outs = [random_degradation(rng, clean, mix, modes, bright_fraction=0.5) for _ in range(60)]
    brighter = [o.max() > 0.5 + 1e-3 for o in outs]
    darker = [o.min() < 0.5 - 1e-3 for o in outs]
    assert 10 < sum(brighter) < 55 and 10 < sum(darker) < 55
    # At most two fields of gain 1.9 (the strongest attenuation, 0.9, mirrored) on a patch.
    assert all(o.max() <= 0.5 * 1.9**2 + 1e-5 for o in outs)
    trainer = DestripeTrainer(
        [clean * 100 + np.arange(48, dtype=np.float32)], tiny_config(bright_fraction=0.3)
    )
    assert trainer.metadata()["training"]["config"]["bright_fraction"] == 0.3


def test_shadow_fraction_draws_absorber_shadows():
    # Shadows start at their absorber: on a flat patch a shadow field leaves a stretch of every
    # shadowed row untouched before (or, light from the other side, after) its onset, which
    # the simulator's through-going or symmetrically fading stripes seldom do.
    rng = np.random.default_rng(3)
    onsets = 0
    for _ in range(10):
        field = shadow_field(rng, (64, 96), (0.5, 0.8))
        assert field.shape == (64, 96) and field.dtype == np.float32
        assert field.min() >= 0.0 and field.max() < 1.0
        dark = field[field.max(axis=1) > 0.3]
        assert len(dark)
        # A shadowed row that is stripe-free over at least a fifth of the width, at one end.
        clear = [min(np.argmax(r > 0.01), np.argmax(r[::-1] > 0.01)) for r in dark]
        onsets += max(clear) > 96 // 5
    assert onsets >= 2  # dense fields cover every row with several stripes
    # The same seed, the same field; with shadow_fraction all fields are shadows.
    one = shadow_field(np.random.default_rng(4), (64, 96), (0.5, 0.8))
    np.testing.assert_array_equal(one, shadow_field(np.random.default_rng(4), (64, 96), (0.5, 0.8)))
    clean = np.full((64, 96), 0.5, np.float32)
    mix, modes = check_mix((1, 1, 1), ("multiplicative", "additive"))
    outs = [random_degradation(rng, clean, mix, modes, shadow_fraction=0.99) for _ in range(12)]
    assert all(o.shape == clean.shape and not np.array_equal(o, clean) for o in outs)
    # 0 draws nothing extra: the older stream of pairs stays the same.
    a = random_degradation(np.random.default_rng(9), clean, mix, modes)
    b = random_degradation(np.random.default_rng(9), clean, mix, modes, shadow_fraction=0.0)
    np.testing.assert_array_equal(a, b)
    trainer = DestripeTrainer(
        [clean * 100 + np.arange(96, dtype=np.float32)], tiny_config(shadow_fraction=0.4)
    )
    assert trainer.metadata()["training"]["config"]["shadow_fraction"] == 0.4
    x, y = trainer._pairs(np.random.default_rng(1), trainer.sources, 4)
    assert x.shape == y.shape == (4, 1, 32, 32)


def test_varied_shadow_profiles_widen_the_cross_sections():
    # "classic" is the stream every shipped model was trained on: the default, bit for bit.
    for seed in range(4):
        np.testing.assert_array_equal(
            shadow_field(np.random.default_rng(seed), (64, 96), (0.5, 0.8)),
            shadow_field(np.random.default_rng(seed), (64, 96), (0.5, 0.8), "classic"),
        )

    def shapes(varied: bool) -> np.ndarray:
        # Each cross-section's reach (width at 5 % of the peak over the width at half of it)
        # and lopsidedness (difference of its two flanks' widths at a fifth of the peak).
        d = np.arange(-200.0, 200.5, 0.5)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(400):
            p = _cross_section(rng, d, varied)
            reach = np.count_nonzero(p > 0.05) / max(1, np.count_nonzero(p > 0.5))
            top = np.flatnonzero(p > 0.9)
            centre = (top[0] + top[-1]) // 2  # the middle of a flat top
            lop = abs(np.count_nonzero(p[:centre] > 0.2) - np.count_nonzero(p[centre:] > 0.2))
            out.append((reach, lop))
        return np.array(out, dtype=np.float64)

    classic, varied = shapes(False), shapes(True)
    # A Gaussian's 5 % width is 2.1 times its half width, a flat top's less (a narrow one
    # sampled every half pixel up to 3); haloed and long-flanked profiles reach several times
    # further, and lopsided ones are asymmetric.
    assert classic[:, 0].max() <= 3 and classic[:, 1].max() <= 2
    assert (varied[:, 0] > 4).mean() > 0.1 and (varied[:, 1] > 4).mean() > 0.03
    with pytest.raises(ValueError, match="profiles"):
        shadow_field(np.random.default_rng(0), (32, 32), (0.5, 0.8), "round")
    # The trainer draws them when asked and records it.
    clean = np.full((64, 96), 0.5, np.float32)
    trainer = DestripeTrainer(
        [clean * 100 + np.arange(96, dtype=np.float32)],
        tiny_config(shadow_fraction=0.5, shadow_profiles="varied"),
    )
    assert trainer.metadata()["training"]["config"]["shadow_profiles"] == "varied"
    mix, modes = check_mix((1, 1, 1), ("multiplicative",))
    differ = 0
    for seed in range(8):
        a = random_degradation(np.random.default_rng(seed), clean, mix, modes, shadow_fraction=0.99)
        b = random_degradation(
            np.random.default_rng(seed), clean, mix, modes, 0.0, 0.99, shadow_profiles="varied"
        )
        assert a.shape == b.shape
        differ += not np.array_equal(a, b)
    assert differ >= 4


def test_batch_source_feeds_the_training_steps(images):
    # A trainer takes its batches from batch_source when one is set (the training script sets
    # batches made in worker processes): training on the same batches gives the same weights.
    donor = DestripeTrainer(images, tiny_config(val_patches=0))
    batches = [donor._pairs(np.random.default_rng(k), donor.sources, 4) for k in range(3)]
    runs = []
    for _ in range(2):
        trainer = DestripeTrainer(images, tiny_config(val_patches=0, steps=3))
        feed = iter(batches)
        trainer.batch_source = lambda feed=feed: next(feed)
        run_to_end(trainer.train(), progress_bar=False)
        runs.append(weights(trainer.model))
    plain = DestripeTrainer(images, tiny_config(val_patches=0, steps=3))
    run_to_end(plain.train(), progress_bar=False)
    for key, value in runs[0].items():
        torch.testing.assert_close(value, runs[1][key])
    assert any(not torch.equal(v, weights(plain.model)[k]) for k, v in runs[0].items())


def test_random_degradation_modes_and_types():
    rng = np.random.default_rng(0)
    clean = np.full((40, 40), 0.5, np.float32)
    mix, _ = check_mix((1, 0, 0), ("multiplicative",))
    for _ in range(5):
        out = random_degradation(rng, clean, mix, ("multiplicative",))
        assert out.max() <= 0.5 + 1e-6 and out.min() >= 0  # shadows only attenuate
        # Regular stripes are constant along x.
        assert np.allclose(out, out[:, :1])
    mix, _ = check_mix((0, 1, 0), ("additive",))
    outs = [random_degradation(rng, clean, mix, ("additive",)) for _ in range(20)]
    assert any(o.max() > 0.5 for o in outs) and any(o.min() < 0.5 for o in outs)


def test_small_images_are_reflect_padded_to_a_patch():
    small = load_sample("nuclei")[:20, :24]
    trainer = DestripeTrainer([small], tiny_config(val_patches=2))
    assert trainer.sources[0].planes.shape == (1, 32, 32)
    run_to_end(trainer.train(2), progress_bar=False)
    assert trainer.step == 2


def test_loss_decreases(images):
    trainer = DestripeTrainer(images, tiny_config(steps=30, val_every=10, preview_every=0))
    summary = run_to_end(trainer.train(), progress_bar=False)
    mae = [h["mae"] for h in trainer.history]
    assert len(mae) == 30 and summary["steps"] == 30
    assert np.mean(mae[-8:]) < 0.7 * np.mean(mae[:8])
    val = [h["val_psnr"] for h in trainer.history if "val_psnr" in h]
    assert len(val) == 3
    assert val[-1] > val[0]


def test_progress_reports(images):
    trainer = DestripeTrainer(images, tiny_config(steps=4))
    reports = list(_drive(trainer.train()))
    assert [p.step for p in reports] == [1, 2, 3, 4]
    assert all(p.total == 4 and p.stage == "train" for p in reports)
    for p in reports:
        assert set(p.losses) == {"total", "mae", "perceptual", "level"}
        assert p.losses["perceptual"] == 0.0
        assert p.losses["level"] == 0.0  # level_weight 0: the term is not computed
        assert p.losses["total"] == pytest.approx(p.losses["mae"])
    # Validation every 3 steps and at the end; previews every 2 steps and at the end.
    assert [bool(p.metrics) for p in reports] == [False, False, True, True]
    assert set(reports[2].metrics) == {"val_psnr", "val_ssim", "val_input_psnr", "val_input_ssim"}
    assert reports[2].metrics["val_input_psnr"] == pytest.approx(trainer.val_input_psnr)
    assert [p.preview is not None for p in reports] == [False, True, False, True]
    preview = reports[1].preview
    assert set(preview) == {"input", "output", "target"}
    for arr in preview.values():
        assert arr.shape == (32, 32) and arr.dtype == np.float32


def _drive(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


def test_seeded_runs_are_identical_on_cpu(images):
    losses = []
    for seed in (0, 0, 1):
        trainer = DestripeTrainer(images, tiny_config(seed=seed))
        run_to_end(trainer.train(4), progress_bar=False)
        losses.append([h["loss"] for h in trainer.history])
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


def test_stop_keeps_weights_and_train_continues(images):
    trainer = DestripeTrainer(images, tiny_config(steps=6))
    gen = trainer.train()
    for _ in range(3):
        next(gen)
    snapshot = weights(trainer.model)
    gen.close()  # what napari's worker quit and Ctrl-C do
    assert trainer.step == 3 and len(trainer.history) == 3
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in snapshot.items())
    more = list(_drive(trainer.train(2)))
    assert [p.step for p in more] == [4, 5] and more[-1].total == 5
    run_to_end(trainer.train(), progress_bar=False)  # up to config.steps
    assert trainer.step == 6

    # Stopping and continuing gives the same run as not stopping at all.
    uninterrupted = DestripeTrainer(images, tiny_config(steps=6))
    run_to_end(uninterrupted.train(), progress_bar=False)
    assert [h["loss"] for h in trainer.history] == [h["loss"] for h in uninterrupted.history]


def test_save_load_round_trip_and_metadata(images, tmp_path):
    names = ["nuclei crop", "maize crop", "tribolium stack"]
    trainer = DestripeTrainer(images, tiny_config(steps=3), names=names)
    run_to_end(trainer.train(), progress_bar=False)
    path = trainer.save(tmp_path / "model")
    assert path == tmp_path / "model.safetensors"
    net, meta = load_destripe_model(tmp_path / "model.safetensors", device="cpu")
    x = torch.rand(2, 1, 40, 36)
    with torch.no_grad():
        assert torch.equal(net(x), trainer.model.eval()(x))

    on_disk = json.loads((tmp_path / "model.json").read_text())
    for m in (meta, on_disk):
        assert m["task"] == "destripe"
        assert m["architecture"] == trainer.model.architecture()
        assert m["steps"] == 3
        assert m["training"]["perceptual_weight"] == 0.0
        assert m["training"]["config"]["patch_size"] == 32
        assert [d["name"] for d in m["data"]] == names
        assert m["data"][2]["shape"] == [3, 64, 64] and m["data"][1]["dtype"] == "uint8"
        assert m["normalisation"]["percentiles"] == list(NORM_PERCENTILES)
        assert m["validation"]["psnr"] == pytest.approx(trainer.history[-1]["val_psnr"])
        assert m["validation"]["input_psnr"] == pytest.approx(trainer.val_input_psnr)
        assert [h["step"] for h in m["validation_history"]] == [3]


def test_resume_from_file_continues(images, tmp_path):
    trainer = DestripeTrainer(images, tiny_config(steps=3))
    run_to_end(trainer.train(), progress_bar=False)
    trainer.save(tmp_path / "m")
    resumed = DestripeTrainer.resume(tmp_path / "m", images, steps=5, learning_rate=1e-3)
    assert resumed.step == 3
    assert resumed.config.learning_rate == 1e-3
    assert all(
        torch.equal(v, resumed.model.state_dict()[k]) for k, v in weights(trainer.model).items()
    )
    reports = list(_drive(resumed.train()))
    assert [p.step for p in reports] == [4, 5]
    resumed.save(tmp_path / "m2")
    _, meta = load_destripe_model(tmp_path / "m2", device="cpu")
    assert meta["steps"] == 5
    assert [h["step"] for h in meta["validation_history"]] == [3, 5]
    with pytest.raises(RestoreInputError, match="network"):
        DestripeTrainer.resume(tmp_path / "m", images, base_channels=8)


def test_perceptual_loss_with_vgg_weights(images, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from napari_restore.models.vgg import VGG19Features

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(RestoreInputError, match="perceptual weight to 0"):
        DestripeTrainer(images, tiny_config(perceptual_weight=0.1))

    torch.manual_seed(0)
    fake = VGG19Features(load=False).state_dict()  # random weights in the right layout
    save_file(fake, str(tmp_path / "vgg.safetensors"))
    cfg = tiny_config(perceptual_weight=0.1, vgg_weights=str(tmp_path / "vgg.safetensors"))
    trainer = DestripeTrainer(images, cfg)
    reports = list(_drive(trainer.train(2)))
    for p in reports:
        assert p.losses["perceptual"] > 0
        expected = p.losses["mae"] + 0.1 * p.losses["perceptual"]
        assert p.losses["total"] == pytest.approx(expected, rel=1e-5)
    # The frozen VGG is not part of the saved network.
    trainer.save(tmp_path / "m")
    net, _ = load_destripe_model(tmp_path / "m", device="cpu")
    assert not any(k.startswith("features") for k in net.state_dict())


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"stripe_mix": (0, 0, 0)}, "positive sum"),
        ({"stripe_mix": (1, 1)}, "weights"),
        ({"stripe_mix": {"wavy": 1.0}}, "unknown kind"),
        ({"stripe_mix": {"regular": -1.0, "tilted": 2.0}}, "non-negative"),
        ({"modes": ("sideways",)}, "modes"),
        ({"modes": ()}, "modes"),
        ({"patch_size": 8}, "patch_size"),
        ({"perceptual_weight": -1.0}, "perceptual_weight"),
        ({"level_weight": -0.5}, "level_weight"),
        ({"level_weight": float("nan")}, "level_weight"),
        ({"pixel_loss": "huber"}, "pixel_loss"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"batch_size": 0}, "batch_size"),
        ({"clean_fraction": 1.0}, "clean_fraction"),
        ({"clean_fraction": -0.1}, "clean_fraction"),
        ({"bright_fraction": 1.0}, "bright_fraction"),
        ({"bright_fraction": -0.5}, "bright_fraction"),
        ({"shadow_fraction": 1.0}, "shadow_fraction"),
        ({"shadow_fraction": -0.1}, "shadow_fraction"),
        ({"shadow_profiles": "round"}, "shadow_profiles"),
    ],
)
def test_config_is_validated(changes, match):
    with pytest.raises(RestoreInputError, match=match):
        tiny_config(**changes)


def test_config_dict_round_trip():
    cfg = tiny_config(modes=["additive"], stripe_mix=[1, 2, 3], lr_schedule="cosine")
    # Three numbers (model files and command lines before the registry) are read in order.
    assert cfg.modes == ("additive",)
    assert cfg.stripe_mix == {"regular": 1.0, "gaussian": 2.0, "tilted": 3.0}
    again = DestripeTrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_cosine_schedule_decays(images):
    trainer = DestripeTrainer(images, tiny_config(steps=4, lr_schedule="cosine", val_patches=0))
    run_to_end(trainer.train(), progress_bar=False)
    lrs = [h["lr"] for h in trainer.history]
    assert lrs[0] == pytest.approx(2e-3)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert "val_psnr" not in trainer.history[-1]


def test_fine_tune_restarts_the_cosine_at_its_first_step(images, tmp_path):
    # A fine-tune resumes a trained model at step n; with lr_start_step=n its cosine runs over
    # its own steps from the full rate, instead of continuing the first run's decayed tail.
    first = DestripeTrainer(images, tiny_config(steps=4, lr_schedule="cosine", val_patches=0))
    run_to_end(first.train(), progress_bar=False)
    path = first.save(tmp_path / "trained")
    tune = DestripeTrainer.resume(path, images, steps=8, lr_start_step=4, learning_rate=1e-3)
    run_to_end(tune.train(), progress_bar=False)
    lrs = [h["lr"] for h in tune.history if h["step"] > 4]
    assert len(lrs) == 4
    assert lrs[0] == pytest.approx(1e-3)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    tail = DestripeTrainer.resume(path, images, steps=8, learning_rate=1e-3)
    run_to_end(tail.train(), progress_bar=False)
    assert next(h["lr"] for h in tail.history if h["step"] > 4) < 0.6e-3


def test_bad_inputs_are_refused():
    with pytest.raises(RestoreInputError, match="No training images"):
        DestripeTrainer([], tiny_config())
    with pytest.raises(RestoreInputError, match="2D"):
        DestripeTrainer([np.zeros(10)], tiny_config())
    with pytest.raises(RestoreInputError, match="NaN"):
        DestripeTrainer([np.full((40, 40), np.nan)], tiny_config())


@pytest.mark.gpu
def test_cuda_bf16_training_and_inference(images):
    trainer = DestripeTrainer(images, tiny_config(device="cuda:0", amp=True))
    run_to_end(trainer.train(3), progress_bar=False)
    assert all(np.isfinite(h["loss"]) for h in trainer.history)
    assert trainer.model.head.weight.dtype == torch.float32  # autocast keeps fp32 weights
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        gpu = trainer.model(x.cuda()).cpu()
        cpu = trainer.model.cpu()(x)
    assert torch.allclose(gpu, cpu, atol=1e-3)


def test_slow_steps_are_validated_by_time_with_the_same_losses(images):
    """val_seconds: a validation (and a preview) once that much time has passed, between the
    every-N-steps ones; the losses are those of a run validated by steps only."""
    slow = {"steps": 4, "val_every": 100, "preview_every": 100}
    by_steps = DestripeTrainer(images, tiny_config(**slow))
    by_time = DestripeTrainer(images, tiny_config(**slow, val_seconds=1e-9))
    plain = list(by_steps.train())
    timed = list(by_time.train())
    assert [bool(p.metrics) for p in plain] == [False, False, False, True]  # at the end only
    assert all(p.metrics and p.preview is not None for p in timed)
    assert [p.losses for p in timed] == [p.losses for p in plain]


def test_level_error_measures_the_mean_of_unstriped_pixels():
    clean = torch.rand(2, 1, 16, 16) + 0.5
    striped = clean.clone()
    striped[0, :, :4] *= 0.5  # patch 0: four striped rows; patch 1: no stripes
    # A uniform +0.1 everywhere: the level of the unstriped pixels is off by 0.1 in both patches.
    assert stripe_free_level_error(clean + 0.1, striped, clean).item() == pytest.approx(0.1)
    # Changes on the striped rows alone are the MAE's business, not this term's.
    pred = clean.clone()
    pred[0, :, :4] += 1.0
    assert stripe_free_level_error(pred, striped, clean).item() == pytest.approx(0.0, abs=1e-6)
    # Changes of both signs that cancel in the mean cost nothing; of one sign, their mean.
    pred = clean.clone()
    pred[1, :, :8] += 0.2
    pred[1, :, 8:] -= 0.2
    assert stripe_free_level_error(pred, striped, clean).item() == pytest.approx(0.0, abs=1e-6)
    # A patch striped everywhere has no level to keep.
    assert stripe_free_level_error(clean, clean * 0.5, clean) is None


def test_level_weight_trains_and_is_recorded(images, tmp_path):
    plain = DestripeTrainer(images, tiny_config(clean_fraction=0.5))
    levelled = DestripeTrainer(images, tiny_config(clean_fraction=0.5, level_weight=2.0))
    plain_reports = list(itertools.islice(plain.train(), 6))
    level_reports = list(itertools.islice(levelled.train(), 6))
    # The same pairs and initial weights: the first step's loss differs by the level term.
    first_plain, first_level = plain.history[0], levelled.history[0]
    assert plain.history[0]["level"] == 0.0
    assert first_level["level"] > 0.0
    assert first_level["loss"] == pytest.approx(
        first_plain["loss"] + 2.0 * first_level["level"], rel=1e-5
    )
    assert len(plain_reports) == len(level_reports) == 6
    path = levelled.save(tmp_path / "level")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["training"]["config"]["level_weight"] == 2.0
    assert "level_weight" in meta["training"]["loss"]
    # Resuming keeps the setting.
    resumed = DestripeTrainer.resume(path, images)
    assert resumed.config.level_weight == 2.0


def test_squared_error_loss_trains_and_is_recorded(images, tmp_path):
    mae = DestripeTrainer(images, tiny_config())
    mse = DestripeTrainer(images, tiny_config(pixel_loss="mse"))
    list(itertools.islice(mae.train(), 1))
    list(itertools.islice(mse.train(), 1))
    # The same pairs and initial weights: the same MAE is reported; the MAE run's loss is it,
    # the MSE run's is the mean squared error, at least the MAE squared (Jensen) and below the
    # MAE where every error is under one (normalised intensities).
    first_mae, first_mse = mae.history[0], mse.history[0]
    assert first_mse["mae"] == pytest.approx(first_mae["mae"], rel=1e-5)
    assert first_mae["loss"] == pytest.approx(first_mae["mae"], rel=1e-6)
    assert first_mse["mae"] ** 2 <= first_mse["loss"] < first_mse["mae"]
    # After one step the two networks differ: the loss drove the update.
    changed = [
        not torch.equal(a, b)
        for a, b in zip(weights(mae.model).values(), weights(mse.model).values(), strict=True)
    ]
    assert any(changed)
    path = mse.save(tmp_path / "mse")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["training"]["config"]["pixel_loss"] == "mse"
    assert meta["training"]["loss"].startswith("MSE + ")
    assert DestripeTrainer.resume(path, images).config.pixel_loss == "mse"
    # Model files written before the option read as the MAE (unknown keys default).
    assert DestripeTrainConfig.from_dict({"steps": 3}).pixel_loss == "mae"


def test_fine_tune_grows_strip_context_from_a_plain_model(images, tmp_path):
    plain = DestripeTrainer(images, tiny_config(steps=3))
    run_to_end(plain.train(), progress_bar=False)
    path = plain.save(tmp_path / "plain")
    grown = DestripeTrainer.resume(path, images, steps=5, strip_context=True)
    assert grown.model.architecture()["kwargs"]["strip_context"] is True
    assert grown.step == 3
    x = torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(grown.model(x), plain.model(x))  # it starts where the file was
    run_to_end(grown.train(), progress_bar=False)
    assert any(
        not torch.equal(v, torch.zeros_like(v))
        for k, v in weights(grown.model).items()
        if k.startswith("contexts.") and ".out." in k
    )
    grown_path = grown.save(tmp_path / "grown")
    _, meta = load_destripe_model(grown_path, device="cpu")
    assert meta["architecture"]["kwargs"]["strip_context"] is True
    # Resuming keeps the module; the one change allowed is adding it, never dropping it.
    assert DestripeTrainer.resume(grown_path, images).config.strip_context is True
    with pytest.raises(RestoreInputError, match="strip_context"):
        DestripeTrainer.resume(grown_path, images, strip_context=False)
