"""A feature pyramid over an ensemblab encoder, as a torchvision detection backbone."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from timm.layers import freeze_batch_norm_2d
from torch import nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from ensemblab.backbones.encoder import Encoder, create_encoder


class EncoderFPN(nn.Module):
    """Encoder (strides 4-32) + FPN (+ max-pool level 64), like torchvision's
    ``BackboneWithFPN`` (Lin et al. 2017) but over any timm encoder.

    ``forward``: ``[B, C, H, W]`` in [0, 1] -> ``OrderedDict`` ``{"0", "1", "2", "3", "pool"}``
    of ``[B, out_channels, H/s, W/s]``. Use it with a ``GeneralizedRCNNTransform`` whose
    ``image_mean`` is 0 and ``image_std`` 1: the encoder normalises its own input.
    """

    def __init__(self, encoder: Encoder, out_channels: int = 256):
        super().__init__()
        self.body = encoder
        self.fpn = FeaturePyramidNetwork(encoder.channels, out_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def freeze_stages(encoder: Encoder, trainable_stages: int) -> None:
    """Freeze every encoder parameter up to the last ``trainable_stages`` output stages.

    Stages are the encoder's output levels (for EfficientNet: strides 4, 8, 16, 32); the stem
    and everything before the first trainable level stop receiving gradients.
    """
    modules = encoder.feature_info.module_name()
    if trainable_stages >= len(modules):
        return
    boundary = modules[len(modules) - trainable_stages - 1]
    passed = False
    for name, param in encoder.body.named_parameters():
        inside = name.startswith(boundary + ".") or name.startswith(boundary.replace(".", "_"))
        if passed and not inside:
            break
        param.requires_grad_(False)
        passed = passed or inside


def fpn_backbone(encoder: str, pretrained: bool = True, in_chans: int = 3,
                 out_channels: int = 256, weights: str | Path | None = None,
                 trainable_stages: int | None = None, frozen_bn: bool = True) -> EncoderFPN:
    """An :class:`EncoderFPN` for ``torchvision.models.detection.MaskRCNN(backbone, ...)``.

    Args:
        encoder: encoder name (see :func:`ensemblab.backbones.create_encoder`).
        pretrained: load its weights.
        in_chans: input channels.
        out_channels: FPN width.
        weights: local weight file.
        trainable_stages: train only the last N output stages (``None``: all).
        frozen_bn: replace the encoder's BatchNorm by ``FrozenBatchNorm2d`` (detection batches
            of 1-4 images give useless batch statistics; torchvision does the same).
    """
    enc = create_encoder(encoder, pretrained=pretrained, in_chans=in_chans,
                         out_indices=(1, 2, 3, 4), weights=weights)
    if frozen_bn:
        enc.body = freeze_batch_norm_2d(enc.body)
    if trainable_stages is not None:
        freeze_stages(enc, trainable_stages)
    return EncoderFPN(enc, out_channels)
