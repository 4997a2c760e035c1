"""Feature-level fusion of detectors and mask models: the paper's consensus vote.

Steps (the paper's set-up 3, in the form the winning Sartorius solutions used):

1. :func:`fuse_detections` — weighted box fusion (WBF, ``ensemblab.voting.fuse_boxes``) of all
   detector outputs (YOLOX, Mask R-CNN boxes, each test-time flip counted as one set).
2. :func:`instance_windows` — each fused box, grown by a small pad, is the *window* on which every
   mask model gives a probability crop (Mask R-CNN mask head, UPerNet box-crop, UPerNet full
   image), see :mod:`ensemblab.ensemble.crops`.
3. :func:`consensus_vote` — per pixel, the weighted mean of the models' probabilities, weights
   adapted to each model's validation score (``weights_from_scores``)::

       p(x) = sum_m w_m p_m(x) / sum_m w_m

4. :func:`rerank` — instance score = box score x mean probability over the instance's mask
   pixels; then per-cell-type score / mask thresholds, overlap removal and a minimum area
   (the project's post-processing).

Everything here works on arrays (no model code), so it is tested on hand-made cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np

from ensemblab.ensemble.crops import expand_boxes, integer_boxes
from ensemblab.voting import fuse_boxes


def fuse_detections(box_sets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    weights: Sequence[float], height: int, width: int, iou_thr: float = 0.55,
                    skip_box_thr: float = 0.0, conf_type: str = "avg"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted box fusion of several detectors' boxes on one image.

    Args:
        box_sets: per detector (or flip) ``(boxes float[N, 4] xyxy pixels, scores float[N],
            labels int[N])``.
        weights: one weight per set.
        height, width: image size (boxes are normalised for ensemble-boxes internally).
        iou_thr: boxes overlapping more than this (same label) are fused.
        skip_box_thr: boxes scoring below this are ignored.
        conf_type: the WBF score of a fused box (:data:`ensemblab.voting.boxes.CONF_TYPES`);
            with ``avg`` a box found by fewer sets than were given is down-weighted, so
            agreement raises its score.

    Returns:
        ``(boxes float32[M, 4], scores float32[M], labels int64[M])`` sorted by score.
    """
    sets = [s for s in box_sets if len(s[0])]
    used = [w for s, w in zip(box_sets, weights) if len(s[0])]
    if not sets:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes, scores, labels = fuse_boxes([s[0] for s in sets], [s[1] for s in sets],
                                       [s[2] for s in sets], weights=list(used), iou_thr=iou_thr,
                                       skip_box_thr=skip_box_thr, method="wbf",
                                       image_size=(height, width), conf_type=conf_type)
    boxes, scores, labels = (np.asarray(boxes, np.float32).reshape(-1, 4),
                             np.asarray(scores, np.float32).reshape(-1),
                             np.asarray(labels).astype(np.int64).reshape(-1))
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order], labels[order]


def instance_windows(boxes: np.ndarray, height: int, width: int, pad: float = 0.1
                     ) -> np.ndarray:
    """Integer windows (fused boxes grown by ``pad`` of their size per side, >= 1 px).

    Returns:
        int64 ``[N, 4]`` (x0, y0, x1, y1), clipped to the image.
    """
    return integer_boxes(expand_boxes(boxes, pad, 1.0), height, width)


def consensus_vote(sources: Sequence[Sequence[np.ndarray]], weights: Sequence[float]
                   ) -> list[np.ndarray]:
    """Weighted mean of the models' probability crops, instance by instance.

    Args:
        sources: per model, N float crops, crop ``i`` on window ``i`` (same shape across models).
        weights: one non-negative weight per model (normalised here; zero drops a model).

    Returns:
        N float32 crops ``sum_m w_m p_m / sum_m w_m``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if len(sources) != len(w) or not len(w) or w.sum() <= 0:
        raise ValueError("consensus_vote needs one positive-sum weight per source")
    w = w / w.sum()
    n = len(sources[0])
    out = []
    for i in range(n):
        acc = np.zeros_like(sources[0][i], dtype=np.float32)
        for src, wm in zip(sources, w):
            if wm > 0:
                acc += np.float32(wm) * src[i]
        out.append(acc)
    return out


def rerank(box_scores: np.ndarray, probs: Sequence[np.ndarray], mask_thresh: float
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Instance score = box score x mean mask probability over the thresholded mask.

    Args:
        box_scores: float ``[N]`` fused box confidences.
        probs: N probability crops.
        mask_thresh: pixels with probability >= this form the mask.

    Returns:
        ``(scores float32[N], masks list of bool crops)``; an empty mask scores 0.
    """
    scores = np.zeros(len(probs), np.float32)
    masks = []
    for i, p in enumerate(probs):
        m = p >= mask_thresh
        masks.append(m)
        if m.any():
            scores[i] = box_scores[i] * float(p[m].mean())
    return scores, masks


def grid_search(evaluate, grid: dict[str, Sequence]) -> tuple[dict, float]:
    """Exhaustive search: the parameter combination with the highest ``evaluate(params)``.

    Args:
        evaluate: ``params dict -> score`` (e.g. the Kaggle score on the validation fold).
        grid: parameter name -> candidate values.

    Returns:
        ``(best params, best score)``; ties keep the first combination in grid order.
    """
    names = list(grid)
    best, best_score = {}, -np.inf
    for values in product(*(grid[n] for n in names)):
        params = dict(zip(names, values))
        score = float(evaluate(params))
        if score > best_score:
            best, best_score = params, score
    return best, best_score
