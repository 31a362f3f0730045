"""ResCBAM U-Net: the attention-based residual U-Net for destriping of Wei et al. (2022).

Wei, Wu, Tong, Zhang, Yang, Tian, Hui, "Elimination of stripe artifacts in light sheet
fluorescence microscopy using an attention-based residual neural network", Biomed. Opt. Express
13(3), 1292-1311 (2022), doi:10.1364/BOE.448838.

Every encoder level, the bottleneck and every decoder level is an attention block

    y = ReLU( shortcut(x) + CBAM( conv3x3 -> ReLU -> conv3x3 (x) ) )

with CBAM after Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018:
channel attention (a shared MLP over the average- and max-pooled features) followed by spatial
attention (a 7x7 convolution over the channel-wise mean and max).

Choices of this project where the paper gives no number: no batch normalisation (training
batches are small, and an inference tile should see the same network as a training patch), with
He initialisation of the feature convolutions instead;
down-sampling by 2x2 max pooling; up-sampling by bilinear interpolation followed by a 1x1
convolution (no transposed convolutions, so no checkerboard pattern); channels double per level
from ``base_channels``.

Optional, not in the paper (``strip_context=True``): a strip-pooling context module after every
decoder level, after Hou, Zhang, Cheng, Feng, "Strip Pooling: Rethinking Spatial Pooling for
Scene Parsing", CVPR 2020. On the built-in model, 94 % of the gradient of one output pixel
with respect to the input falls within +-16 px of it (four held-out crops,
``benchmarks/destripe_response.py``), so the network judges a faint dip from a small window,
where a stripe and straight content look alike; the means of every row and every column of a
tile tell the decoder whether a dip runs on across the tile. Its last convolution starts at
zero, so a trained network grown by it computes exactly what it did.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from napari_restore.models import register_architecture


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``F' = sigmoid(MLP(avgpool F) + MLP(maxpool F)) * F``.

    Parameters
    ----------
    channels : int
        Number of feature channels ``C``.
    reduction : int
        MLP reduction ratio ``r``: the hidden layer has ``max(1, C // r)`` units.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        # 1x1 convolutions on (B, C, 1, 1) are the shared fully connected MLP.
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        peak = x.amax(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(peak))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``F'' = sigmoid(conv7x7([mean_c F'; max_c F'])) * F'``."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional block attention module: channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class AttentionBlock(nn.Module):
    """Residual block with CBAM: ``ReLU(shortcut(x) + CBAM(conv3x3 -> ReLU -> conv3x3 (x)))``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out; the shortcut is a 1x1 convolution when they differ.
    use_cbam : bool
        Ablation switch: without CBAM the body output is used as it is.
    use_residual : bool
        Ablation switch: without the shortcut the block is ``ReLU(CBAM(body(x)))``.
    reduction : int
        CBAM channel-attention reduction ratio.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        use_cbam: bool = True,
        use_residual: bool = True,
        reduction: int = 16,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.attention: nn.Module = CBAM(out_channels, reduction) if use_cbam else nn.Identity()
        self.shortcut: nn.Module | None = None
        if use_residual:
            self.shortcut = (
                nn.Conv2d(in_channels, out_channels, 1)
                if in_channels != out_channels
                else nn.Identity()
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attention(self.body(x))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return F.relu(y)


class StripContext(nn.Module):
    """Row and column means of the features, mixed across rows / columns, added back.

    ``y = x + conv1x1(ReLU(conv_h(mean over x) + conv_w(mean over y)))``, the two pooled
    profiles broadcast back over the plane; ``conv_h`` / ``conv_w`` are 1-D convolutions of
    kernel 3 along the profile. The output convolution is zero-initialised (identity at start).

    Parameters
    ----------
    channels : int
        Feature channels in and out.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(4, channels // 2)
        self.rows = nn.Conv2d(channels, hidden, (3, 1), padding=(1, 0))
        self.cols = nn.Conv2d(channels, hidden, (1, 3), padding=(0, 1))
        self.out = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.rows(x.mean(dim=3, keepdim=True))  # (B, hidden, H, 1): one value per row
        cols = self.cols(x.mean(dim=2, keepdim=True))  # (B, hidden, 1, W)
        return x + self.out(F.relu(rows + cols))


class Up(nn.Module):
    """Bilinear 2x up-sampling followed by a 1x1 convolution that halves the channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))


