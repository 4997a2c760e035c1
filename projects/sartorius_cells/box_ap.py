"""COCO box AP for the detector member (pycocotools, maxDets raised for dense cell images)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def coco_box_ap(gts: dict[str, np.ndarray], preds: dict[str, tuple[np.ndarray, np.ndarray]],
                max_dets: int = 3000) -> dict[str, float]:
    """Class-agnostic COCO box AP over images.

    Args:
        gts: image id -> float ``[N, 4]`` ground-truth boxes (x0, y0, x1, y1).
        preds: image id -> (float ``[M, 4]`` boxes, float ``[M]`` scores).
        max_dets: detections kept per image (COCO's default 100 is far too few for ~800 cells).

    Returns:
        ``{"AP": AP@[.50:.95], "AP50": AP@.50, "AP75": AP@.75}``; 0.0 when nothing is predicted.
    """
    images, anns, dets = [], [], []
    for k, (img_id, boxes) in enumerate(gts.items(), start=1):
        images.append({"id": k, "width": 1, "height": 1})
        for b in np.asarray(boxes, dtype=float).reshape(-1, 4):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": 1, "iscrowd": 0,
                         "bbox": [b[0], b[1], w, h], "area": w * h})
        p_boxes, p_scores = preds.get(img_id, (np.zeros((0, 4)), np.zeros(0)))
        for b, s in zip(np.asarray(p_boxes, dtype=float).reshape(-1, 4), p_scores):
            dets.append({"image_id": k, "category_id": 1, "score": float(s),
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    if not dets or not anns:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns,
                        "categories": [{"id": 1, "name": "cell"}]}
        coco.createIndex()
        res = coco.loadRes(dets)
        ev = COCOeval(coco, res, iouType="bbox")
        ev.params.maxDets = [1, 100, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(max(ev.stats[0], 0.0)), "AP50": float(max(ev.stats[1], 0.0)),
            "AP75": float(max(ev.stats[2], 0.0))}
