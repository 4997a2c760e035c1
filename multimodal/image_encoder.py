"""Image encoder: a CNN grid of region features, refined by CBAM and projected to width d.

The paper (its Sec. 3.1) takes DenseNet121's last feature map, refines it with CBAM and
flattens the ``h x w`` grid into region vectors {I}. Any encoder of :mod:`ensemblab.backbones`
gives that map (``out_indices=(4,)``, stride 32: an 8 x 8 grid at 256 px): EfficientNet-Lite0/1/2
with the ImageNet weights shipped in pip packages, or DenseNet121 from a local weights file.
A small from-scratch CNN is registered for the synthetic demo.

The CNN is split into a frozen ``trunk`` (whose output can be cached, see
:mod:`ensemblab.multimodal.feature_cache`) and a trainable ``tail``:

* ``finetune="none"``: the whole encoder is the frozen trunk, the tail is empty;
* ``finetune="last_stage"``: the trunk stops at stride 16 and the stride-32 stage is trained
  (EfficientNet encoders);
* ``finetune="all"``: no trunk, the whole encoder is trained (never cached).
"""

from __future__ import annotations

import torch
from torch import nn

from ensemblab.backbones import create_encoder
from ensemblab.backbones.encoder import InputNorm
from ensemblab.backbones.specs import IMAGENET_MEAN, IMAGENET_STD
from ensemblab.errors import ConfigError
from ensemblab.multimodal.cbam import CBAM
from ensemblab.registry import Registry

FINETUNE = ("none", "last_stage", "all")

SCRATCH_CNNS = Registry("from-scratch image CNN")
"""Name -> factory ``(width) -> (module [B,3,H,W] in [0,1] -> [B,C,h,w], C)``."""


@SCRATCH_CNNS.register("small_cnn")
def small_cnn(width: int = 32) -> tuple[nn.Module, int]:
    """Four conv-BN-ReLU stages, the first three with stride 2: ``[B,3,H,W] -> [B,4w,H/8,W/8]``."""
    chans = [3, width, 2 * width, 4 * width, 4 * width]
    layers: list[nn.Module] = [InputNorm(IMAGENET_MEAN, IMAGENET_STD)]
    for i in range(4):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2 if i < 3 else 1, padding=1,
                             bias=False), nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers), 4 * width


class LastMap(nn.Module):
    """An :class:`ensemblab.backbones.Encoder` returning its single map as a tensor."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B,3,H,W]`` in [0, 1] -> ``[B, C, H/32, W/32]``."""
        return self.encoder(x)[-1]


class EfficientNetToStride16(nn.Module):
    """Input normalisation, stem and the stages up to stride 16 of a timm EfficientNet."""

    def __init__(self, encoder: nn.Module, n_blocks: int):
        super().__init__()
        body = encoder.body
        self.norm = encoder.input_norm
        self.stem = nn.Sequential(body.conv_stem, body.bn1)
        self.blocks = nn.Sequential(*list(body.blocks)[:n_blocks])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B,3,H,W]`` in [0, 1] -> ``[B, C16, H/16, W/16]``."""
        return self.blocks(self.stem(self.norm(x)))


def split_last_stage(encoder: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(trunk to stride 16, stride-32 stages)`` of a backbones EfficientNet encoder.

    Raises:
        ConfigError: the encoder is not an EfficientNet (no ``blocks`` / ``conv_stem``).
    """
    body = encoder.body
    if not (hasattr(body, "blocks") and hasattr(body, "conv_stem")):
        raise ConfigError(f"model.image.finetune=last_stage needs an EfficientNet encoder, "
                          f"not {encoder.name!r} (use none or all)")
    # Output size after each stage, from a dummy 64 px input: the stride-32 stages end at 2x2.
    sizes, x = [], torch.zeros(1, body.conv_stem.in_channels, 64, 64)
    mode = body.training
    body.eval()  # a train-mode pass would move the BatchNorm running statistics
    with torch.no_grad():
        x = body.bn1(body.conv_stem(x))
        for stage in body.blocks:
            x = stage(x)
            sizes.append(x.shape[-1])
    body.train(mode)
    n16 = sum(1 for s in sizes if s >= 4)
    return EfficientNetToStride16(encoder, n16), nn.Sequential(*list(body.blocks)[n16:])


