"""Scoring a member on a split: the Kaggle score, COCO mask AP and COCO box AP.

The Kaggle score (mean over images of the mean over IoU thresholds 0.50:0.05:0.95 of
TP/(TP+FP+FN)) is computed on full-resolution id maps of the post-processed predictions, per
image and per cell type; COCO mask AP (maxDets 1000) on the same instances, ranked by score;
COCO box AP (class-agnostic, maxDets 3000) for detectors.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ensemblab.data.rle import instance_map_to_rles, kaggle_to_coco_rle
from ensemblab.errors import EnsemblabError
from ensemblab.metrics.coco_ap import coco_ap_from_rles
from ensemblab.metrics.instance import KaggleScoreEvaluator
from ensemblab.projects.sartorius_cells.data import CellRecord
from ensemblab.projects.sartorius_cells.structures import Instances, instances_to_idmap


def score_instances(records: list[CellRecord], predict: Callable[[CellRecord], Instances]
                    ) -> dict:
    """Kaggle score (overall, per cell type), COCO mask AP (maxDets 1000), instance counts.

    Args:
        records: the images to score.
        predict: post-processed, non-overlapping instances of one record.
    """
    if not records:
        raise EnsemblabError("nothing to evaluate: the split holds no images")
    evaluator = KaggleScoreEvaluator()
    gt_rles, dt_rles = {}, {}
    n_pred = n_gt = 0
    start = time.perf_counter()
    for rec in records:
        pred = predict(rec)
        gt = rec.load_idmap()
        pred_map = instances_to_idmap(pred)
        evaluator.update(rec.image_id, pred_map, gt, group=rec.cell_type)
        shape = (rec.height, rec.width)
        g_rles, _ = instance_map_to_rles(gt)
        p_rles, p_ids = instance_map_to_rles(pred_map)
        gt_rles[rec.image_id] = [kaggle_to_coco_rle(r, shape) for r in g_rles]
        dt_rles[rec.image_id] = ([kaggle_to_coco_rle(r, shape) for r in p_rles],
                                 pred.scores[p_ids - 1])
        n_pred += len(p_rles)
        n_gt += len(g_rles)
    res = evaluator.compute()
    ap = coco_ap_from_rles(gt_rles, dt_rles, max_dets=1000)
    return {"kaggle_score": res["kaggle_score"], "per_cell_type": res["per_group"],
            "n_per_cell_type": res["n_per_group"], "n_images": res["n_images"],
            "coco_mask_ap": ap["AP"], "coco_mask_ap50": ap["AP50"],
            "coco_mask_ap75": ap["AP75"], "coco_mask_ar": ap["AR"],
            "n_predicted": n_pred, "n_true": n_gt,
            "seconds_per_image": (time.perf_counter() - start) / len(records)}


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
