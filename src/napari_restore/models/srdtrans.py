"""SRDTrans: a 3D CNN U-Net around a spatiotemporal transformer, for self-supervised denoising.

Li et al., "Spatial redundancy transformer for self-supervised fluorescence image denoising",
Nat. Comput. Sci. 3, 1067-1080 (2023). Written from the method description in
``specs/srdtrans.md``; no code of the GPL reference implementation is used.

Layout for a ``(B, 1, t, h, w)`` input (``t`` a multiple of 16, any ``h``, ``w``):

- encoder, 4 levels (channels 1→8→16→32→64): two 3×3×3 convolutions with LeakyReLU(0.1), then a
  stride-(2, 1, 1) convolution that halves time only (space is never reduced);
- bottleneck: Conv3d 64→128, a temporal transformer (per pixel, tokens along ``t/16``), a
  Swin-style window transformer per frame (window 7, the second block shifted by 3), Conv3d
  128→64;
- decoder, 4 levels: transposed convolution doubling time, skip connection *added*, two
  convolutions; last a convolution to one channel followed by LeakyReLU(0.1).

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels
on CUDA) with the relative position bias and the window masks passed as ``attn_mask``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from napari_restore.models import register_architecture

_SLOPE = 0.1
# CUDA's fused attention kernels put batch items and heads on grid axes limited to 65535 blocks;
# larger calls (wide tiles: one temporal sequence per pixel) are split into chunks below that.
_MAX_GRID = 32768


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    max_grid: int = _MAX_GRID,
) -> torch.Tensor:
    """:func:`~torch.nn.functional.scaled_dot_product_attention` on ``(N, H, L, E)`` tensors,
    split along ``N`` and ``H`` into calls of at most ``max_grid`` (same result).

    ``mask`` is additive, broadcastable, with size 1 or ``N`` / ``H`` on its first two axes.
    """
    for axis in (0, 1):
        if q.shape[axis] > max_grid:
            parts = []
            for start in range(0, q.shape[axis], max_grid):
                sl = (slice(None),) * axis + (slice(start, start + max_grid),)
                m = mask if mask is None or mask.shape[axis] == 1 else mask[sl]
                parts.append(attention(q[sl], k[sl], v[sl], m, dropout_p, max_grid))
            return torch.cat(parts, dim=axis)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def _conv_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.LeakyReLU(_SLOPE, inplace=True))


class _EncoderLevel(nn.Module):
    """Two convolutions (the first to ``max(cout // 2, cin)`` channels), then halve time."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = max(cout // 2, cin)
        self.convs = nn.Sequential(_conv_act(cin, mid), _conv_act(mid, cout))
        self.down = nn.Conv3d(cout, cout, 3, stride=(2, 1, 1), padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.convs(x)
        return self.down(skip), skip


class _DecoderLevel(nn.Module):
    """Double time with a transposed convolution, add the skip, two convolutions."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cin, (4, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1))
        self.convs = nn.Sequential(_conv_act(cin, cout), _conv_act(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(self.up(x) + skip)


class _Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class _TemporalLayer(nn.Module):
    """Pre-LN transformer layer over the time tokens of each pixel (qkv without bias)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, attn_drop: float) -> None:
        super().__init__()
        self.heads = heads
        self.attn_drop = attn_drop
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(n, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (n, heads, length, head_dim)
        drop = self.attn_drop if self.training else 0.0
        y = attention(q, k, v, dropout_p=drop)
        x = x + self.proj(y.transpose(1, 2).reshape(n, length, dim))
        return x + self.mlp(self.norm2(x))


class _TemporalTransformer(nn.Module):
    """Self-attention along time, independently for every pixel of the bottleneck."""

    def __init__(
        self, dim: int, length: int, layers: int, heads: int, mlp_ratio: float, attn_drop: float
    ) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, length, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.layers = nn.ModuleList(
            _TemporalLayer(dim, heads, mlp_ratio, attn_drop) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if t > self.pos.shape[1]:
            raise ValueError(
                f"{16 * t} frames exceed the network's patch_t={16 * self.pos.shape[1]}; "
                "run it on blocks of at most patch_t frames."
            )
        tokens = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c) + self.pos[:, :t]
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.norm(tokens)
        return tokens.view(b, h, w, t, c).permute(0, 4, 3, 1, 2)


def _relative_position_index(window: int) -> torch.Tensor:
    """``(window², window²)`` index into the ``(2·window − 1)²`` relative position bias table."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N), each in [0, 2w-2]
    return rel[0] * (2 * window - 1) + rel[1]


def _partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, W, ...)`` with ``H``, ``W`` multiples of ``window`` → ``(B, nW, window², ...)``."""
    b, h, w = x.shape[:3]
    rest = x.shape[3:]
    x = x.view(b, h // window, window, w // window, window, *rest)
    x = x.transpose(2, 3)
    return x.reshape(b, (h // window) * (w // window), window * window, *rest)


def _unpartition(x: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_partition`."""
    b, rest = x.shape[0], x.shape[3:]
    x = x.view(b, h // window, w // window, window, window, *rest).transpose(2, 3)
    return x.reshape(b, h, w, *rest)


def window_mask(
    height: int, width: int, window: int, shift: tuple[int, int], device: torch.device
) -> torch.Tensor | None:
    """Boolean ``(nW, N, N)`` mask of the key tokens each query token must NOT attend to.

    The map is padded up to multiples of ``window`` and rolled by ``-shift``. Two kinds of pairs
    are masked: tokens that came from different sides of the cyclic roll (they are not
    neighbours in the image), and real queries looking at padding keys (so that the result does
    not depend on how much padding a tile needed). Padding queries may look at padding keys, so
    that no row is fully masked (which would give NaN).

    Returns None when nothing is masked.
    """
    hp, wp = math.ceil(height / window) * window, math.ceil(width / window) * window
    sh, sw = shift
    if (sh, sw) == (0, 0) and (hp, wp) == (height, width):
        return None

    def regions(size: int, s: int) -> torch.Tensor:
        r = torch.zeros(size, dtype=torch.long, device=device)
        if s:
            r[size - window : size - s] = 1
            r[size - s :] = 2
        return r

    label = regions(hp, sh)[:, None] * 3 + regions(wp, sw)[None, :]
    real_y = torch.arange(hp, device=device) < height
    real_x = torch.arange(wp, device=device) < width
    real = real_y[:, None] & real_x[None, :]
    real = torch.roll(real, shifts=(-sh, -sw), dims=(0, 1))
    label_w = _partition(label[None], window)[0]  # (nW, N)
    real_w = _partition(real[None], window)[0]
    masked = label_w[:, :, None] != label_w[:, None, :]
    masked |= real_w[:, :, None] & ~real_w[:, None, :]
    return masked


class _WindowAttention(nn.Module):
    """Multi-head attention inside 7×7 windows with a learned relative position bias."""

    def __init__(self, dim: int, heads: int, window: int, attn_drop: float) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer(
            "rel_index", _relative_position_index(window).flatten(), persistent=False
        )

    def forward(self, x: torch.Tensor, masked: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``(B, nW, N, C)``; ``masked``: ``(nW, N, N)`` bool or None."""
        b, nw, n, c = x.shape
        hd = c // self.heads
        qkv = self.qkv(x).view(b, nw, n, 3, self.heads, hd).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)  # each (B, nW, heads, N, hd)
        bias = self.bias_table[self.rel_index].view(n, n, self.heads).permute(2, 0, 1)
        drop = self.attn_drop if self.training else 0.0
        if masked is None:
            # Same bias for every window: windows go to the batch axis, bias broadcasts.
            mask = bias.to(q.dtype)[None]
            y = attention(
                q.reshape(b * nw, self.heads, n, hd),
                k.reshape(b * nw, self.heads, n, hd),
                v.reshape(b * nw, self.heads, n, hd),
                mask,
                drop,
            ).view(b, nw, self.heads, n, hd)
        else:
            # A different mask per window: fold windows into the head axis so the kernels get
            # 4-D tensors and a mask that broadcasts over the batch (nothing per batch item).
            mask = bias[None].masked_fill(masked[:, None], float("-inf")).to(q.dtype)
            y = attention(
                q.reshape(b, nw * self.heads, n, hd),
                k.reshape(b, nw * self.heads, n, hd),
                v.reshape(b, nw * self.heads, n, hd),
                mask.reshape(1, nw * self.heads, n, n),
                drop,
            ).view(b, nw, self.heads, n, hd)
        return self.proj(y.transpose(2, 3).reshape(b, nw, n, c))


class _SwinBlock(nn.Module):
    """Pre-LN (shifted) window attention and MLP on a ``(B, H, W, C)`` map of any size."""

    def __init__(
        self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, attn_drop: float
    ) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _WindowAttention(dim, heads, window, attn_drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        ws = self.window
        hp, wp = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
        # A map of a single window along an axis has nothing to shift across (as in Swin).
        shift = (self.shift if hp > ws else 0, self.shift if wp > ws else 0)
        y = F.pad(self.norm1(x), (0, 0, 0, wp - w, 0, hp - h))
        if any(shift):
            y = torch.roll(y, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        masked = window_mask(h, w, ws, shift, x.device)
        y = _unpartition(self.attn(_partition(y, ws), masked), ws, hp, wp)
        if any(shift):
            y = torch.roll(y, shifts=shift, dims=(1, 2))
        x = x + y[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class _SpatialTransformer(nn.Module):
    """Swin-style blocks applied to every frame of the bottleneck, alternating shifts."""

    def __init__(
        self, dim: int, blocks: int, heads: int, window: int, mlp_ratio: float, attn_drop: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            _SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, attn_drop)
            for i in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = x.permute(0, 2, 3, 4, 1).reshape(b * t, h, w, c)
        for block in self.blocks:
            y = block(y)
        return y.view(b, t, h, w, c).permute(0, 4, 1, 2, 3)


@register_architecture("SRDTrans")
class SRDTrans(nn.Module):
    """Spatial redundancy denoising transformer (Li et al., 2023).

    Parameters
    ----------
    patch_t : int
        Frames per network input (a multiple of 16). The temporal position embedding has
        ``patch_t // 16`` entries, so inputs may have at most ``patch_t`` frames.
    channels : tuple of int
        Channels of the four encoder levels. Default ``(8, 16, 32, 64)``.
    embed_dim : int
        Channels of the transformer bottleneck. Default 128.
    heads : int
        Attention heads of both transformers. Default 8.
    temporal_layers, spatial_blocks : int
        Depth of the temporal transformer and number of Swin blocks. Default 2 and 2.
    window : int
        Swin window edge (the second block is shifted by ``window // 2``). Default 7.
    mlp_ratio : float
        Hidden width of the transformer MLPs over ``embed_dim``. Default 4.
    attn_drop : float
        Dropout on the attention weights while training. Default 0.1.

    Notes
    -----
    Input and output are ``(B, 1, t, h, w)`` float tensors; ``t`` must be a multiple of 16 and
    at most ``patch_t``; ``h`` and ``w`` may be anything (the window attention pads them to a
    multiple of ``window`` internally and masks the padding).

    The attribute ``normalization`` says how a stack is scaled before it enters the network:
    ``"mean_std"`` (default: minus the stack mean, divided by the stack's standard deviation)
    or ``"mean"`` (minus the mean only; networks from model files written before scaling was
    introduced). It is stored in model files, not in the architecture.
    """

    normalization: str = "mean_std"

    def __init__(
        self,
        patch_t: int = 128,
        channels: tuple[int, ...] = (8, 16, 32, 64),
        embed_dim: int = 128,
        heads: int = 8,
        temporal_layers: int = 2,
        spatial_blocks: int = 2,
        window: int = 7,
        mlp_ratio: float = 4.0,
        attn_drop: float = 0.1,
    ) -> None:
        super().__init__()
        levels = len(channels)
        if patch_t <= 0 or patch_t % (2**levels):
            raise ValueError(f"patch_t={patch_t} must be a positive multiple of {2**levels}.")
        if embed_dim % heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by heads={heads}.")
        self._kwargs: dict[str, Any] = {
            "patch_t": int(patch_t),
            "channels": [int(c) for c in channels],
            "embed_dim": int(embed_dim),
            "heads": int(heads),
            "temporal_layers": int(temporal_layers),
            "spatial_blocks": int(spatial_blocks),
            "window": int(window),
            "mlp_ratio": float(mlp_ratio),
            "attn_drop": float(attn_drop),
        }
        self.patch_t = int(patch_t)
        self.time_multiple = 2**levels
        ins = (1, *channels[:-1])
        self.encoder = nn.ModuleList(
            _EncoderLevel(i, o) for i, o in zip(ins, channels, strict=True)
        )
        deep = channels[-1]
        self.to_embed = _conv_act(deep, embed_dim)
        self.temporal = _TemporalTransformer(
            embed_dim, patch_t // self.time_multiple, temporal_layers, heads, mlp_ratio, attn_drop
        )
        self.spatial = _SpatialTransformer(
            embed_dim, spatial_blocks, heads, window, mlp_ratio, attn_drop
        )
        self.from_embed = _conv_act(embed_dim, deep)
        outs = (*reversed(channels[:-1]), channels[0])
        self.decoder = nn.ModuleList(
            _DecoderLevel(i, o) for i, o in zip(reversed(channels), outs, strict=True)
        )
        self.head = nn.Sequential(nn.Conv3d(channels[0], 1, 1), nn.LeakyReLU(_SLOPE))
        self.apply(_init_linear)

    def architecture(self) -> dict[str, Any]:
        """``{"name": "SRDTrans", "kwargs": {...}}``, as :func:`~.models.build_model` takes it."""
        return {"name": "SRDTrans", "kwargs": dict(self._kwargs)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``(B, 1, t, h, w)`` blocks (``t`` a multiple of 16, at most ``patch_t``)."""
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(f"SRDTrans takes (B, 1, t, h, w) tensors, got {tuple(x.shape)}.")
        t = x.shape[2]
        if t % self.time_multiple or t > self.patch_t:
            raise ValueError(
                f"SRDTrans needs a number of frames that is a multiple of {self.time_multiple} "
                f"and at most patch_t={self.patch_t}; got {t}."
            )
        skips = []
        for level in self.encoder:
            x, skip = level(x)
            skips.append(skip)
        x = self.to_embed(x)
        x = self.spatial(self.temporal(x))
        x = self.from_embed(x)
        for level, skip in zip(self.decoder, reversed(skips), strict=True):
            x = level(x, skip)
        # The output layer in float32 even under autocast: the result keeps full precision in
        # the units of the data (bf16 would round intensities to ~3 significant digits).
        with torch.autocast(x.device.type, enabled=False):
            return self.head(x.float())


def _init_linear(m: nn.Module) -> None:
    # Transformer initialisation as in ViT/Swin; convolutions keep PyTorch's default.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
