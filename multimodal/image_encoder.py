"""Image encoder: a CNN backbone -> CBAM -> flattened region vectors {I_1..I_n} (paper Sec. 3.1).

The backbone is torchvision's DenseNet121 ``features`` (1024 channels at stride 32), loaded from
a local ImageNet state-dict file when ``weights`` is given and randomly initialised otherwise
(nothing is downloaded), or a small 4-stage CNN for CPU tests and synthetic data. The backbone
can be frozen; then its feature maps may be computed once and cached, and only CBAM and the
projection are trained (:meth:`ImageEncoder.head`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ensemblab.errors import ConfigError
from ensemblab.multimodal.cbam import CBAM


def small_cnn(width: int = 32) -> nn.Sequential:
    """Four conv-BN-ReLU stages, the first three with stride 2: ``[B,3,H,W] -> [B,4w,H/8,W/8]``."""
    chans = [3, width, 2 * width, 4 * width, 4 * width]
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2 if i < 3 else 1, padding=1,
                             bias=False), nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def densenet121_features(weights: str | Path | None = None) -> nn.Sequential:
    """DenseNet121 convolutional trunk ``[B,3,H,W] -> [B,1024,H/32,W/32]`` (ReLU applied).

    Args:
        weights: a local torchvision DenseNet121 state dict (``.pth``); None = random init.
    """
    from torchvision.models import densenet121

    net = densenet121(weights=None)
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"{path}: DenseNet121 weights file not found (give a local .pth "
                              "state dict, or weights: null for random init)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        # torchvision's old checkpoints name layers 'norm.1'; the module uses 'norm1'.
        state = {k.replace(".norm.", ".norm").replace(".relu.", ".relu")
                 .replace(".conv.", ".conv"): v for k, v in state.items()}
        net.load_state_dict(state)
    return nn.Sequential(net.features, nn.ReLU(inplace=False))


class ImageEncoder(nn.Module):
    """Backbone + CBAM + linear projection to region vectors.

    Args:
        dim: output width d of each region vector.
        backbone: ``"densenet121"`` or ``"small_cnn"``.
        weights: local backbone weights (DenseNet121 only).
        use_cbam: apply CBAM (off for the no-CBAM ablation).
        freeze_backbone: keep backbone weights fixed (and BatchNorm in eval mode).
        width: channel width of ``small_cnn``.

    Forward ``images [B,3,H,W]`` (or precomputed backbone maps with ``features=True``) ->
    ``(regions [B, n, d], spatial_gate [B, 1, h, w] or None)`` with ``n = h * w``.
    """

    def __init__(self, dim: int, backbone: str = "densenet121", weights: str | None = None,
                 use_cbam: bool = True, freeze_backbone: bool = False, width: int = 32):
        super().__init__()
        if backbone == "densenet121":
            self.backbone, channels = densenet121_features(weights), 1024
        elif backbone == "small_cnn":
            if weights:
                raise ConfigError("small_cnn has no pretrained weights; set weights: null")
            self.backbone, channels = small_cnn(width), 4 * width
        else:
            raise ConfigError(f"unknown image backbone {backbone!r} (densenet121 | small_cnn)")
        self.channels = channels
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        self.cbam = CBAM(channels) if use_cbam else None
        self.proj = nn.Sequential(nn.Linear(channels, dim), nn.LayerNorm(dim))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    @torch.no_grad()
    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen backbone maps ``[B, C, h, w]`` for caching (no gradient)."""
        return self.backbone(images)

    def head(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """CBAM + flatten + projection of backbone maps ``[B, C, h, w]``."""
        gate = None
        if self.cbam is not None:
            maps, gate = self.cbam(maps)
        regions = maps.flatten(2).transpose(1, 2)
        return self.proj(regions), gate

    def forward(self, x: torch.Tensor, features: bool = False):
        maps = x if features else self.backbone(x)
        return self.head(maps)
