"""Feature Random Enhancement (FRE), the paper's train-only module (Sec. 3.2, Fig. 3).

The deepest encoder features of a U-Net are the farthest from the loss and receive small
gradients; their magnitude stays small next to the skip connections, so the decoder learns to
ignore them (Figs. 2 and 9). FRE multiplies ``B`` randomly chosen channels of that layer by a
constant ``X`` during training, which enlarges both their activations and their gradients::

    y[:, c] = X * x[:, c]   for c in S_e (|S_e| = B, re-drawn at every epoch e)
    y[:, c] = x[:, c]       otherwise

At evaluation the module returns its input unchanged (the very same tensor), so inference cost
and outputs are those of the plain network. The channel set of epoch ``e`` is drawn from a
``torch.Generator`` seeded with ``(seed, e)``: a run is reproducible and a resumed run draws the
same channels as an uninterrupted one. ``fixed=True`` keeps the epoch-0 channels for the whole
run (the paper's Table 3 enhances ten fixed channels by 10,000).
"""

from __future__ import annotations

import torch
from torch import nn

from ensemblab.errors import ConfigError


class FeatureRandomEnhancement(nn.Module):
    """Multiply ``num_enhanced`` channels of ``[N, C, H, W]`` features by ``factor`` in training.

    Args:
        channels: ``C``, the number of feature channels.
        num_enhanced: ``B``, channels enhanced at a time (``0 <= B <= C``).
        factor: ``X``, the multiplier.
        seed: seeds the per-epoch channel draw.
        fixed: keep the channels drawn for epoch 0 instead of re-drawing every epoch.
    """

    def __init__(self, channels: int, num_enhanced: int, factor: float, seed: int = 0,
                 fixed: bool = False):
        super().__init__()
        if not 0 <= num_enhanced <= channels:
            raise ConfigError(f"FRE: channels to enhance B={num_enhanced} must be in "
                              f"[0, {channels}] (channels of the deepest layer)")
        self.channels = channels
        self.num_enhanced = num_enhanced
        self.factor = float(factor)
        self.seed = int(seed)
        self.fixed = fixed
        self.epoch = 0
        self.register_buffer("scale", torch.ones(channels), persistent=False)
        self.set_epoch(0)

    def draw(self, epoch: int) -> torch.Tensor:
        """The sorted channel indices ``S_e`` enhanced in ``epoch`` (``[B]`` int64)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + (0 if self.fixed else epoch))
        return torch.randperm(self.channels, generator=gen)[: self.num_enhanced].sort().values

    def set_epoch(self, epoch: int) -> None:
        """Select the channels of ``epoch``; called by the training module at each epoch start."""
        self.epoch = int(epoch)
        scale = torch.ones(self.channels, device=self.scale.device, dtype=self.scale.dtype)
        scale[self.draw(self.epoch).to(scale.device)] = self.factor
        self.scale = scale

    @property
    def enhanced_channels(self) -> torch.Tensor:
        """Indices of the channels enhanced in the current epoch (``[B]``)."""
        return self.draw(self.epoch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[N, C, H, W]`` -> same shape; the identity (same tensor) in eval mode."""
        if not self.training or self.num_enhanced == 0:
            return x
        return x * self.scale.to(x.dtype).view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, B={self.num_enhanced}, X={self.factor:g}, "
                f"seed={self.seed}, fixed={self.fixed}")