@register_architecture("ResCBAMUNet")
class ResCBAMUNet(nn.Module):
    """Attention residual U-Net that removes stripes from one-channel images.

    Parameters
    ----------
    base_channels : int
        Channels of the first level; level ``i`` has ``base_channels * 2**i`` and the bottleneck
        ``base_channels * 2**depth``. Default 16.
    depth : int
        Number of down-sampling levels (the paper's U-Net has 4). Inputs are padded to a
        multiple of ``2**depth``.
    reduction : int
        CBAM channel-attention reduction ratio ``r`` (hidden units ``max(1, C // r)``).
    use_cbam : bool
        Ablation: CBAM in every block (True) or plain residual blocks.
    use_residual : bool
        Ablation: the block shortcut ``shortcut(x) + ...`` (True) or none.
    residual_learning : bool
        Global residual learning: the network predicts the stripe component ``s`` and returns
        ``input - s`` (True, as in the paper), or it predicts the clean image directly.
    strip_context : bool
        Not in the paper: a :class:`StripContext` after every decoder level (row and column
        means of the tile as context). Recorded in :meth:`architecture` only when True, so
        files of the paper's network read as before.

    Notes
    -----
    ``forward`` takes ``(B, 1, H, W)`` of any ``H, W``: it pads by reflection (replication where
    the image is too small to reflect) to a multiple of :attr:`multiple` and crops back.
    """

    def __init__(
        self,
        base_channels: int = 16,
        depth: int = 4,
        *,
        reduction: int = 16,
        use_cbam: bool = True,
        use_residual: bool = True,
        residual_learning: bool = True,
        strip_context: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1 or base_channels < 1 or reduction < 1:
            raise ValueError("depth, base_channels and reduction must be >= 1")
        self._kwargs: dict[str, Any] = {
            "base_channels": int(base_channels),
            "depth": int(depth),
            "reduction": int(reduction),
            "use_cbam": bool(use_cbam),
            "use_residual": bool(use_residual),
            "residual_learning": bool(residual_learning),
        }
        if strip_context:
            self._kwargs["strip_context"] = True
        self.depth = int(depth)
        self.residual_learning = bool(residual_learning)

        def block(cin: int, cout: int) -> AttentionBlock:
            return AttentionBlock(
                cin, cout, use_cbam=use_cbam, use_residual=use_residual, reduction=reduction
            )

        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList()
        cin = 1
        for w in widths[:-1]:
            self.encoders.append(block(cin, w))
            cin = w
        self.bottleneck = block(widths[-2], widths[-1])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            w = widths[level]
            self.ups.append(Up(widths[level + 1], w))
            self.decoders.append(block(2 * w, w))  # concatenated skip + up-sampled features
        self.contexts: nn.ModuleList | None = None
        if strip_context:
            self.contexts = nn.ModuleList(StripContext(widths[lv]) for lv in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], 1, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation of the feature convolutions: without normalisation layers, torch's
        # default (variance 1/(3 fan_in)) shrinks activations level by level, and the deep
        # levels then barely learn at first. CBAM and the head keep torch's default, so the
        # untrained network starts close to the identity (output = input - small residual).
        for name, module in self.named_modules():
            if (
                isinstance(module, nn.Conv2d)
                and ".attention." not in f".{name}."
                and not name.startswith("contexts.")
                and name != "head"
            ):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this (``2**depth``)."""
        return 2**self.depth

    def architecture(self) -> dict[str, Any]:
        """``{"name": "ResCBAMUNet", "kwargs": {...}}``, rebuilt by
        :func:`~napari_restore.models.build_model`."""
        return {"name": "ResCBAMUNet", "kwargs": dict(self._kwargs)}

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Destripe ``(B, 1, H, W)`` images; returns the same shape."""
        xp, h, w = self._pad(x)
        skips = []
        y = xp
        for enc in self.encoders:
            y = enc(y)
            skips.append(y)
            y = F.max_pool2d(y, 2)
        y = self.bottleneck(y)
        for i, (up, dec, skip) in enumerate(
            zip(self.ups, self.decoders, reversed(skips), strict=True)
        ):
            y = dec(torch.cat([skip, up(y)], dim=1))
            if self.contexts is not None:
                y = self.contexts[i](y)
        y = self.head(y)
        if self.residual_learning:
            y = xp - y  # the head predicts the stripe component
        return y[..., :h, :w]
