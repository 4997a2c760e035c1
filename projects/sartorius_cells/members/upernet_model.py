"""The UPerNet network (Xiao et al. 2018, "Unified Perceptual Parsing") and its inference:
full-image class probabilities, instances from them, and box-crop masks.

UPerNet = encoder + FPN with a pyramid pooling module on the top stage, from
``segmentation_models_pytorch``; as in the paper's (mmseg) recipe an auxiliary FCN head on the
stride-16 encoder stage adds its loss during training.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ensemblab.backbones import build_smp
from ensemblab.ensemble.crops import crop_boxes, expand_boxes, integer_boxes, resize_crops_to_boxes
from ensemblab.projects.sartorius_cells.data import letterbox_scale, standardize
from ensemblab.projects.sartorius_cells.members.upernet_data import to_input
from ensemblab.projects.sartorius_cells.structures import Instances


class UperNetWithAux(torch.nn.Module):
    """SMP UPerNet on an ensemblab encoder plus an auxiliary FCN head on the second-deepest
    encoder stage.

    The input is a gray image standardised by its own mean and standard deviation (zero mean,
    unit variance: what an encoder's own normalisation makes of a well-exposed image), so the
    network is called without :func:`ensemblab.backbones.build_smp`'s input normalisation.

    Args:
        encoder: encoder name (``efficientnet_lite0/1/2`` with packaged ImageNet weights;
            ``resnet18``, ``resnet50``, ``resnext50_32x4d``, ... random init unless
            ``weights``).
        classes: output channels (3 for full mode, 1 for crop mode).
        decoder_channels: FPN / PPM width.
        pretrained: load the encoder's packaged weights.
        weights: local weights file of the encoder (timm layout).
    """

    def __init__(self, encoder: str = "efficientnet_lite0", classes: int = 3,
                 decoder_channels: int = 256, pretrained: bool = True,
                 weights: str | None = None):
        super().__init__()
        self.net = build_smp("UPerNet", encoder, classes, in_chans=1, pretrained=pretrained,
                             weights=weights, decoder_channels=decoder_channels).net
        aux_in = self.net.encoder.out_channels[-2]
        mid = max(aux_in // 4, 32)
        self.aux_head = torch.nn.Sequential(
            torch.nn.Conv2d(aux_in, mid, 3, padding=1, bias=False), torch.nn.BatchNorm2d(mid),
            torch.nn.ReLU(inplace=True), torch.nn.Dropout2d(0.1), torch.nn.Conv2d(mid, classes, 1))

    def forward(self, x: torch.Tensor):
        """``x [B, 1, H, W]`` standardised (H, W multiples of 32) -> logits ``[B, C, H, W]``;
        in training also the auxiliary logits ``[B, C, H, W]``."""
        features = self.net.encoder(x)
        main = self.net.segmentation_head(self.net.decoder(features))
        if not self.training:
            return main
        aux = F.interpolate(self.aux_head(features[-2]), size=x.shape[-2:], mode="bilinear",
                            align_corners=False)
        return main, aux



@torch.no_grad()
def predict_full(net: torch.nn.Module, image: np.ndarray, device, size: int) -> np.ndarray:
    """Class probabilities of the whole image at full resolution.

    Args:
        net: full-mode network (3 or 2 classes).
        image: uint8 ``[H, W]``.
        device: torch device.
        size: longer side the network sees (as in training).

    Returns:
        float32 ``[C, H, W]`` softmax probabilities (0 background, 1 cell, 2 border).
    """
    h, w = image.shape
    r = letterbox_scale(h, w, size)
    nh, nw = round(h * r), round(w * r)
    side_h, side_w = 32 * -(-nh // 32), 32 * -(-nw // 32)
    small = standardize(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA))
    x = F.pad(to_input(small), (0, side_w - nw, 0, side_h - nh))[None].to(device)
    probs = net(x).softmax(1)
    probs = probs[:, :, :nh, :nw]
    return F.interpolate(probs, size=(h, w), mode="bilinear",
                         align_corners=False)[0].cpu().numpy()


def semantic_instances(probs: np.ndarray, min_area: int = 8) -> Instances:
    """Instances from full-mode probabilities alone (UPerNet scored as a single member).

    Seeds are connected components of "cell" (argmax = 1, i.e. not border); every cell or border
    pixel then joins its nearest seed, so touching cells split along the predicted border.
    Score = mean cell probability (1 - background) over the instance.

    Args:
        probs: float ``[C, H, W]`` from :func:`predict_full`.
        min_area: drop smaller instances.
    """
    _, h, w = probs.shape
    arg = probs.argmax(0)
    seeds, n = ndimage.label(arg == 1)
    if n == 0:
        return Instances.empty(h, w)
    _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = np.where(arg > 0, seeds[iy, ix], 0)
    fg = 1.0 - probs[0]
    objs = ndimage.find_objects(labels)
    boxes, scores, crops, crop_boxes_ = [], [], [], []
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        crop = labels[sl] == i
        if crop.sum() < min_area:
            continue
        y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        boxes.append((x0, y0, x1, y1))
        crop_boxes_.append((x0, y0, x1, y1))
        scores.append(float(fg[sl][crop].mean()))
        crops.append(crop)
    if not crops:
        return Instances.empty(h, w)
    return Instances(np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                     np.ones(len(crops), np.int64), crops, np.asarray(crop_boxes_, np.int64), h, w)


@torch.no_grad()
def predict_crops(net: torch.nn.Module, image: np.ndarray, boxes: np.ndarray, device,
                  crop: int, context: float, batch: int = 128) -> tuple[np.ndarray, list]:
    """Cell-mask probabilities of crop mode around given boxes, pasted back to image pixels.

    Args:
        net: crop-mode network (1 class).
        image: uint8 ``[H, W]``.
        boxes: float ``[N, 4]`` detections (x0, y0, x1, y1).
        device: torch device.
        crop: crop side used in training.
        context: box growth used in training.
        batch: crops per forward pass (bounds memory for ~800-cell images).

    Returns:
        ``(windows int64[N, 4], probs)``: each ``probs[i]`` is float32 on ``windows[i]`` (the
        box grown by ``context``, clipped to the image).
    """
    h, w = image.shape
    grown = expand_boxes(boxes, context, 2.0)
    windows = integer_boxes(grown, h, w)
    x = to_input(image).to(device)
    probs: list[np.ndarray] = []
    for start in range(0, len(windows), batch):
        part = windows[start:start + batch]
        logits = net(crop_boxes(x, part, crop))
        probs += resize_crops_to_boxes(logits[:, 0].sigmoid().cpu(), part)
    return windows, probs
