"""Feature extractors and ImageNet classifiers built from :data:`ENCODERS`.

An :class:`Encoder` takes images in ``[0, 1]`` and normalises them itself with the statistics
its weights were trained on, so every caller feeds the same thing (mean = std = 0.5 for
EfficientNet-Lite; ImageNet mean/std for the others).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm
import torch
from torch import nn

from ensemblab.backbones.loading import classifier_state_dict, load_exact
from ensemblab.backbones.specs import EncoderSpec, spec_for


def channel_stats(spec: EncoderSpec, in_chans: int) -> tuple[list[float], list[float]]:
    """Input mean/std for ``in_chans`` channels: RGB as trained, else the RGB average.

    With EfficientNet-Lite's equal statistics and the summed first conv, a 1-channel gray
    image then gives exactly the features of the same image as gray RGB.
    """
    if in_chans == 3:
        return list(spec.mean), list(spec.std)
    return [sum(spec.mean) / 3] * in_chans, [sum(spec.std) / 3] * in_chans


class InputNorm(nn.Module):
    """``(x - mean) / std`` with per-channel statistics (non-persistent buffers).

    Args:
        mean: per-channel mean, length C.
        std: per-channel std, length C.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C, H, W]`` in [0, 1] -> normalised, same shape."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class Encoder(nn.Module):
    """A timm ``features_only`` network behind its own input normalisation.

    Args:
        body: timm feature extractor (has ``feature_info``).
        name: encoder name.
        mean: per-channel input mean ([0, 1] scale).
        std: per-channel input std.
        normalize: apply the normalisation in ``forward`` (``False`` when the caller already
            feeds normalised input).

    Attributes:
        channels: channels of each returned map.
        strides: stride of each returned map w.r.t. the input.
    """

    def __init__(self, body: nn.Module, name: str, mean: Sequence[float],
                 std: Sequence[float], normalize: bool = True):
        super().__init__()
        self.body = body
        self.name = name
        self.input_norm = InputNorm(mean, std)
        self.normalizes = normalize
        self.channels: list[int] = list(body.feature_info.channels())
        self.strides: list[int] = list(body.feature_info.reduction())

    @property
    def feature_info(self):
        """timm's ``FeatureInfo`` of the body (channels, reduction, module names)."""
        return self.body.feature_info

    @property
    def mean(self) -> torch.Tensor:
        return self.input_norm.mean

    @property
    def std(self) -> torch.Tensor:
        return self.input_norm.std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C, H, W]`` in [0, 1] -> the normalised input of the body."""
        return self.input_norm(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x``: ``[B, C, H, W]`` in [0, 1] -> feature maps ``[B, C_i, H/s_i, W/s_i]``."""
        if self.normalizes:
            x = self.input_norm(x)
        return list(self.body(x))


def create_encoder(name: str, pretrained: bool = True, in_chans: int = 3,
                   out_indices: Sequence[int] = (1, 2, 3, 4),
                   weights: str | Path | None = None, normalize: bool = True) -> Encoder:
    """Build a feature extractor with its weights resolved offline.

    Args:
        name: ``efficientnet_lite{0,1,2}`` (packaged ImageNet weights), ``resnet18|34|50``,
            ``vgg16``, ``densenet121`` or any timm model name.
        pretrained: load weights (the packaged file, or ``weights``). ``False``: random init.
        in_chans: input channels; 1 adapts the first conv from the RGB weights.
        out_indices: which feature levels to return (timm indices; for EfficientNet 0..4 are
            strides 2, 4, 8, 16, 32).
        weights: a local weight file (timm key layout, or the packaged EfficientNet layout).
        normalize: normalise the input inside ``forward``.

    Raises:
        ConfigError: unknown name, missing weights file, or a file that does not match.
    """
    spec = spec_for(name, weights)
    body = timm.create_model(spec.timm_name, pretrained=False, features_only=True,
                             out_indices=tuple(out_indices), in_chans=in_chans)
    if pretrained or weights is not None:
        path = spec.resolve_weights(weights)
        load_exact(body, classifier_state_dict(spec, weights), source=str(path))
    mean, std = channel_stats(spec, in_chans)
    return Encoder(body, name=name, mean=mean, std=std, normalize=normalize)


class ImageNetClassifier(nn.Module):
    """A full timm classifier behind its input normalisation: ``[B, 3, H, W]`` in [0, 1] ->
    logits ``[B, 1000]``."""

    def __init__(self, net: nn.Module, name: str, mean: Sequence[float], std: Sequence[float],
                 input_size: int):
        super().__init__()
        self.net = net
        self.name = name
        self.input_norm = InputNorm(mean, std)
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_norm(x))


def imagenet_classifier(name: str, weights: str | Path | None = None) -> ImageNetClassifier:
    """The pretrained ImageNet classifier of an encoder, head included, in eval mode.

    Lets anyone check that the weights are real (``ensemblab weights check PHOTO``).

    Raises:
        ConfigError: unknown name or no weights.
    """
    spec = spec_for(name, weights)
    net = timm.create_model(spec.timm_name, pretrained=False)
    path = spec.resolve_weights(weights)
    load_exact(net, classifier_state_dict(spec, weights), source=str(path))
    size = int(net.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    return ImageNetClassifier(net, name, spec.mean, spec.std, size).eval()
