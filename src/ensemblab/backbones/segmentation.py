"""SMP segmentation models on ensemblab encoders (weights loaded offline, input normalised)."""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

from ensemblab.backbones.encoder import InputNorm, channel_stats
from ensemblab.backbones.loading import classifier_state_dict, load_exact
from ensemblab.backbones.specs import spec_for
from ensemblab.errors import ConfigError

SMP_ARCHS = ("Unet", "UnetPlusPlus", "FPN", "UPerNet", "DeepLabV3", "DeepLabV3Plus", "PSPNet")


class NormalizedSegmentation(nn.Module):
    """An SMP model behind its encoder's input normalisation.

    ``forward``: ``[B, in_chans, H, W]`` in [0, 1] -> logits ``[B, classes, H, W]``.
    ``net`` is the SMP model (``net.encoder``, ``net.decoder``, ``net.segmentation_head``).
    """

    def __init__(self, net: nn.Module, mean, std, encoder_name: str):
        super().__init__()
        self.net = net
        self.input_norm = InputNorm(mean, std)
        self.encoder_name = encoder_name

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_norm(x))


def build_smp(arch: str, encoder: str, classes: int, in_chans: int = 3,
              pretrained: bool = True, weights: str | Path | None = None,
              **smp_kwargs) -> NormalizedSegmentation:
    """An SMP ``arch`` over a timm-universal encoder holding ensemblab's weights.

    Args:
        arch: one of :data:`SMP_ARCHS`.
        encoder: encoder name (see :func:`ensemblab.backbones.create_encoder`).
        classes: output channels.
        in_chans: input channels (1 adapts the first conv from RGB).
        pretrained: load the encoder's weights (packaged, or ``weights``).
        weights: local weight file for the encoder.
        **smp_kwargs: passed to the SMP class (``decoder_channels``, ``encoder_depth``, ...).

    Raises:
        ConfigError: unknown arch or encoder, or missing weights.
    """
    if arch not in SMP_ARCHS:
        raise ConfigError(f"unknown segmentation architecture {arch!r}; "
                          f"known: {', '.join(SMP_ARCHS)}")
    spec = spec_for(encoder, weights)
    net = getattr(smp, arch)(encoder_name=f"tu-{spec.timm_name}", encoder_weights=None,
                             in_channels=in_chans, classes=classes, **smp_kwargs)
    if pretrained or weights is not None:
        path = spec.resolve_weights(weights)
        load_exact(net.encoder.model, classifier_state_dict(spec, weights), source=str(path))
    mean, std = channel_stats(spec, in_chans)
    return NormalizedSegmentation(net, mean, std, encoder)
