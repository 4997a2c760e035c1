"""detectron2's ResNet-FPN backbone from torchvision modules.

torchvision's ResNet and FPN have detectron2's structure; three conventions differ and are set
here: the stride of a stage's first block sits on its first 1x1 conv when
``MODEL.RESNETS.STRIDE_IN_1X1`` (MSRA weights; torchvision puts it on the 3x3), every norm is a
frozen batch norm evaluated by ``F.batch_norm`` as detectron2's ``FrozenBatchNorm2d`` does,
and the stem and the first ``FREEZE_AT - 1`` stages do not train.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ensemblab.errors import ConfigError

BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


class FrozenBatchNorm(FrozenBatchNorm2d):
    """Batch norm with fixed statistics and affine parameters (buffers, never trained).

    Same state dict as torchvision's ``FrozenBatchNorm2d``; the forward is
    ``F.batch_norm(training=False)`` as in detectron2 (``layers/batch_norm.py``), so the
    rounding matches detectron2's rather than torchvision's rsqrt form. eps is 1e-5.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> [B, C, H, W]."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)


def resnet_fpn_backbone(depth: int = 50, num_groups: int = 1, width_per_group: int = 64,
                        stride_in_1x1: bool = True, out_channels: int = 256,
                        freeze_at: int = 2) -> BackboneWithFPN:
    """detectron2's ``build_resnet_fpn_backbone`` with ``LastLevelMaxPool`` (P2-P6).

    Args:
        depth: 50, 101 or 152 (bottleneck ResNets).
        num_groups: ResNeXt groups of the 3x3 convs (1 = ResNet).
        width_per_group: channels per group in the first stage (64 = ResNet).
        stride_in_1x1: stride 2 on the first 1x1 conv of res3-res5 (detectron2's MSRA
            convention) instead of the 3x3.
        out_channels: FPN width.
        freeze_at: 0 trains everything; 1 freezes the stem; 2 the stem and res2 (detectron2's
            ``MODEL.BACKBONE.FREEZE_AT``); frozen parameters have ``requires_grad=False``.

    Returns:
        torchvision ``BackboneWithFPN``: ``x [B, 3, H, W]`` (H, W multiples of 32, normalised
        by the caller) -> OrderedDict ``"0".."3"`` (P2-P5, strides 4-32) and ``"pool"`` (P6,
        stride 64), each ``[B, out_channels, H/s, W/s]``. Random initialisation.
    """
    if depth not in BLOCKS:
        raise ConfigError(f"MODEL.RESNETS.DEPTH {depth}: expected one of {sorted(BLOCKS)}")
    body = resnet.ResNet(resnet.Bottleneck, BLOCKS[depth], groups=num_groups,
                         width_per_group=width_per_group, norm_layer=FrozenBatchNorm)
    if stride_in_1x1:
        for layer in (body.layer2, body.layer3, body.layer4):
            layer[0].conv1.stride, layer[0].conv2.stride = (2, 2), (1, 1)
    stages = [torch.nn.ModuleList([body.conv1, body.bn1]), body.layer1, body.layer2,
              body.layer3, body.layer4]
    for stage in stages[:freeze_at]:
        stage.requires_grad_(False)
    return BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)},
                           [256, 512, 1024, 2048], out_channels,
                           extra_blocks=LastLevelMaxPool())
