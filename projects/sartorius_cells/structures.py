"""Instances of one image and the conversions between masks, boxes, id maps and RLEs.

Every member that gives masks returns :class:`Instances`; post-processing, the ensemble and the
submission writer consume them. Masks are kept as crops on integer boxes
(``Instances.crop_boxes``) so that an image with 800+ cells never holds 800 full-size arrays;
the only full-size array is one int32 id map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensemblab.data.rle import instance_map_to_rles


@dataclass
class Instances:
    """Instances of one image with masks cropped to their integer boxes.

    Attributes:
        boxes: float32[N, 4] detector boxes (x0, y0, x1, y1), full-image pixels.
        scores: float32[N] confidences.
        labels: int64[N] 1-based class (cell type) indices.
        masks: N crops, ``masks[i]`` of shape ``[y1 - y0, x1 - x0]`` of ``crop_boxes[i]``;
            float probabilities before thresholding, bool after.
        crop_boxes: int64[N, 4] integer boxes (see ``ensemblab.ensemble.crops.integer_boxes``).
        height, width: image size.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: list[np.ndarray]
    crop_boxes: np.ndarray
    height: int
    width: int

    @classmethod
    def empty(cls, height: int, width: int) -> Instances:
        """No instances in an image of this size."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                   [], np.zeros((0, 4), np.int64), height, width)

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, idx) -> Instances:
        """The instances at integer indices ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        return Instances(self.boxes[idx], self.scores[idx], self.labels[idx],
                         [self.masks[i] for i in idx], self.crop_boxes[idx],
                         self.height, self.width)

    def full_mask(self, i: int, thresh: float = 0.5) -> np.ndarray:
        """bool[H, W] mask of instance ``i`` (thresholding a probability crop at ``thresh``)."""
        out = np.zeros((self.height, self.width), bool)
        x0, y0, x1, y1 = self.crop_boxes[i]
        crop = self.masks[i]
        out[y0:y1, x0:x1] = crop if crop.dtype == bool else crop >= thresh
        return out

    def full_masks(self, thresh: float = 0.5) -> np.ndarray:
        """bool[N, H, W]; for scoring small images only (memory grows with N)."""
        out = np.zeros((len(self), self.height, self.width), bool)
        for i in range(len(self)):
            out[i] = self.full_mask(i, thresh)
        return out


def instances_to_idmap(inst: Instances) -> np.ndarray:
    """int32[H, W] id map: instance ``i`` -> ``i + 1``; on overlap the earlier instance wins."""
    idmap = np.zeros((inst.height, inst.width), np.int32)
    for i in range(len(inst) - 1, -1, -1):
        x0, y0, x1, y1 = inst.crop_boxes[i]
        crop = inst.masks[i]
        crop = crop if crop.dtype == bool else crop >= 0.5
        idmap[y0:y1, x0:x1][crop] = i + 1
    return idmap


def instances_to_rles(inst: Instances) -> list[str]:
    """Kaggle RLEs of non-overlapping instances, in instance (score) order."""
    rles, _ = instance_map_to_rles(instances_to_idmap(inst))
    return rles


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes of instance masks.

    Args:
        masks: bool ``[N, H, W]``.

    Returns:
        float32 ``[N, 4]`` (x0, y0, x1, y1) with exclusive ends (empty masks give zero boxes).
    """
    n = masks.shape[0]
    out = np.zeros((n, 4), dtype=np.float32)
    rows = masks.any(axis=2)
    cols = masks.any(axis=1)
    for i in range(n):
        ys, xs = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if len(ys):
            out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out
