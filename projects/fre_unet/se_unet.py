"""SE-U-Net (the paper's baseline, Sec. 4.1) and its variants as keyword switches.

A U-Net with 4 down-sampling and 4 up-sampling stages; every stage is two 3x3 conv-BN-ReLU
layers followed by a squeeze-and-excitation block (Hu et al. 2018). At full width the encoder
has 64, 128, 256, 512, 512 channels, so the deepest features ("the encoder end") have 512
channels. ``width`` scales every stage (0.25 gives 16 .. 128 channels for CPU runs).

Variants compared in the paper (Table 1/2), all applied to the encoder-end features:

* ``deep_layers=False``: drop the deepest stage (3 down / 3 up), "without the deep layers".
* ``supervision=True``: a 1x1 conv from the encoder end to the classes, upsampled to the input
  size; the training module mixes its loss as ``(1 - lambda) * L1 + lambda * L2``.
* ``dropout=p``: channel dropout (``nn.Dropout2d``) with rate ``p`` (the paper uses ``B/512``).
* ``fre={"num_enhanced": B, "factor": X, "seed": s, "fixed": bool}``: the FRE module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ensemblab.errors import ConfigError
from ensemblab.projects.fre_unet.fre import FeatureRandomEnhancement

FULL_WIDTHS = (64, 128, 256, 512, 512)


class SEBlock(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(W2 relu(W1 avgpool(x)))`` on ``[N, C, H, W]``."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(F.adaptive_avg_pool2d(x, 1))


class SEStage(nn.Sequential):
    """Two 3x3 conv-BN-ReLU layers and an SE block: ``[N, Cin, H, W] -> [N, Cout, H, W]``."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            SEBlock(cout),
        )


class SEUNet(nn.Module):
    """U-Net with SE blocks; optional FRE / dropout / supervision at the encoder end.

    Args:
        in_channels: image channels (1 for EM).
        num_classes: output classes.
        width: multiplier of :data:`FULL_WIDTHS` (channels rounded, at least 4).
        deep_layers: keep the deepest stage (4 down / 4 up); False gives 3 down / 3 up.
        supervision: add the encoder-end 1x1 conv head (deep supervision).
        dropout: ``Dropout2d`` rate on the encoder-end features (0 disables).
        fre: keyword arguments of :class:`FeatureRandomEnhancement` except ``channels``
            (``None`` or ``num_enhanced == 0`` disables it).

    Shapes:
        input ``[N, in_channels, H, W]`` with ``H, W`` divisible by ``2 ** depth``;
        output logits ``[N, num_classes, H, W]``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 4, width: float = 1.0,
                 deep_layers: bool = True, supervision: bool = False, dropout: float = 0.0,
                 fre: dict | None = None):
        super().__init__()
        widths = [max(4, round(c * width)) for c in FULL_WIDTHS]
        if not deep_layers:
            widths = widths[:-1]
        self.depth = len(widths) - 1
        self.encoder = nn.ModuleList()
        cin = in_channels
        for cout in widths:
            self.encoder.append(SEStage(cin, cout))
            cin = cout
        self.deep_channels = widths[-1]
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for skip_c in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(cin, skip_c, 2, stride=2))
            self.decoder.append(SEStage(2 * skip_c, skip_c))
            cin = skip_c
        self.head = nn.Conv2d(cin, num_classes, 1)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout rate {dropout} must be in [0, 1)")
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else None
        self.fre = None
        if fre and int(fre["num_enhanced"]) > 0:
            self.fre = FeatureRandomEnhancement(self.deep_channels, **fre)
        self.aux_head = nn.Conv2d(self.deep_channels, num_classes, 1) if supervision else None

    @property
    def deep_stage(self) -> nn.Module:
        """The encoder-end stage whose output FRE enhances (hooked for feature magnitudes)."""
        return self.encoder[-1]

    @property
    def skip_stage(self) -> nn.Module:
        """The shallowest encoder stage, feeding the last skip connection."""
        return self.encoder[0]

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        """Logits ``[N, K, H, W]``; with ``return_aux`` also the supervision logits (or None)."""
        size = x.shape[-2:]
        if size[0] % 2**self.depth or size[1] % 2**self.depth:
            raise ValueError(f"input size {tuple(size)} not divisible by {2**self.depth}")
        skips = []
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        if self.fre is not None:
            x = self.fre(x)
        if self.dropout is not None:
            x = self.dropout(x)
        aux = None
        if return_aux and self.aux_head is not None:
            aux = F.interpolate(self.aux_head(x), size=size, mode="bilinear",
                                align_corners=False)
        for up, stage, skip in zip(self.ups, self.decoder, reversed(skips)):
            x = stage(torch.cat([up(x), skip], dim=1))
        logits = self.head(x)
        return (logits, aux) if return_aux else logits
