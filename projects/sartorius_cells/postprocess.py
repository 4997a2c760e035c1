"""Instance post-processing for the Sartorius submission rules.

The competition scores non-overlapping instance masks, so raw detector output (overlapping
boxes, soft masks) goes through, per cell type: a score threshold, box NMS, a mask threshold,
then one greedy pass in score order that does mask NMS, overlap removal (the higher-scoring
instance keeps contested pixels; an instance that loses more than ``overlap_drop_frac`` of its
area is dropped) and a minimum area. This is the "Mask R-CNN + NMS" set-up of the paper
(Table 2, set-up 1) with the public-notebook refinements the paper builds on.

:func:`tune_params` fits these thresholds per cell type on validation images (coordinate
search of the Kaggle score).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torchvision.ops import nms

from ensemblab.errors import ConfigError
from ensemblab.metrics.instance import kaggle_score
from ensemblab.projects.sartorius_cells.structures import Instances, instances_to_idmap

SEARCH_ORDER = ("score_thresh", "mask_thresh", "nms_iou", "overlap_drop_frac", "min_area")


@dataclass
class PostprocessParams:
    """Post-processing thresholds of one cell type (saved in ``RUN/postprocess.json``).

    Attributes:
        score_thresh: drop detections scoring below this.
        nms_iou: box NMS IoU threshold (class-agnostic: one image holds one cell type).
        mask_thresh: mask probability threshold.
        mask_nms_iou: drop an instance whose mask IoU with a kept one exceeds this.
        overlap_drop_frac: drop an instance that loses more than this fraction of its pixels
            to higher-scoring instances.
        min_area: drop instances with fewer pixels than this (after overlap removal).
    """

    score_thresh: float = 0.5
    nms_iou: float = 0.5
    mask_thresh: float = 0.5
    mask_nms_iou: float = 0.6
    overlap_drop_frac: float = 0.5
    min_area: int = 8

    @classmethod
    def from_dict(cls, values: dict, source: str = "postprocess") -> PostprocessParams:
        """Build from a dict; an unknown key is a ConfigError naming it and the valid ones."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=2)
            hint = f"closest: {', '.join(close)}" if close else f"valid: {', '.join(names)}"
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} ({hint})")
        return cls(**values)

    @classmethod
    def from_config(cls, pcfg: dict) -> PostprocessParams:
        """From a config's ``postprocess`` section (its ``search`` grids left out)."""
        return cls.from_dict({k: v for k, v in pcfg.items() if k != "search"})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ParamsByType:
    """Per-cell-type parameters with a default for unknown types."""

    default: PostprocessParams = field(default_factory=PostprocessParams)
    per_type: dict[str, PostprocessParams] = field(default_factory=dict)

    def get(self, cell_type: str | None) -> PostprocessParams:
        return self.per_type.get(cell_type, self.default) if cell_type else self.default

    def to_dict(self) -> dict:
        return {"default": self.default.to_dict(),
                "per_type": {k: v.to_dict() for k, v in self.per_type.items()}}

    @classmethod
    def from_dict(cls, values: dict) -> ParamsByType:
        return cls(PostprocessParams.from_dict(values.get("default", {})),
                   {k: PostprocessParams.from_dict(v)
                    for k, v in values.get("per_type", {}).items()})


def image_cell_type(inst: Instances, class_names: list[str]) -> str | None:
    """The image's cell type: the label with the largest summed score (None when empty).

    A test image holds one cell type, so a vote over its detections picks the type whose
    thresholds apply to the whole image.
    """
    if len(inst) == 0:
        return None
    totals = np.bincount(inst.labels, weights=inst.scores, minlength=len(class_names) + 1)
    return class_names[int(np.argmax(totals[1:]))]


