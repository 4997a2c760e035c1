"""detectron2's anchors and proposal selection on torchvision's RPN.

torchvision's ``RegionProposalNetwork`` has detectron2's head, anchor order (H, W, A), box
coder and losses. What differs is reproduced here: cell anchors are not rounded and list the
sizes before the aspect ratios; anchor centres sit at ``(x + OFFSET) * stride`` with the fixed
level strides (torchvision derives strides from the padded size, which is wrong for odd P5
maps); and proposals are chosen as ``find_top_rpn_proposals`` does (per-level top-k on the
logits, clip, drop empty boxes, per-level NMS, global top-k, logits kept as scores).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import boxes as box_ops

LEVEL_STRIDES = (4, 8, 16, 32, 64)


def cell_anchors(sizes: list[float], aspect_ratios: list[float]) -> torch.Tensor:
    """Anchors [len(sizes) * len(aspect_ratios), 4] centred on 0 (detectron2's
    ``DefaultAnchorGenerator.generate_cell_anchors``: w = sqrt(size^2 / ratio), h = ratio * w,
    no rounding, sizes outer, ratios inner)."""
    anchors = []
    for size in sizes:
        for ratio in aspect_ratios:
            w = math.sqrt(size**2.0 / ratio)
            h = ratio * w
            anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors)


class Detectron2AnchorGenerator(nn.Module):
    """Anchors of every FPN level, detectron2's ``DefaultAnchorGenerator``.

    Args:
        sizes: per level, the anchor sizes (side of the square of equal area), in pixels.
        aspect_ratios: per level, the height / width ratios.
        strides: per level, the feature stride.
        offset: anchor centre offset in strides (``MODEL.ANCHOR_GENERATOR.OFFSET``).
    """

    def __init__(self, sizes: list[list[float]], aspect_ratios: list[list[float]],
                 strides: tuple[int, ...] = LEVEL_STRIDES, offset: float = 0.0):
        super().__init__()
        self.strides, self.offset = tuple(strides), float(offset)
        for i, (s, r) in enumerate(zip(sizes, aspect_ratios)):
            self.register_buffer(f"cell_anchors_{i}", cell_anchors(s, r), persistent=False)
        self.num_levels = len(sizes)

    def num_anchors_per_location(self) -> list[int]:
        """Anchors per position on each level."""
        return [len(getattr(self, f"cell_anchors_{i}")) for i in range(self.num_levels)]

    def level_anchors(self, grid_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Per level, anchors [H * W * A, 4] (XYXY, flattened in (H, W, A) order)."""
        out = []
        for i, ((h, w), stride) in enumerate(zip(grid_sizes, self.strides)):
            base = getattr(self, f"cell_anchors_{i}")
            shifts_x = torch.arange(self.offset * stride, w * stride, step=stride,
                                    dtype=torch.float32, device=base.device)
            shifts_y = torch.arange(self.offset * stride, h * stride, step=stride,
                                    dtype=torch.float32, device=base.device)
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            out.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
        return out

    def forward(self, image_list: ImageList, feature_maps: list[torch.Tensor]
                ) -> list[torch.Tensor]:
        """torchvision's interface: per image, all levels' anchors concatenated [A_total, 4]."""
        anchors = torch.cat(self.level_anchors([tuple(f.shape[-2:]) for f in feature_maps]))
        return [anchors for _ in range(len(image_list.image_sizes))]


class Detectron2RPN(RegionProposalNetwork):
    """torchvision's RPN (same head, anchors, losses) choosing proposals as detectron2.

    Args:
        min_size: proposals must be wider and taller than this (``PROPOSAL_GENERATOR.MIN_SIZE``).
        bbox_reg_weights: ``MODEL.RPN.BBOX_REG_WEIGHTS``.
        kwargs: ``RegionProposalNetwork`` arguments (``pre_nms_top_n`` is per level).

    In evaluation the returned scores are objectness logits, as detectron2 keeps them.
    """

    def __init__(self, min_size: float = 0.0,
                 bbox_reg_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.min_size = float(min_size)
        self.box_coder = BoxCoder(tuple(float(w) for w in bbox_reg_weights),
                                  bbox_xform_clip=math.log(1000.0 / 16))

    def filter_proposals(self, proposals: torch.Tensor, objectness: torch.Tensor,
                         image_shapes: list[tuple[int, int]], num_anchors_per_level: list[int]
                         ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image ``(boxes [R, 4], logits [R])`` in descending logit order.

        Args:
            proposals: [B, A_total, 4] decoded boxes of every anchor.
            objectness: [B * A_total, 1] logits.
            image_shapes: resized (unpadded) image sizes, the clipping bounds.
            num_anchors_per_level: anchors of each level.
        """
        num_images = proposals.shape[0]
        objectness = objectness.detach().reshape(num_images, -1)
        levels = torch.cat([torch.full((n,), i, dtype=torch.int64, device=proposals.device)
                            for i, n in enumerate(num_anchors_per_level)])
        top_idx = self._get_top_n_idx(objectness, num_anchors_per_level)
        rows = torch.arange(num_images, device=proposals.device)[:, None]
        objectness, proposals = objectness[rows, top_idx], proposals[rows, top_idx]
        levels = levels[top_idx]
        final_boxes, final_scores = [], []
        for boxes, scores, lvl, shape in zip(proposals, objectness, levels, image_shapes):
            valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
            boxes, scores, lvl = boxes[valid], scores[valid], lvl[valid]
            boxes = box_ops.clip_boxes_to_image(boxes, shape)
            keep = ((boxes[:, 2] - boxes[:, 0] > self.min_size)
                    & (boxes[:, 3] - boxes[:, 1] > self.min_size))
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = box_ops.batched_nms(boxes.float(), scores, lvl, self.nms_thresh)
            keep = keep[: self.post_nms_top_n()]
            final_boxes.append(boxes[keep])
            final_scores.append(scores[keep])
        return final_boxes, final_scores
