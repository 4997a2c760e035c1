"""The optimized Res-UNet of the mineral paper (Jiang et al., Minerals 2024, sec. 2.3, Fig. 4).

A torchvision ResNet encoder (ResNet-50: bottlenecks 3/4/6/3) whose every ReLU is replaced by
LeakyReLU(0.1) (sec. 2.3.2), a U-Net decoder (bilinear x2 upsampling, concatenation with the
encoder feature of the same stride, two 3x3 conv + BN + activation) and a 1x1 classifier. The
optional spatial transformer in front of it is :class:`~.stn.STNInFront`, shared by every
learner. Input images are in [0, 1]; the network normalises them with the ImageNet statistics
its (optional) torchvision weights were trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ensemblab.backbones import InputNorm
from ensemblab.engine.checkpoints import load_checkpoint
from ensemblab.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RESNETS = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
            "resnet50": torchvision.models.resnet50, "resnet101": torchvision.models.resnet101}


ACTIVATIONS = ("leaky_relu", "relu")


def make_activation(name: str, slope: float = 0.1) -> nn.Module:
    """``"leaky_relu"`` -> LeakyReLU(slope) (the paper's choice), ``"relu"`` -> ReLU."""
    if name == "leaky_relu":
        return nn.LeakyReLU(slope, inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    raise ConfigError(f"unknown activation {name!r} (use leaky_relu or relu)")


def replace_relu(module: nn.Module, activation: str, slope: float = 0.1) -> nn.Module:
    """Replace every ``nn.ReLU`` submodule of ``module`` in place; returns ``module``.

    torchvision's Bottleneck calls one ``self.relu`` three times, so swapping the registered
    modules changes every activation of the network.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, make_activation(activation, slope))
        else:
            replace_relu(child, activation, slope)
    return module


def load_local_weights(module: nn.Module, weights: str | Path | None, strict: bool = False) -> None:
    """Load a local state dict (never a hub download); ConfigError when the file is missing."""
    if not weights:
        return
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"{path}: pretrained weights file not found (give a local path, "
                          "e.g. torchvision's resnet50-11ad3fa6.pth, or weights: null)")
    state = load_checkpoint(path, required=())
    state = state.get("state_dict", state)
    # ImageNet classifier heads (torchvision ``fc.`` / VGG ``classifier.``) are not used here.
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    module.load_state_dict(state, strict=strict)


class ResNetEncoder(nn.Module):
    """ResNet feature pyramid with a configurable activation.

    Args:
        backbone: ``resnet18 | resnet34 | resnet50 | resnet101`` (torchvision definitions).
        activation: ``leaky_relu`` (paper) or ``relu``.
        slope: negative slope of LeakyReLU.
        weights: optional local ``.pth`` of torchvision ImageNet weights.
        depth: stages used, 2..5 (5 = the whole ResNet; fewer = a lighter network, as SMP's
            ``encoder_depth``).

    Forward: ``[B, 3, H, W]`` -> list of ``depth`` features at strides 2, 4, 8, 16, 32 with
    ``out_channels`` channels (64, 256, 512, 1024, 2048 for ResNet-50).
    """

    def __init__(self, backbone: str = "resnet50", activation: str = "leaky_relu",
                 slope: float = 0.1, weights: str | None = None, depth: int = 5):
        super().__init__()
        if not 2 <= depth <= 5:
            raise ConfigError(f"encoder depth {depth} must be 2..5")
        if backbone not in _RESNETS:
            raise ConfigError(f"unknown backbone {backbone!r}; choose from {sorted(_RESNETS)}")
        net = _RESNETS[backbone](weights=None)
        load_local_weights(net, weights)
        replace_relu(net, activation, slope)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4][:depth - 1])
        expansion = 4 if backbone in ("resnet50", "resnet101") else 1
        self.out_channels = ([64] + [c * expansion for c in (64, 128, 256, 512)])[:depth]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        y = self.pool(feats[0])
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        return feats


class DecoderBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip, two 3x3 conv + BN + activation."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, activation: str, slope: float):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_ch + skip_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch),
            make_activation(activation, slope),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch),
            make_activation(activation, slope))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class ResUNet(nn.Module):
    """ImageNet input normalisation -> ResNet encoder -> U-Net decoder -> 1x1 classifier.

    Args:
        num_classes: output classes ``C``.
        backbone: encoder name (paper: ``resnet50``).
        activation: ``leaky_relu`` (paper, slope 0.1) or ``relu``, used in encoder and decoder.
        decoder_channels: channels of the decoder blocks, deepest first (one per encoder stage).
        slope: negative slope of LeakyReLU.
        weights: optional local torchvision ImageNet weights for the encoder.

    Forward: ``[B, 3, H, W]`` in [0, 1] (H, W multiples of 2**depth) -> logits ``[B, C, H, W]``.
    """

    def __init__(self, num_classes: int, backbone: str = "resnet50",
                 activation: str = "leaky_relu",
                 decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
                 slope: float = 0.1, weights: str | None = None):
        super().__init__()
        depth = len(decoder_channels)
        self.input_norm = InputNorm(IMAGENET_MEAN, IMAGENET_STD)
        self.encoder = ResNetEncoder(backbone, activation, slope, weights, depth)
        enc = self.encoder.out_channels  # strides 2, 4, 8, ... (deepest last)
        skips = [*enc[-2::-1], 0]  # the full-resolution block has no skip
        ins = [enc[-1], *decoder_channels[:-1]]
        self.decoder = nn.ModuleList(
            DecoderBlock(i, s, o, activation, slope)
            for i, s, o in zip(ins, skips, decoder_channels))
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(self.input_norm(x))
        y = feats[-1]
        for block, skip in zip(self.decoder, [*feats[-2::-1], None]):
            y = block(y, skip)
        return self.head(y)