def build_cnn(encoder: str, finetune: str = "none", pretrained: bool = True,
              weights: str | None = None, width: int = 32) -> tuple[nn.Module, nn.Module, int]:
    """``(trunk, tail, channels)`` of an image CNN.

    Args:
        encoder: a name in :data:`SCRATCH_CNNS` or any :func:`ensemblab.backbones.create_encoder`
            name (``efficientnet_lite0``, ``densenet121`` ...).
        finetune: one of :data:`FINETUNE`.
        pretrained: load the encoder's weights (packaged, or ``weights``).
        weights: local weights file.
        width: channel width of a from-scratch CNN.

    Returns:
        ``trunk`` (frozen; ``nn.Identity`` when ``finetune="all"``), ``tail`` (trainable;
        ``nn.Identity`` when ``finetune="none"``) and the channels C of the final map.
    """
    if finetune not in FINETUNE:
        raise ConfigError(f"model.image.finetune={finetune!r}; one of {FINETUNE}")
    if encoder in SCRATCH_CNNS:
        if weights:
            raise ConfigError(f"{encoder} is trained from scratch; set model.image.weights: null")
        cnn, channels = SCRATCH_CNNS.get(encoder)(width=width)
        if finetune == "last_stage":
            raise ConfigError(f"{encoder}: finetune last_stage needs a pretrained encoder")
        return (cnn, nn.Identity(), channels) if finetune == "none" else \
            (nn.Identity(), cnn, channels)
    net = create_encoder(encoder, pretrained=pretrained, weights=weights, out_indices=(4,))
    channels = net.channels[-1]
    if finetune == "none":
        return LastMap(net), nn.Identity(), channels
    if finetune == "all":
        return nn.Identity(), LastMap(net), channels
    trunk, tail = split_last_stage(net)
    return trunk, tail, channels


class ImageEncoder(nn.Module):
    """CNN trunk (frozen) + tail (trainable) + CBAM + linear projection to region vectors.

    Args:
        dim: output width d of each region vector.
        encoder, finetune, pretrained, weights, width: see :func:`build_cnn`.
        use_cbam: apply CBAM (off for the no-CBAM ablation).

    Forward ``images [B,3,H,W]`` in [0, 1] (or the trunk's cached maps with
    ``features=True``) -> ``(regions [B, n, d], spatial_gate [B, 1, h, w] or None)``,
    ``n = h * w``.
    """

    def __init__(self, dim: int, encoder: str = "efficientnet_lite0", finetune: str = "none",
                 pretrained: bool = True, weights: str | None = None, use_cbam: bool = True,
                 width: int = 32):
        super().__init__()
        self.trunk, self.tail, channels = build_cnn(encoder, finetune, pretrained, weights,
                                                    width)
        self.encoder_name, self.channels = encoder, channels
        self.trunk.requires_grad_(False)
        self.cbam = CBAM(channels) if use_cbam else None
        self.proj = nn.Sequential(nn.Linear(channels, dim), nn.LayerNorm(dim))

    @property
    def has_trunk(self) -> bool:
        """True when a frozen trunk exists (its maps can be cached)."""
        return not isinstance(self.trunk, nn.Identity)

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk.eval()  # frozen: BatchNorm statistics stay those of the weights
        return self

    @torch.no_grad()
    def trunk_features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen trunk maps ``[B, C', h', w']`` of ``images [B,3,H,W]`` in [0, 1]."""
        return self.trunk(images)

    def head(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tail + CBAM + flatten + projection of trunk maps: ``-> ([B, n, d], gate)``."""
        maps = self.tail(maps)
        gate = None
        if self.cbam is not None:
            maps, gate = self.cbam(maps)
        regions = maps.flatten(2).transpose(1, 2)
        return self.proj(regions), gate

    def forward(self, x: torch.Tensor, features: bool = False):
        maps = x if features else self.trunk_features(x)
        return self.head(maps)
