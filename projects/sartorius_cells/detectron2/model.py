"""The detectron2-compatible Mask R-CNN: torchvision's Mask R-CNN with detectron2's parts.

``build_detectron2_maskrcnn(d2cfg)`` assembles torchvision's ``GeneralizedRCNN`` from our
detectron2-convention modules (:mod:`.transform`, :mod:`.backbone`, :mod:`.rpn`,
:mod:`.roi_heads`) and torchvision's heads, so training, ``state_dict`` and the member's
prediction code work unchanged, while inference follows detectron2's ``DefaultPredictor``
step by step. ``d2cfg`` is the honoured part of a detectron2 config (:func:`.config.model_config`),
kept in a run's ``config.yaml`` as ``model.detectron2``.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead

from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.detectron2.backbone import resnet_fpn_backbone
from ensemblab.projects.sartorius_cells.detectron2.config import broadcast_levels, value
from ensemblab.projects.sartorius_cells.detectron2.masks import paste_crops, paste_regions
from ensemblab.projects.sartorius_cells.detectron2.roi_heads import (
    Detectron2RoIHeads,
    LevelROIAlign,
)
from ensemblab.projects.sartorius_cells.detectron2.rpn import (
    Detectron2AnchorGenerator,
    Detectron2RPN,
)
from ensemblab.projects.sartorius_cells.detectron2.transform import (
    Detectron2Transform,
    scale_boxes,
)
from ensemblab.projects.sartorius_cells.structures import Instances


def build_detectron2_maskrcnn(d2cfg: dict, num_classes: int | None = None) -> GeneralizedRCNN:
    """A randomly initialised Mask R-CNN that computes what detectron2 computes.

    Args:
        d2cfg: nested honoured detectron2 keys (``MODEL``, ``INPUT``, ``TEST``); absent keys
            take detectron2's defaults.
        num_classes: object classes K without background (default
            ``MODEL.ROI_HEADS.NUM_CLASSES``); our heads have K + 1 outputs, background first.

    Returns:
        torchvision ``GeneralizedRCNN`` (the class ``MaskRCNN`` is built on); in eval mode
        ``model([x])`` with ``x [3, H, W]`` RGB in [0, 1] returns detectron2's instances
        (boxes in input pixels, labels 1..K, masks ``[N, 1, H, W]`` pasted probabilities).
    """
    def get(key):
        return value(d2cfg, key)

    k = int(num_classes if num_classes is not None else get("MODEL.ROI_HEADS.NUM_CLASSES"))
    if k < 1:
        raise ConfigError(f"detectron2 model: {k} classes (needs at least 1)")
    fpn = int(get("MODEL.FPN.OUT_CHANNELS"))
    backbone = resnet_fpn_backbone(
        depth=int(get("MODEL.RESNETS.DEPTH")), num_groups=int(get("MODEL.RESNETS.NUM_GROUPS")),
        width_per_group=int(get("MODEL.RESNETS.WIDTH_PER_GROUP")),
        stride_in_1x1=bool(get("MODEL.RESNETS.STRIDE_IN_1X1")), out_channels=fpn,
        freeze_at=int(get("MODEL.BACKBONE.FREEZE_AT")))
    sizes = broadcast_levels(get("MODEL.ANCHOR_GENERATOR.SIZES"), 5,
                             "MODEL.ANCHOR_GENERATOR.SIZES")
    ratios = broadcast_levels(get("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS"), 5,
                              "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS")
    anchors = Detectron2AnchorGenerator(sizes, ratios,
                                        offset=float(get("MODEL.ANCHOR_GENERATOR.OFFSET")))
    per_location = set(anchors.num_anchors_per_location())
    if len(per_location) != 1:
        raise ConfigError("MODEL.ANCHOR_GENERATOR: every level needs as many anchors")
    bg_iou, fg_iou = get("MODEL.RPN.IOU_THRESHOLDS")
    rpn = Detectron2RPN(
        min_size=float(get("MODEL.PROPOSAL_GENERATOR.MIN_SIZE")),
        bbox_reg_weights=get("MODEL.RPN.BBOX_REG_WEIGHTS"), anchor_generator=anchors,
        head=RPNHead(fpn, per_location.pop()), fg_iou_thresh=fg_iou, bg_iou_thresh=bg_iou,
        batch_size_per_image=int(get("MODEL.RPN.BATCH_SIZE_PER_IMAGE")),
        positive_fraction=float(get("MODEL.RPN.POSITIVE_FRACTION")),
        pre_nms_top_n={"training": int(get("MODEL.RPN.PRE_NMS_TOPK_TRAIN")),
                       "testing": int(get("MODEL.RPN.PRE_NMS_TOPK_TEST"))},
        post_nms_top_n={"training": int(get("MODEL.RPN.POST_NMS_TOPK_TRAIN")),
                        "testing": int(get("MODEL.RPN.POST_NMS_TOPK_TEST"))},
        nms_thresh=float(get("MODEL.RPN.NMS_THRESH")))
    box_res, mask_res = (int(get(f"MODEL.{h}.POOLER_RESOLUTION"))
                         for h in ("ROI_BOX_HEAD", "ROI_MASK_HEAD"))
    fc_dim = int(get("MODEL.ROI_BOX_HEAD.FC_DIM"))
    mask_dim = int(get("MODEL.ROI_MASK_HEAD.CONV_DIM"))
    mask_convs = int(get("MODEL.ROI_MASK_HEAD.NUM_CONV"))
    iou = float(get("MODEL.ROI_HEADS.IOU_THRESHOLDS")[0])
    heads = Detectron2RoIHeads(
        box_roi_pool=_pooler(d2cfg, "ROI_BOX_HEAD"),
        box_head=TwoMLPHead(fpn * box_res**2, fc_dim),
        box_predictor=FastRCNNPredictor(fc_dim, k + 1), fg_iou_thresh=iou, bg_iou_thresh=iou,
        batch_size_per_image=int(get("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE")),
        positive_fraction=float(get("MODEL.ROI_HEADS.POSITIVE_FRACTION")),
        bbox_reg_weights=tuple(float(w) for w in get("MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS")),
        score_thresh=float(get("MODEL.ROI_HEADS.SCORE_THRESH_TEST")),
        nms_thresh=float(get("MODEL.ROI_HEADS.NMS_THRESH_TEST")),
        detections_per_img=int(get("TEST.DETECTIONS_PER_IMAGE")),
        mask_roi_pool=_pooler(d2cfg, "ROI_MASK_HEAD"),
        mask_head=MaskRCNNHeads(fpn, [mask_dim] * mask_convs, 1),
        mask_predictor=MaskRCNNPredictor(mask_dim if mask_convs else fpn, mask_dim, k + 1))
    if mask_res != 14:  # torchvision's mask loss and detectron2's predictor assume 28x28 masks
        raise ConfigError(f"MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION {mask_res}: only 14")
    # detectron2's initialisation of the class layers (what fine-tuning re-initialises)
    for layer, std in ((heads.box_predictor.cls_score, 0.01),
                       (heads.box_predictor.bbox_pred, 0.001),
                       (heads.mask_predictor.mask_fcn_logits, 0.001)):
        torch.nn.init.normal_(layer.weight, std=std)
        torch.nn.init.zeros_(layer.bias)
    transform = Detectron2Transform(
        get("MODEL.PIXEL_MEAN"), get("MODEL.PIXEL_STD"), get("INPUT.FORMAT"),
        get("INPUT.MIN_SIZE_TEST"), get("INPUT.MAX_SIZE_TEST"), get("INPUT.MIN_SIZE_TRAIN"),
        get("INPUT.MAX_SIZE_TRAIN"))
    return GeneralizedRCNN(backbone, rpn, heads, transform)


def _pooler(d2cfg: dict, head: str) -> LevelROIAlign:
    return LevelROIAlign(int(value(d2cfg, f"MODEL.{head}.POOLER_RESOLUTION")),
                         int(value(d2cfg, f"MODEL.{head}.POOLER_SAMPLING_RATIO")),
                         aligned=value(d2cfg, f"MODEL.{head}.POOLER_TYPE") == "ROIAlignV2")


def is_detectron2_model(model: torch.nn.Module) -> bool:
    """Whether ``model`` was built by :func:`build_detectron2_maskrcnn`."""
    return isinstance(getattr(model, "transform", None), Detectron2Transform)


def to_input(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W] gray or [H, W, 3] RGB -> float [3, H, W] RGB in [0, 1]."""
    x = torch.from_numpy(np.array(image, copy=True)).float().div_(255)
    return x[None].expand(3, -1, -1) if x.ndim == 2 else x.permute(2, 0, 1)


