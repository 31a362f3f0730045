"""ResCBAM U-Net: shapes, attention in every level, gradients, ablations, rebuild from metadata."""

from __future__ import annotations

import pytest
import torch

from napari_restore.models import build_model
from napari_restore.models.rescbam_unet import CBAM, AttentionBlock, ResCBAMUNet


def tiny(**kwargs) -> ResCBAMUNet:
    torch.manual_seed(0)
    return ResCBAMUNet(**{"base_channels": 4, "depth": 2, **kwargs})


@pytest.mark.parametrize("shape", [(1, 1, 37, 53), (2, 1, 16, 16), (1, 1, 5, 3), (3, 1, 64, 17)])
def test_any_size_in_same_size_out(shape):
    net = tiny(depth=3)
    assert net.multiple == 8
    with torch.no_grad():
        assert net(torch.rand(shape)).shape == shape


def test_default_is_four_levels_with_doubling_channels():
    net = ResCBAMUNet(base_channels=8)
    assert net.multiple == 16
    assert len(net.encoders) == len(net.decoders) == 4
    widths = [enc.body[0].out_channels for enc in net.encoders]
    assert widths == [8, 16, 32, 64]
    assert net.bottleneck.body[0].out_channels == 128
    # Decoder blocks take the concatenated skip and up-sampled features: twice the width.
    assert [dec.body[0].in_channels for dec in net.decoders] == [128, 64, 32, 16]


def test_every_level_and_bottleneck_is_an_attention_block_with_cbam():
    net = tiny(depth=3)
    blocks = [*net.encoders, net.bottleneck, *net.decoders]
    assert len(blocks) == 2 * 3 + 1
    for block in blocks:
        assert isinstance(block, AttentionBlock)
        assert isinstance(block.attention, CBAM)
        assert block.shortcut is not None
    assert sum(isinstance(m, CBAM) for m in net.modules()) == 7
    # 1x1 shortcut exactly where the channel count changes (every block of this U-Net does).
    for block in blocks:
        conv = block.body[0]
        changes = conv.in_channels != conv.out_channels
        assert isinstance(block.shortcut, torch.nn.Conv2d) == changes


def test_cbam_hidden_units_at_least_one():
    cbam = CBAM(4, reduction=16)
    assert cbam.channel.mlp[0].out_channels == 1
    assert CBAM(64, reduction=16).channel.mlp[0].out_channels == 4


def test_gradients_reach_every_parameter():
    net = tiny(reduction=2)
    x = torch.rand(2, 1, 24, 40)
    loss = (net(x) - 0.5 * x).abs().mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_ablation_switches_change_the_structure():
    full = tiny()
    no_cbam = tiny(use_cbam=False)
    no_res = tiny(use_residual=False)
    assert not any(isinstance(m, CBAM) for m in no_cbam.modules())
    assert all(b.shortcut is None for b in [*no_res.encoders, no_res.bottleneck, *no_res.decoders])
    n = sum(p.numel() for p in full.parameters())
    assert sum(p.numel() for p in no_cbam.parameters()) < n
    assert sum(p.numel() for p in no_res.parameters()) < n
    assert set(no_cbam.state_dict()) < set(full.state_dict())


def test_global_residual_learning_returns_input_minus_prediction():
    net = tiny()
    direct = tiny(residual_learning=False)
    direct.load_state_dict(net.state_dict())  # same weights, only the output rule differs
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), x - direct(x), atol=1e-6)
        # With a zero head the residual network is the identity.
        torch.nn.init.zeros_(net.head.weight)
        torch.nn.init.zeros_(net.head.bias)
        assert torch.equal(net(x), x)


def test_build_model_round_trip():
    net = tiny(depth=3, reduction=4, use_residual=False)
    arch = net.architecture()
    assert arch == {
        "name": "ResCBAMUNet",
        "kwargs": {
            "base_channels": 4,
            "depth": 3,
            "reduction": 4,
            "use_cbam": True,
            "use_residual": False,
            "residual_learning": True,
        },
    }
    rebuilt = build_model(arch)
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    x = torch.rand(1, 1, 20, 30)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))


def _far_gradient(net: ResCBAMUNet, source: tuple[int, int]) -> float:
    """|d output[0, 0] / d input[source]| for a 64 x 160 input."""
    x = torch.rand(1, 1, 64, 160, generator=torch.Generator().manual_seed(1), requires_grad=True)
    net(x)[0, 0, 0, 0].backward()
    return float(x.grad[0, 0][source].abs())


def test_strip_context_starts_as_the_plain_network_and_sees_whole_rows():
    plain = tiny(use_cbam=False)  # no CBAM: its global pooling would reach far pixels anyway
    grown = tiny(use_cbam=False, strip_context=True)
    assert grown.architecture()["kwargs"]["strip_context"] is True
    assert "strip_context" not in plain.architecture()["kwargs"]  # old files read as before
    fresh = {k: v for k, v in grown.state_dict().items() if k.startswith("contexts.")}
    grown.load_state_dict({**plain.state_dict(), **fresh}, strict=True)
    x = torch.rand(2, 1, 40, 72)
    with torch.no_grad():
        assert torch.equal(grown(x), plain(x))  # the module's output convolution starts at zero
    # Trained (here: a non-zero output convolution), a pixel 150 px along the same row, far
    # beyond the convolutions' reach, moves the output; for the plain network it does not.
    with torch.no_grad():
        for ctx in grown.contexts:
            torch.nn.init.normal_(ctx.out.weight, std=0.1)
    assert _far_gradient(plain, (0, 150)) == 0.0
    assert _far_gradient(grown, (0, 150)) > 0.0
    rebuilt = build_model(grown.architecture())
    rebuilt.load_state_dict(grown.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), grown(x))
