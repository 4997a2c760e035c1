"""Instance-mask fusion across models: cluster by IoU, then confidence-weighted pixel voting.

The high-precision Sartorius ensemble merges the instance masks of several models (YOLOX,
Mask R-CNN, UPerNet-derived instances) per image. Here:

1. All masks of all models are pooled and ranked by ``weight[model] * score``.
2. Clusters are grown greedily, as in weighted boxes fusion: the best unassigned mask seeds a
   cluster, and from every *other* model the unassigned mask with the highest IoU above
   ``iou_thr`` with the seed joins it (at most one mask per model). Pairwise IoUs come at once
   from a sparse matrix product (:func:`ensemblab.metrics.instance.mask_iou_pairs`); the loop
   runs over clusters (the output instances), with array work inside.
3. Each cluster is fused inside the bounding box of its members: a pixel belongs to the fused
   mask when the confidence-weighted share of members covering it is at least ``vote_thr``.
   The fused score is ``sum_k weight[model_k] * score_k / sum_m weight[m]``, so an instance
   found by fewer models gets a lower confidence (WBF's ``avg`` rule); clusters backed by fewer
   than ``min_votes`` models are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ensemblab.metrics.instance import mask_iou_pairs
from ensemblab.metrics.semantic import as_numpy


def _boxes(masks: np.ndarray) -> np.ndarray:
    """``int[N, 4]`` ``(y0, y1, x0, x1)`` bounding boxes (half-open) of ``bool[N, H, W]``."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    h, w = masks.shape[1:]
    return np.stack([rows.argmax(1), h - rows[:, ::-1].argmax(1),
                     cols.argmax(1), w - cols[:, ::-1].argmax(1)], axis=1)


def fuse_instance_masks(
    masks_list: Sequence[Any],
    scores_list: Sequence[Any],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.5,
    vote_thr: float = 0.5,
    min_votes: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse the instance masks predicted by ``M`` models for one image.

    Args:
        masks_list: per model ``bool[N_m, H, W]``.
        scores_list: per model ``[N_m]`` confidences.
        weights: ``[M]`` model weights (default equal).
        iou_thr: IoU with the cluster seed above which a mask joins the cluster.
        vote_thr: weighted share of cluster members needed to keep a pixel.
        min_votes: clusters with masks from fewer models are dropped.

    Returns:
        ``(masks bool[K, H, W], scores [K])``, sorted by decreasing fused score.
    """
    m = len(masks_list)
    if m == 0 or len(scores_list) != m:
        raise ValueError(f"{m} mask sets but {len(scores_list)} score sets")
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (m,) or (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"need {m} non-negative weights with a positive sum, got {weights}")
    masks = [as_numpy(x).astype(bool, copy=False) for x in masks_list]
    shape = masks[0].shape[1:]
    pooled = np.concatenate([x.reshape(-1, *shape) for x in masks])
    scores = np.concatenate([as_numpy(s).reshape(-1).astype(np.float64) for s in scores_list])
    model = np.repeat(np.arange(m), [len(x) for x in masks])
    if len(scores) != len(pooled):
        raise ValueError(f"{len(pooled)} masks but {len(scores)} scores")
    n = len(pooled)
    if n == 0:
        return np.zeros((0, *shape), dtype=bool), np.zeros(0)
    conf = w[model] * scores
    rows, cols, iou = mask_iou_pairs(pooled, pooled, min_iou=iou_thr)
    other = model[rows] != model[cols]
    graph = sp.csr_matrix((iou[other], (rows[other], cols[other])), shape=(n, n))
    boxes = _boxes(pooled)
    free = np.ones(n, dtype=bool)
    fused_masks, fused_scores = [], []
    for seed in np.argsort(-conf, kind="stable"):
        if not free[seed]:
            continue
        nb = graph.indices[graph.indptr[seed]:graph.indptr[seed + 1]]
        nb_iou = graph.data[graph.indptr[seed]:graph.indptr[seed + 1]]
        keep = free[nb]
        nb, nb_iou = nb[keep], nb_iou[keep]
        # best-IoU neighbour per other model: sort by (model, -IoU), take each model's first
        order = np.lexsort((-nb_iou, model[nb]))
        nb = nb[order]
        first = np.ones(nb.size, dtype=bool)
        first[1:] = model[nb[1:]] != model[nb[:-1]]
        members = np.concatenate([[seed], nb[first]])
        free[members] = False
        if members.size < min_votes:
            continue
        y0, x0 = boxes[members, 0].min(), boxes[members, 2].min()
        y1, x1 = boxes[members, 1].max(), boxes[members, 3].max()
        crop = pooled[members, y0:y1, x0:x1]
        votes = conf[members] if conf[members].sum() > 0 else np.ones(members.size)
        share = np.tensordot(votes, crop, axes=1) / votes.sum()
        fused = np.zeros(shape, dtype=bool)
        fused[y0:y1, x0:x1] = share >= vote_thr
        if fused.any():
            fused_masks.append(fused)
            fused_scores.append(conf[members].sum() / w.sum())
    if not fused_masks:
        return np.zeros((0, *shape), dtype=bool), np.zeros(0)
    order = np.argsort(-np.asarray(fused_scores), kind="stable")
    return np.stack(fused_masks)[order], np.asarray(fused_scores)[order]
