"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018).

The cross-attention paper refines DenseNet121 feature maps with CBAM before flattening them
into region vectors (its Sec. 3.1): channel attention ``M_c`` then spatial attention ``M_s``,

    F' = M_c(F) * F,    F'' = M_s(F') * F',
    M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))),
    M_s(F) = sigmoid(conv7x7([mean_c(F); max_c(F)])).
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Channel gate ``M_c``: a shared MLP over average- and max-pooled descriptors.

    Args:
        channels: feature channels C.
        reduction: bottleneck ratio r of the MLP (C -> C/r -> C).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W]`` -> gate ``[B, C, 1, 1]`` in (0, 1)."""
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """Spatial gate ``M_s``: a k x k convolution over channel-mean and channel-max maps."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W]`` -> gate ``[B, 1, H, W]`` in (0, 1)."""
        desc = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(desc))


class CBAM(nn.Module):
    """Channel then spatial attention; the output has the input's shape.

    Args:
        channels: feature channels C.
        reduction: channel-MLP reduction ratio.
        kernel_size: spatial-attention kernel.

    ``forward`` returns ``(refined [B, C, H, W], spatial_gate [B, 1, H, W])``; the gate is what
    the attention overlays draw.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x * self.channel(x)
        gate = self.spatial(x)
        return x * gate, gate