def remove_overlaps(inst: Instances, drop_frac: float = 0.5, min_area: int = 0,
                    mask_nms_iou: float | None = None) -> Instances:
    """Greedy, in score order: mask NMS, then the higher score keeps contested pixels.

    Args:
        inst: instances with bool crops (may overlap).
        drop_frac: drop an instance that loses more than this fraction of its area.
        min_area: drop an instance left with fewer pixels than this.
        mask_nms_iou: also drop an instance whose mask IoU with a kept one exceeds this.

    Returns:
        Non-overlapping instances sorted by descending score; crops shrink to the pixels each
        instance keeps (boxes unchanged).
    """
    idmap = np.zeros((inst.height, inst.width), np.int32)
    kept_area = [0]
    keep, crops = [], []
    for i in np.argsort(-inst.scores, kind="stable"):
        x0, y0, x1, y1 = inst.crop_boxes[i]
        crop = inst.masks[i]
        area = int(crop.sum())
        if area == 0:
            continue
        region = idmap[y0:y1, x0:x1]
        taken = region[crop]
        if mask_nms_iou is not None and taken.any():
            inter = np.bincount(taken[taken > 0])
            ids = np.flatnonzero(inter)
            iou = inter[ids] / (area + np.asarray(kept_area)[ids] - inter[ids])
            if iou.max() > mask_nms_iou:
                continue
        free = crop & (region == 0)
        n_free = int(free.sum())
        if n_free < max(min_area, 1) or n_free < (1.0 - drop_frac) * area:
            continue
        region[free] = len(keep) + 1
        kept_area.append(n_free)
        keep.append(int(i))
        crops.append(free)
    out = inst.select(keep)
    out.masks = crops
    return out


def postprocess(inst: Instances, params: PostprocessParams) -> Instances:
    """Score threshold, box NMS, mask threshold, mask NMS + overlap removal, minimum area.

    Args:
        inst: raw detections with probability (or bool) crops.
        params: the image's cell-type parameters.

    Returns:
        Non-overlapping instances with bool crops, sorted by descending score.
    """
    inst = inst.select(np.flatnonzero(inst.scores >= params.score_thresh))
    if len(inst) == 0:
        return inst
    order = nms(torch.from_numpy(inst.boxes.astype(np.float32)),
                torch.from_numpy(inst.scores.astype(np.float32)), params.nms_iou)
    inst = inst.select(order.numpy())
    inst.masks = [m if m.dtype == bool else m >= params.mask_thresh for m in inst.masks]
    return remove_overlaps(inst, params.overlap_drop_frac, params.min_area, params.mask_nms_iou)


def _mean_score(raws: list[Instances], gts: list[np.ndarray], params: PostprocessParams) -> float:
    return float(np.mean([kaggle_score(instances_to_idmap(postprocess(r, params)), g)
                          for r, g in zip(raws, gts)]))


def tune_params(raws: list[Instances], gts: list[np.ndarray], types: list[str],
                grid: dict[str, list], start: PostprocessParams) -> ParamsByType:
    """Per cell type, coordinate search of the post-processing thresholds.

    One pass over ``SEARCH_ORDER``: each parameter takes the grid value with the best mean
    Kaggle score on that type's validation images, the others held at their current values.

    Args:
        raws: raw detections of the validation images.
        gts: their true id maps int[H, W].
        types: their true cell types.
        grid: candidate values per parameter name.
        start: the starting (and default) parameters.
    """
    out = ParamsByType(start)
    for cell_type in sorted(set(types)):
        idx = [i for i, t in enumerate(types) if t == cell_type]
        r, g = [raws[i] for i in idx], [gts[i] for i in idx]
        best = PostprocessParams.from_dict(start.to_dict())
        best_score = _mean_score(r, g, best)
        for name in SEARCH_ORDER:
            for value in grid.get(name, []):
                trial = PostprocessParams.from_dict({**best.to_dict(), name: value})
                score = _mean_score(r, g, trial)
                if score > best_score + 1e-9:
                    best, best_score = trial, score
        out.per_type[cell_type] = best
    return out
