"""Per-image adaptation: a fine-tuned copy learns the image, the caller's model never changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_restore import load_sample
from napari_restore.cli import main
from napari_restore.core.progress import run_to_end
from napari_restore.destripe.adapt import fine_tune_progress
from napari_restore.destripe.data import (
    check_mix,
    intensity_range,
    normalise,
    random_degradation,
    sample_plane_indices,
)
from napari_restore.destripe.infer import destripe, destripe_file, destripe_progress
from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer
from napari_restore.errors import RestoreInputError
from napari_restore.models.rescbam_unet import ResCBAMUNet
from napari_restore.simulate import simulate_stripes


@pytest.fixture
def net() -> ResCBAMUNet:
    torch.manual_seed(0)
    return ResCBAMUNet(base_channels=4, depth=2).eval()


@pytest.fixture(scope="module")
def striped() -> np.ndarray:
    clean = load_sample("nuclei")[:128, :144]
    return simulate_stripes(clean, kind="regular", seed=3).image  # uint16, clear stripes


def reports_and_result(gen):
    """Every progress report of an engine generator, and its return value."""
    reports = []
    try:
        while True:
            reports.append(next(gen))
    except StopIteration as stop:
        return reports, stop.value


def state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_adaptation_reports_its_stages_and_leaves_the_model_alone(net, striped):
    before = state(net)
    reports, out = reports_and_result(destripe_progress(striped, net, device="cpu", adapt_steps=3))
    stages = [p.stage for p in reports]
    assert stages[0] == "adapt: first pass" and stages[-1] == "tiles"
    steps = [p for p in reports if p.stage == "adapt"]
    assert [p.step for p in steps] == [1, 2, 3] and all(p.total == 3 for p in steps)
    assert all(np.isfinite(p.losses["mae"]) for p in steps)
    assert "step 3 of 3" in steps[-1].message
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert out.shape == striped.shape and out.dtype == striped.dtype
    # The adapted copy corrects differently from the model as it is, and reproducibly.
    plain = destripe(striped, net, device="cpu")
    assert not np.array_equal(out, plain)
    np.testing.assert_array_equal(out, destripe(striped, net, device="cpu", adapt_steps=3))


def test_fine_tune_learns_to_destripe_the_image_it_sees(net, striped):
    """After adapting, the network removes fresh stripes from the target better than before."""
    lo, hi = intensity_range(striped)
    target = normalise(striped, lo, hi).astype(np.float32)
    mix, modes = check_mix([1, 1, 1], ["multiplicative"])
    rng = np.random.default_rng(7)
    clean = np.stack([target[:64, :64], target[64:, 16:80], target[32:96, 80:]])
    pairs = np.stack([random_degradation(rng, c, mix, modes) for c in clean])

    def error(model: torch.nn.Module) -> float:
        with torch.no_grad():
            pred = model(torch.from_numpy(pairs[:, None]))[:, 0].numpy()
        return float(np.abs(pred - clean).mean())

    tuned = run_to_end(
        fine_tune_progress(net, [target], 60, learning_rate=3e-3, patch_size=64, seed=1),
        progress_bar=False,
    )
    assert tuned is not net and not tuned.training
    assert error(tuned) < 0.7 * error(net)


def test_a_plane_without_stripes_has_nothing_to_adapt_to(net):
    clean = load_sample("nuclei")[:128, :144]
    reports, out = reports_and_result(destripe_progress(clean, net, device="cpu", adapt_steps=5))
    assert not any(p.losses for p in reports)  # no fine-tuning step ran
    assert any("nothing to adapt" in p.message for p in reports)
    np.testing.assert_array_equal(out, clean)


def test_stacks_adapt_on_a_few_striped_planes_in_the_stripe_direction(net, striped):
    # Vertical stripes in a stack of five equal planes: one adapted network for all of them.
    stack = np.stack([striped.T] * 5)
    out = destripe(stack, net, device="cpu", direction="vertical", adapt_steps=2)
    assert out.shape == stack.shape
    for plane in out[1:]:
        np.testing.assert_allclose(plane, out[0], atol=1)
    assert not np.array_equal(out, destripe(stack, net, device="cpu", direction="vertical"))
    # The targets: evenly spaced among the striped planes, first and last included.
    assert sample_plane_indices((10,), 4) == [0, 3, 6, 9]
    assert sample_plane_indices((2,), 4) == [0, 1]


@pytest.mark.parametrize("steps", [-1, 2.5, True, "10"])
def test_bad_step_counts_are_refused_before_any_work(net, striped, tmp_path, steps):
    tifffile.imwrite(tmp_path / "in.tif", striped)
    with pytest.raises(RestoreInputError, match="adapt_steps"):
        destripe(striped, net, device="cpu", adapt_steps=steps)
    with pytest.raises(RestoreInputError, match="adapt_steps"):
        destripe_file(tmp_path / "in.tif", tmp_path / "out.tif", net, adapt_steps=steps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_command_line_adapt(tmp_path, striped, capsys):
    tifffile.imwrite(tmp_path / "in.tif", striped)
    args = ["destripe", str(tmp_path / "in.tif"), "--device", "cpu", "-q"]
    assert main([*args, "-o", str(tmp_path / "a.tif"), "--adapt", "2"]) == 0
    assert main([*args, "-o", str(tmp_path / "b.tif")]) == 0
    adapted, plain = tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif")
    assert adapted.shape == striped.shape and not np.array_equal(adapted, plain)
    # Adaptation needs whole planes on one machine: refused on a cluster, nothing written.
    rc = main([*args, "-o", str(tmp_path / "c.zarr"), "--adapt", "--workers", "1"])
    assert rc == 2 and "--adapt runs on one machine" in capsys.readouterr().err
    assert not (tmp_path / "c.zarr").exists()
    with pytest.raises(SystemExit) as exc:  # argparse: "--adapt: 0 must be >= 1"
        main([*args, "-o", str(tmp_path / "d.tif"), "--adapt", "0"])
    assert exc.value.code == 2 and "--adapt: 0 must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "d.tif").exists()


class RowPattern(torch.nn.Module):
    """A 'network' that multiplies every tile by a fixed horizontal stripe pattern: its
    correction of any plane is a pure stripe field, which the pipeline's second look keeps."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = torch.nn.Parameter(torch.tensor(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(x.shape[-2], dtype=x.dtype, device=x.device)
        return x * (1 + self.depth * torch.cos(2 * torch.pi * rows / 8))[:, None]


