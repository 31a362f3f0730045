"""VGG-19 features: torchvision key names, weight files (.pth and .safetensors), frozen, errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from napari_restore.errors import RestoreInputError
from napari_restore.models import vgg
from napari_restore.models.vgg import (
    PerceptualLoss,
    VGG19Features,
    hub_checkpoint_path,
    load_vgg19_features,
    vgg19_feature_keys,
)

# torchvision's vgg19().features convolutions up to conv4_3 (relu4_3 = features.24).
CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23]


@pytest.fixture(scope="module")
def fake_checkpoint() -> dict[str, torch.Tensor]:
    """A random state dict laid out like torchvision's vgg19-dcbb9e9d.pth (classifier too)."""
    g = torch.Generator().manual_seed(0)
    state = {}
    cin = 3
    widths = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512]
    for i, cout in zip(CONV_INDICES, widths, strict=True):
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
        cin = cout
    # Layers after the cut, as in the full checkpoint: they must be ignored.
    state["features.25.weight"] = torch.zeros(512, 512, 3, 3)
    state["features.25.bias"] = torch.zeros(512)
    state["classifier.6.weight"] = torch.zeros(10, 4)
    return state


@pytest.fixture(autouse=True)
def private_torch_home(tmp_path, monkeypatch):
    """Keep the real torch hub cache out of every test (no network, no user files)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_keys_are_torchvision_names_through_conv4_3():
    expected = [f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")]
    assert vgg19_feature_keys() == expected
    model = VGG19Features(load=False)
    assert len(model.features) == 25
    assert isinstance(model.features[23], torch.nn.Conv2d)  # conv4_3
    assert isinstance(model.features[24], torch.nn.ReLU)  # relu4_3: the output


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_from_user_file(tmp_path, fake_checkpoint, suffix):
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(fake_checkpoint, path)
    else:
        save_file(fake_checkpoint, str(path))
    model = load_vgg19_features(path)
    state = model.state_dict()
    assert list(state) == vgg19_feature_keys()
    for key, value in state.items():
        assert torch.equal(value, fake_checkpoint[key])
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    model.train()  # stays frozen even inside a model put in training mode
    assert not model.training
    out = model(torch.rand(2, 1, 16, 24))
    assert out.shape == (2, 512, 2, 3)


def test_grey_is_repeated_and_imagenet_normalised(tmp_path, fake_checkpoint):
    path = tmp_path / "w.safetensors"
    save_file(fake_checkpoint, str(path))
    model = load_vgg19_features(path)
    grey = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(grey), model(grey.repeat(1, 3, 1, 1)))
        mean = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
        by_hand = model.features((grey.repeat(1, 3, 1, 1) - mean) / std)
        assert torch.allclose(model(grey), by_hand)


def test_hub_cache_is_used(fake_checkpoint):
    cache = hub_checkpoint_path()
    cache.parent.mkdir(parents=True)
    torch.save(fake_checkpoint, cache)
    model = load_vgg19_features()
    assert torch.equal(model.features[0].weight, fake_checkpoint["features.0.weight"])


def test_download_goes_into_the_hub_cache(tmp_path, fake_checkpoint, monkeypatch):
    source = tmp_path / "served.pth"
    torch.save(fake_checkpoint, source)
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        # Stands in for the network only: the file lands where torch hub would put it.
        calls.append((url, hash_prefix))
        dst_path = type(source)(dst)
        dst_path.write_bytes(source.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = load_vgg19_features(download=True)
    assert calls == [(vgg.VGG19_URL, "dcbb9e9d")]
    assert hub_checkpoint_path().is_file()
    assert torch.equal(model.features[0].bias, fake_checkpoint["features.0.bias"])


def test_missing_weights_message_gives_the_fix():
    with pytest.raises(RestoreInputError) as info:
        load_vgg19_features()
    msg = str(info.value)
    assert vgg.VGG19_URL in msg
    assert str(hub_checkpoint_path()) in msg
    assert "--vgg-weights PATH" in msg
    assert "perceptual weight to 0" in msg


def test_wrong_files_are_refused(tmp_path, fake_checkpoint):
    with pytest.raises(RestoreInputError, match="not found"):
        load_vgg19_features(tmp_path / "nope.pth")
    bad = dict(fake_checkpoint)
    bad["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(RestoreInputError, match="shape"):
        load_vgg19_features(tmp_path / "bad.safetensors")
    partial = {k: v for k, v in fake_checkpoint.items() if not k.startswith("features.23")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(RestoreInputError, match="lack"):
        load_vgg19_features(tmp_path / "partial.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(RestoreInputError, match="Could not read"):
        load_vgg19_features(tmp_path / "junk.pth")


def test_perceptual_loss(tmp_path, fake_checkpoint):
    path = tmp_path / "w.safetensors"
    save_file(fake_checkpoint, str(path))
    loss_fn = PerceptualLoss(load_vgg19_features(path))
    target = torch.rand(1, 1, 16, 24)
    assert loss_fn(target, target).item() == 0.0
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    loss = loss_fn(pred, target)
    with torch.no_grad():
        phi = loss_fn.vgg
        expected = torch.mean((phi(pred) - phi(target)) ** 2)
    assert torch.allclose(loss, expected)
    assert loss.item() > 0
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.parameters())
