"""The learner networks of the mineral ensembles, selected by name from :data:`LEARNERS`.

``model.arch`` names a registered builder; the other ``model`` keys are its keyword arguments
(a key the builder does not take must be null in the config). Every learner takes images in
[0, 1], normalises them itself, may have the paper's STN in front (``stn``), and exposes an
``encoder`` that the first training stage freezes:

- ``resunet``: the paper's Res-UNet (:class:`~.resunet.ResUNet`, ResNet-50, LeakyReLU 0.1).
  No ImageNet weights ship offline for it: random init unless ``weights: /local/file.pth``.
- ``unet``: SMP U-Net on an :mod:`ensemblab.backbones` encoder; ``efficientnet_lite0/1/2``
  carry packaged ImageNet weights (``pretrained: true``); ``vgg16`` is the paper's baseline.
  The paper's LeakyReLU(0.1) replaces the decoder's ReLUs (the pretrained encoder keeps its
  own activation).
- ``deeplabv3`` / ``pspnet``: the paper's Table 5 comparison models (SMP).

A new kind of learner is one function here decorated with ``@LEARNERS.register("name")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn

from ensemblab.backbones import build_smp
from ensemblab.errors import ConfigError
from ensemblab.projects.mineral_ruel.resunet import ResUNet, replace_relu
from ensemblab.projects.mineral_ruel.stn import STNInFront
from ensemblab.registry import Registry

LEARNERS = Registry("mineral learner arch")
"""``model.arch`` -> builder ``(num_classes, **model keys) -> nn.Module`` with ``.encoder``."""


@LEARNERS.register("resunet")
def resunet(num_classes: int, encoder: str = "resnet50", activation: str = "leaky_relu",
            decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
            pretrained: bool = False, weights: str | None = None) -> nn.Module:
    """The paper's Res-UNet (sec. 2.3.1-2.3.2). ``pretrained`` needs a local ``weights`` file."""
    if pretrained and not weights:
        raise ConfigError(f"model.arch=resunet: {encoder} has no offline ImageNet weights; give "
                          "model.weights=/path/to/torchvision.pth or model.pretrained=false")
    return ResUNet(num_classes, backbone=encoder, activation=activation,
                   decoder_channels=tuple(decoder_channels), weights=weights)


@LEARNERS.register("unet")
def unet(num_classes: int, encoder: str = "efficientnet_lite0", activation: str = "leaky_relu",
         decoder_channels: Sequence[int] = (256, 128, 64, 32, 16), pretrained: bool = True,
         weights: str | None = None) -> nn.Module:
    """SMP U-Net on an ensemblab encoder; ``activation`` is the decoder's."""
    net = build_smp("Unet", encoder, classes=num_classes, pretrained=pretrained,
                    weights=weights, decoder_channels=tuple(decoder_channels),
                    encoder_depth=len(decoder_channels))
    replace_relu(net.net.decoder, activation)
    return net


@LEARNERS.register("deeplabv3")
def deeplabv3(num_classes: int, encoder: str = "resnet50", pretrained: bool = False,
              weights: str | None = None) -> nn.Module:
    """SMP DeepLabV3 (Table 5 comparison)."""
    return build_smp("DeepLabV3", encoder, classes=num_classes, pretrained=pretrained,
                     weights=weights)


@LEARNERS.register("pspnet")
def pspnet(num_classes: int, encoder: str = "resnet50", pretrained: bool = False,
           weights: str | None = None) -> nn.Module:
    """SMP PSPNet (Table 5 comparison)."""
    return build_smp("PSPNet", encoder, classes=num_classes, pretrained=pretrained,
                     weights=weights)


def build_model(num_classes: int, arch: str = "resunet", stn: str | None = "none",
                **kwargs: Any) -> STNInFront:
    """Build a learner network: ``[B, 3, H, W]`` in [0, 1] -> logits ``[B, num_classes, H, W]``.

    Args:
        num_classes: output classes.
        arch: a name registered in :data:`LEARNERS`.
        stn: ``none | trained | identity`` (sec. 2.3.6), in front of any arch.
        **kwargs: keywords of the arch's builder; ``None`` values are left to its defaults.

    Raises:
        ConfigError: unknown arch, or a non-null key the arch does not take.
    """
    builder = LEARNERS.get(arch)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    accepted = set(inspect.signature(builder).parameters) - {"num_classes"}
    unused = sorted(set(kwargs) - accepted)
    if unused:
        raise ConfigError(f"model.arch={arch} does not take model.{', model.'.join(unused)} "
                          "(set them to null)")
    return STNInFront(builder(num_classes, **kwargs), stn or "none")
