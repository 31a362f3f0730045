"""Model metadata is checked against a schema with bounds before any network is built, and
weights that do not fit their network give the project's error (also when resuming)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import napari_restore.models as models
from napari_restore.denoise.train import DenoiseTrainConfig, DenoiseTrainer
from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer
from napari_restore.engine.model_files import load_model, save_model_file
from napari_restore.errors import RestoreInputError
from napari_restore.models import build_model
from napari_restore.models.rescbam_unet import ResCBAMUNet
from napari_restore.models.srdtrans import SRDTrans

TINY_SRD = {"channels": [2, 4, 4, 8], "embed_dim": 16, "heads": 2}


def _save(tmp_path, net, task, name="m", **extra):
    torch.manual_seed(0)
    meta = {"task": task, "architecture": net.architecture(), **extra}
    save_model_file(tmp_path / name, dict(net.state_dict()), meta)
    return tmp_path / f"{name}.json"


@pytest.fixture
def unet_json(tmp_path):
    net = ResCBAMUNet(base_channels=4, depth=2)
    norm = {"method": "percentile", "percentiles": [1.0, 99.9]}
    return _save(tmp_path, net, "destripe", normalisation=norm, steps=3)


@pytest.fixture
def srd_json(tmp_path):
    net = SRDTrans(patch_t=16, **TINY_SRD)
    return _save(tmp_path, net, "denoise", name="s", normalization={"method": "mean_std"})


def _edit(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _set(*keys_value):
    *keys, value = keys_value

    def change(meta):
        node = meta
        for key in keys[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return change


_DELETE = object()
UNET_CASES = [
    (_set("task", _DELETE), "'task' must be one of destripe, denoise"),
    (_set("task", "segment"), "'task' must be one of"),
    (_set("architecture", _DELETE), "'architecture' is missing"),
    (_set("architecture", "ResCBAMUNet"), "'architecture' must be an object"),
    (_set("architecture", "name", 5), "'architecture.name' must be one of"),
    (_set("architecture", "kwargs", []), "'architecture.kwargs' must be an object"),
    (_set("architecture", "kwargs", "depth", _DELETE), "'architecture.kwargs.depth'.*missing"),
    (_set("architecture", "kwargs", "depth", 40), r"kwargs.depth' must be an integer from 1 to 6"),
    (_set("architecture", "kwargs", "depth", "4"), r"kwargs.depth' must be an integer"),
    (_set("architecture", "kwargs", "depth", 2.5), r"kwargs.depth' must be an integer"),
    (_set("architecture", "kwargs", "depth", True), r"kwargs.depth' must be an integer"),
    (_set("architecture", "kwargs", "base_channels", 0), r"base_channels' .*from 1 to 256"),
    (_set("architecture", "kwargs", "base_channels", 1e9), r"base_channels' .*from 1 to 256"),
    (_set("architecture", "kwargs", "use_cbam", "yes"), r"use_cbam' must be true or false"),
    (_set("architecture", "kwargs", "dropout", 0.5), r"unknown key\(s\) dropout"),
    (_set("architecture", "kwargs", "depth", 4), None),  # with base_channels 256 below
    (_set("steps", -1), r"'steps' must be an integer >= 0"),
    (_set("steps", "3"), r"'steps' must be an integer >= 0"),
    (_set("normalisation", 3), r"'normalisation' must be an object"),
    (_set("normalisation", "percentiles", [99, 1]), r"percentiles' must be two numbers"),
    (_set("normalisation", "percentiles", ["1", 99]), r"percentiles' must be two numbers"),
    (_set("training", []), r"'training' must be an object"),
    (_set("validation_history", {"a": 1}), r"'validation_history' must be a list"),
    (_set("format_version", "1"), r"'format_version' must be an integer"),
]
SRD_CASES = [
    (_set("architecture", "kwargs", "patch_t", 1.6e9), r"patch_t' must be an integer from 2 "),
    (_set("architecture", "kwargs", "patch_t", 1_600_000_000), r"patch_t' .*2 to 1024"),
    (_set("architecture", "kwargs", "patch_t", 40), r"patch_t'=40 must be a multiple of 16"),
    (_set("architecture", "kwargs", "channels", []), r"channels' must be a list of 1 to 6"),
    (_set("architecture", "kwargs", "channels", [2, "x"]), r"channels\[1\]' must be an int"),
    (_set("architecture", "kwargs", "heads", 0), r"heads' must be an integer from 1 to 64"),
    (_set("architecture", "kwargs", "embed_dim", 17), r"divisible by heads"),
    (_set("architecture", "kwargs", "mlp_ratio", float("nan")), r"mlp_ratio' must be a number"),
    (_set("architecture", "kwargs", "attn_drop", 1.5), r"attn_drop' .*from 0 to 0.99"),
    (_set("data", [1, 2]), r"'data' must be an object"),
    (_set("losses", {"history": 7}), r"'losses.history' must be a list"),
    (_set("normalization", []), r"'normalization' must be an object"),
]


@pytest.mark.parametrize(("change", "match"), UNET_CASES + SRD_CASES)
def test_malformed_metadata_names_the_key_before_building(
    change, match, unet_json, srd_json, monkeypatch
):
    path = srd_json if (change, match) in SRD_CASES else unet_json
    _edit(path, change)
    if match is None:
        _edit(path, _set("architecture", "kwargs", "base_channels", 256))
        match = r"base_channels \* 2\*\*depth = 4096; at most 2048"
    built = []
    monkeypatch.setattr(models, "build_model", lambda *a: built.append(a))
    with pytest.raises(RestoreInputError, match=match):
        load_model(path, device="cpu")
    assert not built  # refused before any network was allocated


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe{\x00", b"{", b"[1, 2]", b"null", b'"text"'],
    ids=["not-utf8", "truncated", "list", "null", "string"],
)
def test_unreadable_metadata_json(unet_json, content):
    unet_json.write_bytes(content)
    with pytest.raises(RestoreInputError, match=str(unet_json.name)):
        load_model(unet_json, device="cpu")


def test_header_metadata_that_is_not_json(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "h.safetensors"), {"napari_restore": "{"})
    with pytest.raises(RestoreInputError, match="not valid JSON"):
        load_model(tmp_path / "h.safetensors", device="cpu")


def test_build_model_checks_the_bounds():
    with pytest.raises(RestoreInputError, match="depth' must be an integer from 1 to 6"):
        build_model({"name": "ResCBAMUNet", "kwargs": {**_unet_kwargs(), "depth": 40}})
    net = build_model({"name": "ResCBAMUNet", "kwargs": _unet_kwargs()})
    assert isinstance(net, ResCBAMUNet)


def _unet_kwargs():
    return ResCBAMUNet(base_channels=4, depth=2).architecture()["kwargs"]


def test_weights_that_do_not_fit_the_metadata(unet_json):
    _edit(unet_json, _set("architecture", "kwargs", "base_channels", 8))
    with pytest.raises(RestoreInputError, match="do not fit the network"):
        load_model(unet_json, device="cpu")


def test_destripe_resume_with_mismatched_weights(tmp_path):
    images = [np.random.default_rng(0).uniform(0, 1000, (64, 64)).astype(np.float32)]
    config = DestripeTrainConfig(
        steps=0, patch_size=32, base_channels=4, depth=2, val_patches=0, device="cpu"
    )
    DestripeTrainer(images, config).save(tmp_path / "m")

    def wider(meta):
        meta["architecture"]["kwargs"]["base_channels"] = 8
        meta["training"]["config"]["base_channels"] = 8

    _edit(tmp_path / "m.json", wider)
    with pytest.raises(RestoreInputError, match="do not fit the network"):
        DestripeTrainer.resume(tmp_path / "m", images)
    _edit(tmp_path / "m.json", _set("training", "config", "depth", "deep"))
    with pytest.raises(RestoreInputError):
        DestripeTrainer.resume(tmp_path / "m", images)


def test_denoise_resume_with_mismatched_weights(tmp_path):
    stack = np.random.default_rng(0).uniform(0, 100, (16, 32, 32)).astype(np.float32)
    config = DenoiseTrainConfig(
        patch_t=16, patch_xy=16, epochs=1, patches_per_epoch=2, device="cpu",
        preview_every=0, model_kwargs=TINY_SRD,
    )  # fmt: skip
    DenoiseTrainer(stack, config).save(tmp_path / "d")
    good = copy.deepcopy(json.loads((tmp_path / "d.json").read_text()))

    def wider(meta):
        meta["architecture"]["kwargs"]["channels"] = [2, 4, 4, 16]
        meta["training"]["config"]["model_kwargs"]["channels"] = [2, 4, 4, 16]

    _edit(tmp_path / "d.json", wider)
    with pytest.raises(RestoreInputError, match="do not fit the network"):
        DenoiseTrainer.resume(tmp_path / "d", stack)
    (tmp_path / "d.json").write_text(json.dumps(good))
    _edit(tmp_path / "d.json", _set("architecture", "kwargs", "patch_t", _DELETE))
    with pytest.raises(RestoreInputError, match=r"patch_t'.*missing"):
        DenoiseTrainer.resume(tmp_path / "d", stack)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"depth": 40}, "depth=40 must be at most 6"),
        ({"base_channels": 100_000}, "base_channels=100000 must be at most 256"),
        ({"base_channels": 256, "depth": 4}, r"base_channels \* 2\*\*depth = 4096"),
    ],
)
def test_training_settings_share_the_model_file_bounds(changes, match):
    with pytest.raises(RestoreInputError, match=match):
        DestripeTrainConfig(**{"patch_size": 64, **changes})
