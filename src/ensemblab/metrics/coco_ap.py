"""COCO mask AP through pycocotools, with ``maxDets`` raised for dense images.

``COCOeval.summarize()`` reads its table at hard-coded positions of ``params.maxDets``
(``AP`` at the last entry, but ``AP50``/``AP75`` at ``maxDets=100``), so with ~800 cells an
image it would silently cap two of the three numbers at 100 detections. Here the summary is
read from ``COCOeval.eval["precision"]`` (shape ``[T, R, K, A, M]``: IoU thresholds, recall
points, categories, area ranges, maxDets) at the raised ``maxDets`` and area range ``all``,
averaging the entries that are not ``-1`` exactly as ``summarize()`` does.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ensemblab.metrics.evaluators import Evaluator, all_gather_objects
from ensemblab.metrics.semantic import as_numpy


def encode_masks(masks: Any) -> list[dict]:
    """COCO RLEs (``counts`` as ``str``) of masks ``bool[N, H, W]`` (or ``[]``: no masks)."""
    if isinstance(masks, (list, tuple)) and len(masks) == 0:
        return []
    masks = as_numpy(masks).astype(np.uint8)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _summary(coco_eval: COCOeval) -> dict[str, float]:
    """AP, AP50, AP75 and AR at the last ``maxDets``, area range ``all``."""
    params = coco_eval.params
    area = params.areaRngLbl.index("all")
    precision = coco_eval.eval["precision"][:, :, :, area, -1]  # [T, R, K]
    recall = coco_eval.eval["recall"][:, :, area, -1]  # [T, K]

    def mean_valid(values: np.ndarray) -> float:
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    def at_iou(thr: float) -> np.ndarray:
        return precision[np.flatnonzero(np.isclose(params.iouThrs, thr))]

    return {"AP": mean_valid(precision), "AP50": mean_valid(at_iou(0.5)),
            "AP75": mean_valid(at_iou(0.75)), "AR": mean_valid(recall)}


def coco_ap_from_rles(
    gt_rles: Mapping[Any, list[dict]],
    dt_rles: Mapping[Any, tuple[list[dict], Any]],
    max_dets: int = 1000,
) -> dict[str, float]:
    """COCO segm AP of RLE-encoded instances (one category).

    Args:
        gt_rles: ``{image_id: [rle, ...]}`` ground truth; every evaluated image must be here.
        dt_rles: ``{image_id: ([rle, ...], scores[N])}`` detections.
        max_dets: detections kept per image (``params.maxDets = [1, 100, max_dets]``).

    Returns:
        ``{"AP", "AP50", "AP75", "AR"}`` in ``[0, 1]`` (``-1`` when there is no ground truth,
        as in pycocotools).
    """
    unknown = set(dt_rles) - set(gt_rles)
    if unknown:
        raise ValueError(f"detections for images without ground truth entry: {sorted(unknown)}")
    ids = {key: i + 1 for i, key in enumerate(gt_rles)}  # pycocotools wants int ids
    images, annotations = [], []
    for key, rles in gt_rles.items():
        height, width = rles[0]["size"] if rles else (1, 1)
        images.append({"id": ids[key], "height": height, "width": width})
        for rle in rles:
            annotations.append({
                "id": len(annotations) + 1, "image_id": ids[key], "category_id": 1,
                "segmentation": rle, "area": float(mask_utils.area(rle)),
                "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": 0})
    detections = []
    for key, (rles, scores) in dt_rles.items():
        scores = as_numpy(scores).reshape(-1)
        if len(rles) != scores.size:
            raise ValueError(f"image {key}: {len(rles)} masks but {scores.size} scores")
        detections += [{"image_id": ids[key], "category_id": 1, "segmentation": rle,
                        "score": float(s)} for rle, s in zip(rles, scores)]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations,
                           "categories": [{"id": 1, "name": "object"}]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections) if detections else COCO()
        coco_eval = COCOeval(coco_gt, coco_dt, "segm")
        coco_eval.params.maxDets = [1, 100, max_dets]
        coco_eval.evaluate()
        coco_eval.accumulate()
    return _summary(coco_eval)


def coco_mask_ap(
    gts: Mapping[Any, Any], preds: Mapping[Any, tuple[Any, Any]], max_dets: int = 1000
) -> dict[str, float]:
    """COCO mask AP (AP@[.50:.95], AP50, AP75, AR) with up to ``max_dets`` detections per image.

    Args:
        gts: ``{image_id: bool[N, H, W]}`` ground-truth masks.
        preds: ``{image_id: (bool[N, H, W], scores[N])}`` predicted masks and confidences.
        max_dets: detections per image that count (>= 1000 for dense cell images).
    """
    return coco_ap_from_rles(
        {k: encode_masks(m) for k, m in gts.items()},
        {k: (encode_masks(m), s) for k, (m, s) in preds.items()},
        max_dets=max_dets)


class CocoAPEvaluator(Evaluator):
    """Accumulates RLE-encoded instances; ``compute()`` gathers all ranks and runs COCOeval."""

    def __init__(self, max_dets: int = 1000) -> None:
        self.max_dets = max_dets
        super().__init__()

    def reset(self) -> None:
        self.gt: dict[Any, list[dict]] = {}
        self.dt: dict[Any, tuple[list[dict], np.ndarray]] = {}

    def update(self, image_id: Any, pred_masks: Any, scores: Any, gt_masks: Any) -> None:
        """Add one image: predictions ``bool[Np, H, W]``, ``scores[Np]``, truth ``[Ng, H, W]``."""
        self.gt[image_id] = encode_masks(gt_masks)
        self.dt[image_id] = (encode_masks(pred_masks), as_numpy(scores).reshape(-1))

    def compute(self) -> dict[str, float]:
        gt, dt = {}, {}
        for rank_gt, rank_dt in all_gather_objects((self.gt, self.dt)):
            for key in rank_gt:
                gt.setdefault(key, rank_gt[key])
                dt.setdefault(key, rank_dt[key])
        return coco_ap_from_rles(gt, dt, max_dets=self.max_dets)