def test_planes_found_by_the_second_look_are_adapted_to():
    """No plane shows stripes in its spectrum, but the network's correction is a stripe
    pattern: that plane is kept by the pipeline, and adaptation learns from it."""
    clean = load_sample("nuclei")[:128, :144]
    painter = RowPattern().eval()
    assert not np.array_equal(destripe(clean, painter, device="cpu"), clean)
    reports, out = reports_and_result(
        destripe_progress(clean, painter, device="cpu", adapt_steps=2)
    )
    assert not any("nothing to adapt" in p.message for p in reports)
    assert [p.step for p in reports if p.stage == "adapt"] == [1, 2]
    assert painter.depth.item() == pytest.approx(0.2)  # a copy was fine-tuned
    assert out.shape == clean.shape


def test_adaptation_draws_stripes_as_trained_but_never_brightening(striped, tmp_path):
    # Adaptation draws its stripes in the modes, kind weights and shadow share recorded in the
    # model file, but never brightening fields (with them the real SPIM image came out 13 %
    # darker): the recorded brightening share makes no difference, the others do.
    config = DestripeTrainConfig(
        steps=0,
        batch_size=2,
        patch_size=32,
        base_channels=4,
        depth=2,
        val_patches=0,
        preview_every=0,
        device="cpu",
        modes=("multiplicative",),
        shadow_fraction=0.8,
        bright_fraction=0.5,
    )
    trainer = DestripeTrainer([load_sample("nuclei")[:96, :96]], config)
    recorded = trainer.save(tmp_path / "recorded")

    def variant(name: str, **changes: object) -> Path:
        path = trainer.save(tmp_path / name)
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["training"]["config"]["shadow_fraction"] == 0.8
        meta["training"]["config"].update(changes)
        path.with_suffix(".json").write_text(json.dumps(meta))
        return path

    image = striped[:64, :64]
    first = destripe(image, recorded, device="cpu", adapt_steps=2)
    assert not np.array_equal(first, destripe(image, recorded, device="cpu"))
    unbright = variant("unbright", bright_fraction=0.0)
    np.testing.assert_array_equal(first, destripe(image, unbright, device="cpu", adapt_steps=2))
    for name, change in [
        ("no_shadows", {"shadow_fraction": 0.0}),
        ("additive", {"modes": ["additive"]}),
        ("mix", {"stripe_mix": [0, 0, 1]}),
        ("varied_profiles", {"shadow_profiles": "varied"}),
    ]:
        other = destripe(image, variant(name, **change), device="cpu", adapt_steps=2)
        assert not np.array_equal(first, other), name
