"""The pre-positioned spatial transformer (Jaderberg et al. 2015; mineral paper sec. 2.3.6).

A small localisation network regresses the 6 parameters of an affine map per image; the image
is resampled with ``affine_grid``/``grid_sample`` before the encoder sees it. The last layer
starts at zero weight and identity bias, so an untrained STN is the identity and training moves
it only when that lowers the loss.

The authors' public code rebuilds its STN inside ``forward()`` on every call, so its weights are
never registered with the optimizer: it is a fixed identity resample. ``stn: identity`` keeps
that behaviour for parity (no parameters, output equal to the plain path up to float rounding);
``stn: trained`` is the real, registered and trained module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ensemblab.errors import ConfigError

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def affine_resample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` [B, C, H, W] by affine maps ``theta`` [B, 2, 3] (bilinear, zero padding).

    ``align_corners=False`` makes the identity map sample exact pixel centres, so identity
    reproduces the input.
    """
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class SpatialTransformer(nn.Module):
    """Learned affine STN.

    Args:
        in_channels: image channels.
        hidden: width of the localisation network.

    Forward: ``[B, C, H, W]`` -> ``[B, C, H, W]`` (the resampled image). The last predicted
    ``theta`` [B, 2, 3] is kept in ``self.last_theta`` for inspection.
    """

    def __init__(self, in_channels: int = 3, hidden: int = 32):
        super().__init__()
        self.localization = nn.Sequential(
            nn.Conv2d(in_channels, 8, 7, stride=2, padding=3), nn.MaxPool2d(2, ceil_mode=True),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(8, 10, 5, stride=2, padding=2), nn.MaxPool2d(2, ceil_mode=True),
            nn.LeakyReLU(0.1, inplace=True),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(10 * 16, hidden), nn.LeakyReLU(0.1, inplace=True))
        self.theta = nn.Linear(hidden, 6)
        nn.init.zeros_(self.theta.weight)
        with torch.no_grad():
            self.theta.bias.copy_(torch.tensor(_IDENTITY))
        self.last_theta: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(self.localization(x)).view(-1, 2, 3)
        self.last_theta = theta.detach()
        return affine_resample(x, theta)


class IdentityResample(nn.Module):
    """Fixed identity affine resample without parameters (parity with the authors' code)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = x.new_tensor(_IDENTITY).view(1, 2, 3).expand(x.shape[0], 2, 3)
        return affine_resample(x, theta)


class STNInFront(nn.Module):
    """An optional STN in front of a segmentation network (sec. 2.3.6, Fig. 4).

    Args:
        net: the segmentation network; must have an ``encoder`` attribute (frozen in the first
            training stage).
        stn: ``none``, ``trained`` or ``identity`` (see :func:`build_stn`).

    Forward: ``[B, 3, H, W]`` in [0, 1] -> the net's logits ``[B, C, H, W]``; the STN resamples
    the image before the net normalises it (out-of-image samples are black, like the resin).
    """

    def __init__(self, net: nn.Module, stn: str = "none"):
        super().__init__()
        self.stn = build_stn(stn)
        self.net = net

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stn is not None:
            x = self.stn(x)
        return self.net(x)


STN_MODES = ("none", "trained", "identity")


def build_stn(mode: str) -> nn.Module | None:
    """``none`` -> None, ``trained`` -> :class:`SpatialTransformer`, ``identity`` ->
    :class:`IdentityResample`."""
    if mode in (None, "none", False):
        return None
    if mode in ("trained", True):
        return SpatialTransformer()
    if mode == "identity":
        return IdentityResample()
    raise ConfigError(f"unknown stn mode {mode!r} (use none, trained or identity)")
