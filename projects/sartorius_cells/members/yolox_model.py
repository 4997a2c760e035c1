"""The YOLOX network (``pixeltable-yolox`` named configs), its optimiser groups and prediction.

YOLOX (Ge et al. 2021): CSPDarknet + PAFPN, decoupled head, SiLU, SimOTA assignment. The
paper uses YOLOX only for boxes; masks come from Mask R-CNN / UPerNet in the ensemble.
``encoder`` swaps the CSPDarknet trunk for a pretrained ensemblab encoder
(:class:`EncoderTrunk`): the PAFPN neck reads three named maps at strides 8, 16 and 32, so a
1x1 convolution per level brings the encoder's widths to the ones the neck was built for.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision
from torch import nn
from yolox.config import YoloxConfig
from yolox.models.network_blocks import BaseConv

from ensemblab.backbones import create_encoder
from ensemblab.engine.checkpoints import load_checkpoint
from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.data import letterbox_scale
from ensemblab.projects.sartorius_cells.members.yolox_data import PAD_LEVEL, input_levels


class EncoderTrunk(nn.Module):
    """An ensemblab encoder in place of YOLOX's CSPDarknet.

    ``forward``: ``x [B, 3, S, S]`` in YOLOX's 0-255 grey levels (gray repeated to RGB, as the
    YOLOX data pipeline gives it) -> ``{"dark3", "dark4", "dark5"}`` maps at strides 8, 16,
    32 with ``widths`` channels (1x1 conv + BN + SiLU over the encoder's own widths).

    Args:
        encoder: encoder name (``efficientnet_lite0/1/2`` carry packaged ImageNet weights).
        widths: channels the PAFPN expects at strides 8, 16, 32.
        pretrained: load the encoder's weights.
    """

    def __init__(self, encoder: str, widths: list[int], pretrained: bool = True):
        super().__init__()
        self.encoder = create_encoder(encoder, pretrained=pretrained, in_chans=3,
                                      out_indices=(2, 3, 4))
        if self.encoder.strides != [8, 16, 32]:
            raise ConfigError(f"model.encoder {encoder!r}: needs feature maps at strides 8, 16, "
                              f"32, it gives {self.encoder.strides}")
        self.adapters = nn.ModuleList(BaseConv(c_in, c_out, 1, 1)
                                      for c_in, c_out in zip(self.encoder.channels, widths))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.encoder(x / 255.0)
        return {name: adapt(f) for name, adapt, f in
                zip(("dark3", "dark4", "dark5"), self.adapters, maps)}


VARIANTS = ("yolox_nano", "yolox_tiny", "yolox_s", "yolox_m", "yolox_l", "yolox_x")
"""The package's named configs."""


def build_yolox(variant: str = "yolox_nano", num_classes: int = 3,
                weights: str | None = None, encoder: str | None = None,
                pretrained: bool = True) -> torch.nn.Module:
    """A YOLOX network from the package's named configs (``yolox_nano .. yolox_x``).

    Args:
        variant: ``yolox_nano | yolox_tiny | yolox_s | yolox_m | yolox_l | yolox_x``.
        num_classes: detection classes (cell types).
        weights: optional local ``.pth`` (YOLOX release format ``{"model": state_dict}`` or a
            plain state dict); tensors whose shape differs (the 80-class COCO head) are skipped.
        encoder: an ensemblab encoder replacing the CSPDarknet trunk (``None``: CSPDarknet).
        pretrained: load the encoder's weights (with ``encoder``).

    Returns:
        ``yolox.models.YoloxModule``: ``model(x[B,3,S,S], targets)`` -> loss dict in train mode,
        ``[B, A, 5 + C]`` (cx, cy, w, h, obj, cls...) in eval mode.
    """
    cfg = YoloxConfig.get_named_config(variant)
    if cfg is None:
        raise ConfigError(f"unknown YOLOX variant {variant!r} (yolox_nano .. yolox_x)")
    cfg.num_classes = num_classes
    model = cfg.get_model()
    if encoder:
        neck = model.backbone
        widths = [int(c * cfg.width) for c in neck.in_channels]
        neck.backbone = EncoderTrunk(encoder, widths, pretrained)
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"{path}: YOLOX weights file not found (give a local .pth)")
        state = load_checkpoint(path, required=())
        state = state.get("model", state)
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in state.items()
                               if k in own and own[k].shape == v.shape}, strict=False)
    return model


def yolox_param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """YOLOX's three groups: BN weights (no decay), other weights (decay), biases (no decay)."""
    no_decay, decay, biases = [], [], []
    for name, mod in model.named_modules():
        if isinstance(getattr(mod, "bias", None), torch.nn.Parameter):
            biases.append(mod.bias)
        weight = getattr(mod, "weight", None)
        if not isinstance(weight, torch.nn.Parameter):
            continue
        if isinstance(mod, torch.nn.BatchNorm2d) or "bn" in name:
            no_decay.append(weight)
        else:
            decay.append(weight)
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay},
            {"params": biases, "weight_decay": 0.0}]


@torch.no_grad()
def predict_boxes(model: torch.nn.Module, image: np.ndarray, device: torch.device | str,
                  size: int = 416, conf: float = 0.05, nms_iou: float = 0.65,
                  max_det: int = 3000, input_norm: str = "image"):
    """Detect cells in one image.

    Args:
        model: a YOLOX network (EMA weights).
        image: uint8 ``[H, W]`` grayscale.
        device: torch device.
        size: square letterbox input side (multiple of 32).
        conf: minimum obj x class score.
        nms_iou: class-agnostic NMS IoU.
        max_det: detections kept (well above 1000: dense images hold ~800 cells).
        input_norm: ``image`` (grey levels standardised per image, as in training) or
            ``fixed`` (raw grey levels).

    Returns:
        ``(boxes float32[N, 4] xyxy in image pixels, scores float32[N], labels int64[N]
        1-based)``, sorted by score.
    """
    model.eval()
    h, w = image.shape[:2]
    r = letterbox_scale(h, w, size)
    nh, nw = round(h * r), round(w * r)
    canvas = np.full((size, size), PAD_LEVEL, dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(input_levels(image, input_norm), (nw, nh),
                                  interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(canvas).float().to(device)[None, None].expand(1, 3, size, size)
    out = model(x)[0]
    cls_conf, cls_idx = out[:, 5:].max(dim=1)
    score = out[:, 4] * cls_conf
    keep = score >= conf
    out, score, cls_idx = out[keep], score[keep], cls_idx[keep]
    boxes = torch.cat([out[:, :2] - out[:, 2:4] / 2, out[:, :2] + out[:, 2:4] / 2], dim=1) / r
    order = torchvision.ops.nms(boxes, score, nms_iou)[:max_det]
    boxes, score, cls_idx = boxes[order].cpu().numpy(), score[order].cpu().numpy(), cls_idx[order]
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes.astype(np.float32), score.astype(np.float32), cls_idx.cpu().numpy() + 1
