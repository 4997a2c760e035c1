"""detectron2's ROI pooling and detection rule on torchvision's ``RoIHeads``.

torchvision's heads (``TwoMLPHead``, ``FastRCNNPredictor``, ``MaskRCNNHeads``,
``MaskRCNNPredictor``) have detectron2's layers; our state dict keeps torchvision's class
layout (background at index 0, one box and one mask slot for it), which the checkpoint mapping
converts to detectron2's (background last, no background box or mask slot). Reproduced here:

- ``ROIAlignV2`` pooling: ``roi_align(aligned=True)`` with adaptive sampling, each box on level
  ``clamp(floor(4 + log2(sqrt(area) / 224 + 1e-8)), 2, 5)`` (torchvision: ``aligned=False``,
  sampling 2, eps 1e-6 outside the log);
- the detection rule of ``fast_rcnn_inference_single_image``: finite rows only, scores strictly
  above the threshold, per-class NMS, top-k, no minimum box size (torchvision drops boxes
  under 0.01 px).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops
from torchvision.ops import roi_align

CANONICAL_BOX_SIZE, CANONICAL_LEVEL = 224, 4


class LevelROIAlign(nn.Module):
    """Multi-level ROIAlign of detectron2's ``ROIPooler`` over FPN maps P2-P5.

    Args:
        output_size: pooled side (7 for boxes, 14 for masks).
        sampling_ratio: bilinear samples per bin side; 0 = adaptive (ceil(bin size)).
        aligned: half-pixel box shift (``ROIAlignV2``); False is ``ROIAlign``.
        featmap_names: feature keys of levels 2..5 in torchvision's FPN output.
    """

    def __init__(self, output_size: int, sampling_ratio: int = 0, aligned: bool = True,
                 featmap_names: tuple[str, ...] = ("0", "1", "2", "3")):
        super().__init__()
        self.output_size, self.sampling_ratio = int(output_size), int(sampling_ratio)
        self.aligned, self.featmap_names = bool(aligned), tuple(featmap_names)
        self.min_level = 2

    def assign_levels(self, boxes: torch.Tensor) -> torch.Tensor:
        """int64 [R] level (0 = P2) of boxes [R, 4], detectron2's ``assign_boxes_to_levels``."""
        sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        levels = torch.floor(CANONICAL_LEVEL + torch.log2(sizes / CANONICAL_BOX_SIZE + 1e-8))
        max_level = self.min_level + len(self.featmap_names) - 1
        return torch.clamp(levels, min=self.min_level, max=max_level).to(torch.int64) - 2

    def forward(self, features: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                image_shapes: list[tuple[int, int]] | None = None) -> torch.Tensor:
        """Pool boxes (per image, [R_i, 4] in input pixels) -> [sum R_i, C, S, S]."""
        maps = [features[name] for name in self.featmap_names]
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1)
                          for i, b in enumerate(boxes)])
        levels = self.assign_levels(rois[:, 1:])
        out = maps[0].new_zeros((len(rois), maps[0].shape[1], self.output_size,
                                 self.output_size))
        for level, feature in enumerate(maps):
            inds = torch.nonzero(levels == level, as_tuple=True)[0]
            pooled = roi_align(feature, rois[inds].to(feature.dtype), self.output_size,
                               spatial_scale=1.0 / 2 ** (level + self.min_level),
                               sampling_ratio=self.sampling_ratio, aligned=self.aligned)
            out.index_put_((inds,), pooled.to(out.dtype))
        return out


class Detectron2RoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` (training unchanged) with detectron2's detection rule."""

    def postprocess_detections(self, class_logits: torch.Tensor, box_regression: torch.Tensor,
                               proposals: list[torch.Tensor],
                               image_shapes: list[tuple[int, int]]):
        """Per image boxes [N, 4], scores [N], labels [N] (1-based) in descending score.

        Args:
            class_logits: [R, K + 1], column 0 background.
            box_regression: [R, 4 (K + 1)] deltas, decoded with ``BBOX_REG_WEIGHTS``.
            proposals: per image [R_i, 4].
            image_shapes: resized image sizes (clipping bounds).
        """
        counts = [len(p) for p in proposals]
        pred_boxes = self.box_coder.decode(box_regression, proposals).split(counts)
        pred_scores = F.softmax(class_logits, -1).split(counts)
        all_boxes, all_scores, all_labels = [], [], []
        for boxes, scores, shape in zip(pred_boxes, pred_scores, image_shapes):
            valid = torch.isfinite(boxes).all(dim=(1, 2)) & torch.isfinite(scores).all(dim=1)
            boxes = box_ops.clip_boxes_to_image(boxes[valid][:, 1:], shape)
            scores = scores[valid][:, 1:]
            keep_mask = scores > self.score_thresh
            classes = keep_mask.nonzero()[:, 1]
            boxes, scores = boxes[keep_mask], scores[keep_mask]
            # detectron2's class indices (0-based) as NMS groups: same offsets, same rounding
            keep = box_ops.batched_nms(boxes.float(), scores, classes, self.nms_thresh)
            keep = keep[: self.detections_per_img]
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
            all_labels.append(classes[keep] + 1)
        return all_boxes, all_scores, all_labels
