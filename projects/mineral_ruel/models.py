"""Model factory: the Res-UNet learners and the SMP baselines of the mineral paper.

``arch`` chooses the network; every other key is a keyword of that network:

- ``resunet``: :class:`~.resunet.ResUNet` (the paper's learners; Table 2).
- ``vgg16_unet``: SMP ``Unet`` with a VGG16 encoder (the paper's two baseline learners).
- ``deeplabv3`` / ``pspnet``: SMP ``DeepLabV3`` / ``PSPNet`` with a ResNet-50 encoder
  (the comparison models of Table 5).

No network access: SMP encoders are built with ``encoder_weights=None`` and optional local
weights are loaded from ``weights: /path`` into ``model.encoder``.
"""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from ensemblab.errors import ConfigError
from ensemblab.projects.mineral_ruel.resunet import ResUNet, load_local_weights

_SMP = {"vgg16_unet": (smp.Unet, "vgg16"), "deeplabv3": (smp.DeepLabV3, "resnet50"),
        "pspnet": (smp.PSPNet, "resnet50")}


def build_model(num_classes: int, arch: str = "resunet", **kwargs: Any) -> nn.Module:
    """Build a segmentation network returning logits ``[B, num_classes, H, W]``.

    Args:
        num_classes: output classes.
        arch: ``resunet | vgg16_unet | deeplabv3 | pspnet``.
        **kwargs: for ``resunet`` the :class:`ResUNet` keywords (``backbone``, ``activation``,
            ``stn``, ``decoder_channels``, ``weights``); for SMP models ``encoder`` (overrides
            the default encoder name) and ``weights``.

    Every returned model has an ``encoder`` attribute (frozen in the first training stage).
    """
    if arch == "resunet":
        if "decoder_channels" in kwargs:
            kwargs["decoder_channels"] = tuple(kwargs["decoder_channels"])
        return ResUNet(num_classes, **kwargs)
    if arch in _SMP:
        cls, encoder = _SMP[arch]
        # Res-UNet keys inherited from base.yaml are set to null in the SMP configs.
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        weights = kwargs.pop("weights", None)
        encoder = kwargs.pop("encoder", encoder)
        if kwargs:
            raise ConfigError(f"model keys {sorted(kwargs)} are not used by arch {arch!r}")
        model = cls(encoder_name=encoder, encoder_weights=None, classes=num_classes)
        load_local_weights(model.encoder, weights)
        return model
    raise ConfigError(f"unknown model.arch {arch!r}; choose resunet, {', '.join(_SMP)}")