@torch.no_grad()
def predict_detectron2(model: GeneralizedRCNN, images: list[np.ndarray],
                       device: torch.device | str = "cpu", chunk: int = 200
                       ) -> list[Instances]:
    """detectron2 ``DefaultPredictor`` outputs of images, masks kept as crops.

    Args:
        model: from :func:`build_detectron2_maskrcnn`, weights loaded.
        images: uint8 [H, W] gray or [H, W, 3] RGB images of any size, one forward each.
        device: where to run (fp32; detectron2's reference is fp32).
        chunk: detections per mask-head call (bounds memory on dense images).

    Returns:
        Per image :class:`Instances` in original pixels: boxes clipped and non-empty,
        ``labels`` 1..K, ``masks[i]`` float32 probabilities over ``crop_boxes[i]``, the region
        detectron2 pastes into (``>= 0.5`` gives its binary mask exactly).
    """
    model.eval().to(device)
    heads = model.roi_heads
    out = []
    for image in images:
        batch, _ = model.transform([to_input(image).to(device)])
        features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        pool, heads.mask_roi_pool = heads.mask_roi_pool, None  # boxes first, masks by chunk
        try:
            det = heads(features, proposals, batch.image_sizes)[0][0]
        finally:
            heads.mask_roi_pool = pool
        probs = [mask_probabilities(model, features, det["boxes"][i:i + chunk],
                                    det["labels"][i:i + chunk], batch.image_sizes[0])
                 for i in range(0, len(det["boxes"]), chunk)]
        probs = torch.cat(probs) if probs else torch.zeros((0, 28, 28), device=device)
        h, w = image.shape[:2]
        boxes, keep = scale_boxes(det["boxes"], batch.image_sizes[0], (h, w))
        boxes, probs = boxes[keep].cpu(), probs[keep].cpu()
        regions = paste_regions(boxes, h, w)
        crops = [crop.numpy() for crop in paste_crops(probs, boxes, regions)]
        out.append(Instances(boxes.numpy().astype(np.float32),
                             det["scores"][keep].cpu().numpy().astype(np.float32),
                             det["labels"][keep].cpu().numpy().astype(np.int64), crops,
                             regions.numpy(), h, w))
    return out


def mask_probabilities(model: GeneralizedRCNN, features: dict[str, torch.Tensor],
                       boxes: torch.Tensor, labels: torch.Tensor, image_size: tuple[int, int]
                       ) -> torch.Tensor:
    """float [N, 28, 28] sigmoid of the mask logits of each box's label (detectron2's
    ``mask_rcnn_inference``)."""
    heads = model.roi_heads
    x = heads.mask_roi_pool(features, [boxes], [image_size])
    logits = heads.mask_predictor(heads.mask_head(x))
    return logits[torch.arange(len(boxes), device=logits.device), labels].sigmoid()
