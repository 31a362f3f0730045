"""A stripe kind registered from outside the package: simulated, trained on, offered by the CLI
and the docks, with no package file touched."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_restore import load_sample
from napari_restore.cli import build_parser, main
from napari_restore.core.progress import run_to_end
from napari_restore.destripe.data import check_mix, random_degradation
from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer
from napari_restore.errors import RestoreInputError
from napari_restore.simulate.stripes import (
    StripeKindSpec,
    StripeParams,
    register_stripe_kind,
    signed_amplitudes,
    simulate_stripes,
    stripe_kinds,
    unregister_stripe_kind,
)

KIND = "single_line"


def draw_single_line(rng: np.random.Generator, params: StripeParams, shape: tuple[int, int]):
    """One full-width line at a random row (log-transmission or amplitude, as the kinds do)."""
    field = np.zeros(shape)
    amp = signed_amplitudes(rng, params, 1)[0]
    field[int(rng.integers(shape[0]))] = np.log1p(-amp) if params.mode == "multiplicative" else amp
    return field


def sample_single_line(rng, common, shape) -> StripeParams:
    return StripeParams(**common)


@pytest.fixture
def single_line():
    spec = register_stripe_kind(
        StripeKindSpec(KIND, (), draw_single_line, sample_single_line, "one line per plane")
    )
    yield spec
    unregister_stripe_kind(KIND)


def test_a_new_kind_is_simulated(single_line):
    assert KIND in stripe_kinds()
    clean = np.full((3, 40, 48), 1000, dtype=np.uint16)
    striped, field = simulate_stripes(clean, kind=KIND, amplitude=(0.5, 0.5), seed=4)
    for plane, f in zip(striped, field, strict=True):
        rows = np.flatnonzero(f.any(axis=1))
        assert rows.size == 1 and np.allclose(f[rows[0]], 0.5)
        assert (plane[rows[0]] == 500).all() and (np.delete(plane, rows[0], 0) == 1000).all()


def test_a_new_kind_trains_a_destriping_step(single_line):
    probabilities, modes = check_mix({KIND: 1.0}, ("multiplicative",))
    patch = np.ones((32, 32), np.float32)
    out = random_degradation(np.random.default_rng(0), patch, probabilities, modes)
    darkened_rows = np.flatnonzero((out < 1).any(axis=1))
    assert 1 <= darkened_rows.size <= 2, "one line per field (a second field at times)"
    assert (out[darkened_rows] < 1).all(), "full-width lines"

    config = DestripeTrainConfig(
        steps=1,
        batch_size=2,
        patch_size=32,
        base_channels=4,
        depth=2,
        stripe_mix={KIND: 1.0},
        val_patches=2,
        device="cpu",
    )
    trainer = DestripeTrainer([load_sample("nuclei")[:64, :64]], config)
    summary = run_to_end(trainer.train(), progress_bar=False)
    assert trainer.step == 1 and summary["steps_run"] == 1
    assert np.isfinite(summary["losses"]["total"]) and "val_psnr" in summary["metrics"]
    assert trainer.metadata()["training"]["config"]["stripe_mix"] == {KIND: 1.0}


def test_the_cli_offers_a_new_kind(single_line, tmp_path):
    clean = np.full((40, 48), 1000, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "clean.tif", clean)
    out = tmp_path / "striped.tif"
    assert main(["simulate", str(tmp_path / "clean.tif"), str(out), "--kind", KIND]) == 0
    assert (tifffile.imread(out) < 1000).any(axis=1).sum() == 1
    help_text = build_parser()._subparsers._group_actions[0].choices["train-destripe"].format_help()
    assert KIND in help_text


def test_unknown_kinds_are_refused():
    with pytest.raises(RestoreInputError, match="not one of"):
        StripeParams(kind="wavy")
    with pytest.raises(RestoreInputError, match="unknown kind"):
        check_mix({"wavy": 1.0}, ("additive",))
    with pytest.raises(ValueError, match="built-in"):
        unregister_stripe_kind("regular")
    with pytest.raises(ValueError, match="not StripeParams fields"):
        register_stripe_kind(StripeKindSpec("x", ("wobble",), draw_single_line, sample_single_line))
