"""SRDTrans network: fidelity to the published architecture, shapes, window attention masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_restore.models import build_model
from napari_restore.models.srdtrans import SRDTrans, _SwinBlock, attention, window_mask

TINY = {"channels": (2, 4, 4, 8), "embed_dim": 16, "heads": 2}


# Default configuration (channels 8-16-32-64, transformer dim 128, 8 heads, 2 + 2 layers,
# window 7): the paper's network has about 1.80 M parameters.
DEFAULT_PARAMETERS = 1_804_297


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_parameter_count_is_pinned() -> None:
    model = SRDTrans()
    assert n_params(model) == DEFAULT_PARAMETERS
    # The temporal position embedding is tied to patch_t: 128 / 16 = 8 tokens of 128.
    assert model.temporal.pos.shape == (1, 8, 128)
    assert n_params(SRDTrans(patch_t=256)) == DEFAULT_PARAMETERS + 8 * 128


def test_parts_match_the_published_layout() -> None:
    model = SRDTrans()
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv3d)]
    # Four levels of (first conv to max(out/2, in), second conv, time-only downsampling).
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 4), (4, 8), (8, 8),
        (8, 8), (8, 16), (16, 16),
        (16, 16), (16, 32), (32, 32),
        (32, 32), (32, 64), (64, 64),
    ]  # fmt: skip
    assert all(c.stride == (2, 1, 1) for c in convs[2::3])
    ups = [m for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert len(ups) == 4
    assert all(
        u.kernel_size == (4, 3, 3) and u.stride == (2, 1, 1) and u.padding == (1, 1, 1) for u in ups
    )
    assert all(layer.qkv.bias is None for layer in model.temporal.layers)
    assert len(model.spatial.blocks) == 2
    assert [b.shift for b in model.spatial.blocks] == [0, 3]
    assert model.spatial.blocks[0].attn.bias_table.shape == (13 * 13, 8)
    assert isinstance(model.head[-1], torch.nn.LeakyReLU)


@pytest.mark.parametrize(("t", "h", "w"), [(16, 9, 10), (32, 15, 22), (16, 7, 7), (16, 4, 5)])
def test_output_shape_equals_input_shape(t: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    model = SRDTrans(patch_t=32, **TINY).eval()
    x = torch.randn(2, 1, t, h, w)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_frames_must_be_a_multiple_of_16_and_at_most_patch_t() -> None:
    model = SRDTrans(patch_t=32, **TINY)
    with pytest.raises(ValueError, match="multiple of 16"):
        model(torch.zeros(1, 1, 24, 8, 8))
    with pytest.raises(ValueError, match="at most patch_t"):
        model(torch.zeros(1, 1, 48, 8, 8))
    with pytest.raises(ValueError, match="multiple of 16"):
        SRDTrans(patch_t=40)


def test_architecture_rebuilds_an_identical_network() -> None:
    torch.manual_seed(0)
    model = SRDTrans(patch_t=32, **TINY).eval()
    arch = model.architecture()
    assert arch["name"] == "SRDTrans"
    assert arch["kwargs"]["patch_t"] == 32
    copy = build_model(arch).eval()
    copy.load_state_dict(model.state_dict())
    x = torch.randn(1, 1, 32, 11, 12)
    with torch.inference_mode():
        torch.testing.assert_close(copy(x), model(x))


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = SRDTrans(patch_t=16, **TINY)
    model(torch.randn(1, 1, 16, 10, 9)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def dense_swin_reference(block: _SwinBlock, x: torch.Tensor) -> torch.Tensor:
    """The same (shifted) window attention written densely over all pixels of the image.

    In image coordinates, a block shifted by ``s`` groups pixels into windows whose borders
    lie at ``s + 7k`` (rows/columns before ``s`` form their own, cut window); pixels attend to
    the pixels of their window only, with the relative position bias of their offset.
    """
    _, h, w, c = x.shape
    ws, attn = block.window, block.attn
    s = block.shift if h > ws or w > ws else 0
    sh = s if -(-h // ws) * ws > ws else 0
    sw = s if -(-w // ws) * ws > ws else 0
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    yy, xx = yy.flatten(), xx.flatten()

    def group(coord: torch.Tensor, shift: int) -> torch.Tensor:
        return torch.where(coord < shift, -1, (coord - shift) // ws)

    same = (group(yy, sh)[:, None] == group(yy, sh)[None]) & (
        group(xx, sw)[:, None] == group(xx, sw)[None]
    )
    dy = yy[:, None] - yy[None] + ws - 1
    dx = xx[:, None] - xx[None] + ws - 1
    inside = (dy >= 0) & (dy < 2 * ws - 1) & (dx >= 0) & (dx < 2 * ws - 1)
    idx = (dy.clamp(0, 2 * ws - 2) * (2 * ws - 1) + dx.clamp(0, 2 * ws - 2)).flatten()
    bias = attn.bias_table[idx].view(h * w, h * w, attn.heads).permute(2, 0, 1)
    assert bool(inside[same].all())
    tokens = block.norm1(x).reshape(h * w, c)
    q, k, v = attn.qkv(tokens).view(h * w, 3, attn.heads, c // attn.heads).permute(1, 2, 0, 3)
    scores = q @ k.transpose(-1, -2) / (c // attn.heads) ** 0.5 + bias
    scores = scores.masked_fill(~same, float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(0, 1).reshape(h * w, c)
    out = x + attn.proj(y).view(1, h, w, c)
    return out + block.mlp(block.norm2(out))


@pytest.mark.parametrize(("h", "w"), [(17, 19), (14, 14), (9, 23), (5, 6)])
@pytest.mark.parametrize("shift", [0, 3])
def test_window_attention_equals_dense_reference(h: int, w: int, shift: int) -> None:
    """Shifted windows, cyclic-roll masks and the internal padding to a multiple of 7 give
    exactly attention within image-space windows: padding never leaks into real pixels."""
    torch.manual_seed(1)
    block = _SwinBlock(dim=16, heads=2, window=7, shift=shift, mlp_ratio=4, attn_drop=0.1).eval()
    with torch.no_grad():
        block.attn.bias_table.normal_()
    x = torch.randn(1, h, w, 16)
    with torch.inference_mode():
        torch.testing.assert_close(block(x), dense_swin_reference(block, x), atol=1e-5, rtol=1e-4)


def test_window_mask_never_masks_a_whole_row() -> None:
    for h, w, shift in [(17, 19, (3, 3)), (9, 9, (3, 3)), (8, 20, (0, 3)), (10, 10, (0, 0))]:
        masked = window_mask(h, w, 7, shift, torch.device("cpu"))
        assert masked is not None
        assert not masked.all(-1).any()
    assert window_mask(14, 21, 7, (0, 0), torch.device("cpu")) is None


def test_attention_in_chunks_equals_one_call() -> None:
    """Calls wider than the CUDA grid limit are split along batch and heads, masks included;
    the result equals one fused call and an explicit softmax."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 10, 12, 49, 8).unbind(0)
    per_head = torch.randn(1, 12, 49, 49)
    shared = torch.randn(1, 1, 49, 49)
    for mask in (None, per_head, shared):
        whole = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        torch.testing.assert_close(attention(q, k, v, mask, max_grid=3), whole)
        explicit = (q @ k.transpose(-1, -2)) / 8**0.5 + (0 if mask is None else mask)
        torch.testing.assert_close(whole, explicit.softmax(-1) @ v, atol=1e-5, rtol=1e-4)


@pytest.mark.gpu
def test_bf16_autocast_on_cuda_matches_float32() -> None:
    torch.manual_seed(0)
    model = SRDTrans(patch_t=32).cuda().eval()
    x = torch.randn(2, 1, 32, 40, 45, device="cuda")
    with torch.inference_mode():
        ref = model(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model(x)
    assert half.dtype == torch.float32  # the output layer runs in float32
    assert (half - ref).abs().mean() < 0.05 * ref.abs().mean()
