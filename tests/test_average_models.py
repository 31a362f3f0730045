"""scripts/average_destripe_models.py: weight averages (SWA, WiSE-FT) and phase records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from napari_restore.engine.model_files import load_model_file, save_model_file
from napari_restore.models.rescbam_unet import ResCBAMUNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import average_destripe_models as avg


def _model(path: Path, seed: int, meta: dict) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = ResCBAMUNet(base_channels=4, depth=2)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    save_model_file(path, state, {"task": "destripe", "architecture": net.architecture()} | meta)
    return state


@pytest.fixture()
def models(tmp_path):
    base_meta = {
        "steps": 100,
        "minutes": 10.0,
        "training_phases": [{"steps": [0, 100], "command": "train A", "device": "cpu"}],
    }
    base = _model(tmp_path / "base", 0, base_meta)
    tuned = _model(tmp_path / "tuned", 1, {"steps": 160, "training": {"lr": 5e-5}})
    return tmp_path, base, tuned


def test_wise_ft_weighs_a_file_listed_twice_twice(models):
    root, base, tuned = models
    out = root / "wise"
    assert avg.main([str(out), str(root / "base"), str(root / "base"), str(root / "tuned")]) == 0
    state, meta = load_model_file(out, task="destripe")
    for key in base:
        expected = (2 * base[key].float() + tuned[key].float()) / 3
        torch.testing.assert_close(state[key].float(), expected)
    # Without --phase: the last file's metadata, the averaged files recorded.
    assert meta["steps"] == 160 and meta["training"] == {"lr": 5e-5}
    assert meta["weight_average"]["steps"] == [100, 100, 160]


def test_phase_record_extends_the_base_models_history(models):
    root, _, _ = models
    phase = {"steps": [100, 160], "command": "train B; average", "device": "cpu", "minutes": 2.5}
    (root / "phase.json").write_text(json.dumps(phase), encoding="utf-8")
    out = root / "shipped"
    args = [str(out), str(root / "base"), str(root / "tuned"), "--phase", str(root / "phase.json")]
    assert avg.main(args) == 0
    _, meta = load_model_file(out, task="destripe")
    assert [p["command"] for p in meta["training_phases"]] == ["train A", "train B; average"]
    assert meta["steps"] == 160 and meta["minutes"] == 12.5
    assert "training" not in meta  # the base model's metadata, not the snapshot's
    assert meta["weight_average"]["shares"] == {"base.safetensors": 0.5, "tuned.safetensors": 0.5}
    # An existing output is never replaced unasked.
    with pytest.raises(SystemExit, match="exists"):
        avg.main(args)


def test_a_phase_record_without_its_command_is_refused(models):
    root, _, _ = models
    (root / "phase.json").write_text(json.dumps({"steps": [100, 160]}), encoding="utf-8")
    out = root / "shipped"
    with pytest.raises(SystemExit, match="command"):
        avg.main(
            [str(out), str(root / "base"), str(root / "tuned"), "--phase", str(root / "phase.json")]
        )
    assert not out.with_suffix(".safetensors").exists()


def test_a_plain_model_is_grown_to_average_with_a_strip_context_fine_tune(models):
    root, base, _ = models
    torch.manual_seed(2)
    net = ResCBAMUNet(base_channels=4, depth=2, strip_context=True)
    tuned = {k: v.clone() for k, v in net.state_dict().items()}
    for k in tuned:
        if k.startswith("contexts.") and ".out." in k:
            tuned[k].normal_()
    save_model_file(root / "grown", tuned, {"task": "destripe", "architecture": net.architecture()})
    out = root / "wise"
    assert avg.main([str(out), str(root / "base"), str(root / "grown")]) == 0
    state, meta = load_model_file(out, task="destripe")
    assert meta["architecture"]["kwargs"]["strip_context"] is True
    for key, value in tuned.items():
        if key in base:  # the shared weights: the plain mean
            torch.testing.assert_close(state[key].float(), (base[key] + value).float() / 2)
        elif ".out." in key:  # the context output: halved (the plain file's is zero)
            torch.testing.assert_close(state[key].float(), value.float() / 2)
        else:  # the rest of the module: the fine-tune's (it does nothing at zero output)
            torch.testing.assert_close(state[key].float(), value.float())
