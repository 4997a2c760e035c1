"""Instance-segmentation scores: mask IoU matrices and the Kaggle Sartorius score.

Kaggle "Sartorius - Cell Instance Segmentation" metric (competition evaluation page): for one
image and each IoU threshold ``t`` in ``0.50, 0.55, ..., 0.95`` a predicted object is a hit when
its IoU with a ground-truth object is *greater* than ``t``; the image scores the mean over ``t``
of ``TP(t) / (TP(t) + FP(t) + FN(t))``; the dataset score is the mean over images.

Conventions (documented choices, each tested):

- Matching is one-to-one. For ``t >= 0.5`` an object can have at most one partner with
  IoU > t when the masks of each set are disjoint (two partners would each cover more than half
  of it), so all candidate pairs are matches. When a set has overlapping masks a conflict can
  arise; it is resolved greedily by decreasing IoU. Greedy on pairs sorted by IoU gives, at each
  higher threshold, exactly the prefix of the matches at 0.5, so one matching serves all ``t``.
- An empty mask in a stack is no object (as an id absent from an id map): it is not counted.
- An image with neither ground truth nor predictions scores 1.0 (nothing to find, nothing
  wrongly found); ground truth without predictions, or predictions without ground truth,
  score 0.0. (The competition test set has cells in every image, so the case never arose there.)

Masks are given either as a stack ``bool[N, H, W]`` (overlaps allowed) or as an instance-id map
``int[H, W]`` (0 = background, each positive id one instance). Intersections come from a single
``np.bincount`` of ``id_a * K + id_b`` when both inputs are id maps, else from a sparse matrix
product ``A @ B.T`` of the masks flattened to CSR rows: no Python loop over pairs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import scipy.sparse as sp

from ensemblab.metrics.evaluators import Evaluator, all_gather_objects
from ensemblab.metrics.semantic import as_numpy

# Written out as decimals so that an IoU of exactly 0.6 (say) is not a hit at 0.6.
KAGGLE_THRESHOLDS = np.array([0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95])
# Above this many (id_a, id_b) bins, id maps are relabelled to consecutive ids first.
_MAX_JOINT_BINS = 1 << 24


def _is_id_map(x: np.ndarray) -> bool:
    return x.ndim == 2 and x.dtype != bool


def _check(x: Any, name: str) -> np.ndarray | None:
    """Masks as an array; None for an empty list (no objects, size taken from the other side)."""
    if isinstance(x, (list, tuple)) and len(x) == 0:
        return None
    x = as_numpy(x)
    if x.ndim == 3:
        return x.astype(bool, copy=False)
    if x.ndim == 2 and np.issubdtype(x.dtype, np.integer):
        if x.size and x.min() < 0:
            raise ValueError(f"{name}: instance ids must be >= 0")
        return x
    raise ValueError(f"{name}: expected masks bool[N, H, W] or an id map int[H, W], "
                     f"got shape {x.shape} dtype {x.dtype}")


def _compact_ids(idmap: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel an id map to ``0..K`` (ids in increasing order); returns ``(map, K)``."""
    ids, inverse = np.unique(idmap, return_inverse=True)
    if ids[0] != 0:  # no background pixel: shift so that label 0 stays "background"
        return (inverse + 1).reshape(idmap.shape), len(ids)
    return inverse.reshape(idmap.shape), len(ids) - 1


def _to_csr(x: np.ndarray) -> sp.csr_matrix:
    """Flatten masks ``bool[N, H, W]`` or an id map to a sparse ``[N, H*W]`` 0/1 matrix."""
    if _is_id_map(x):
        compact, k = _compact_ids(x)
        flat = compact.reshape(-1)
        pix = np.flatnonzero(flat)
        rows = flat[pix] - 1
        return sp.csr_matrix((np.ones(pix.size, np.int64), (rows, pix)), shape=(k, flat.size))
    n = x.shape[0]
    hw = x.shape[1] * x.shape[2]
    flat = np.flatnonzero(x)  # sorted, so rows are sorted and indptr is a searchsorted
    indptr = np.searchsorted(flat, np.arange(n + 1, dtype=np.int64) * hw)
    return sp.csr_matrix((np.ones(flat.size, np.int64), flat % hw, indptr), shape=(n, hw))


def _joint_histogram(a: np.ndarray, b: np.ndarray):
    """Intersections of two id maps from one ``np.bincount`` of ``id_a * (Kb + 1) + id_b``."""
    ka, kb = int(a.max(initial=0)), int(b.max(initial=0))
    if (ka + 1) * (kb + 1) > _MAX_JOINT_BINS:
        a, ka = _compact_ids(a)
        b, kb = _compact_ids(b)
    joint = a.reshape(-1).astype(np.int64) * (kb + 1) + b.reshape(-1)
    hist = np.bincount(joint, minlength=(ka + 1) * (kb + 1)).reshape(ka + 1, kb + 1)
    area_a, area_b = hist.sum(axis=1)[1:], hist.sum(axis=0)[1:]
    keep_a, keep_b = np.flatnonzero(area_a), np.flatnonzero(area_b)  # drop unused ids
    inter = hist[1:, 1:][np.ix_(keep_a, keep_b)]
    rows, cols = np.nonzero(inter)
    return rows, cols, inter[rows, cols], area_a[keep_a], area_b[keep_b]


def _pair_intersections(a: np.ndarray | None, b: np.ndarray | None):
    """Overlapping pairs as ``(rows, cols, intersection, area_a[Na], area_b[Nb])``."""
    if a is None or b is None:  # an empty list: no objects on that side
        size = (1, 1) if a is None and b is None else (a if b is None else b).shape[-2:]
        a = np.zeros((0, *size), bool) if a is None else a
        b = np.zeros((0, *size), bool) if b is None else b
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"mask sizes differ: {a.shape[-2:]} vs {b.shape[-2:]}")
    if _is_id_map(a) and _is_id_map(b):
        return _joint_histogram(a, b)
    ma, mb = _to_csr(a), _to_csr(b)
    inter = (ma @ mb.T).tocoo()
    area_a = np.asarray(ma.sum(axis=1)).reshape(-1)
    area_b = np.asarray(mb.sum(axis=1)).reshape(-1)
    return inter.row, inter.col, inter.data, area_a, area_b


def mask_iou_matrix(a: Any, b: Any) -> np.ndarray:
    """IoU of every mask of ``a`` with every mask of ``b``.

    Args:
        a: masks ``bool[Na, H, W]`` or an id map ``int[H, W]`` (rows = present ids ascending);
            an empty list stands for no masks.
        b: masks ``bool[Nb, H, W]`` or an id map, same ``H, W``; or an empty list.

    Returns:
        ``float64[Na, Nb]``; 0 where masks do not touch (and for empty masks).
    """
    rows, cols, inter, area_a, area_b = _pair_intersections(_check(a, "a"), _check(b, "b"))
    iou = np.zeros((area_a.size, area_b.size), dtype=np.float64)
    iou[rows, cols] = inter / (area_a[rows] + area_b[cols] - inter)
    return iou


def mask_iou_pairs(a: Any, b: Any, min_iou: float = 0.0):
    """Sparse IoU: the pairs of masks of ``a`` and ``b`` whose IoU exceeds ``min_iou``.

    Args:
        a: masks ``bool[Na, H, W]`` or an id map ``int[H, W]``.
        b: masks ``bool[Nb, H, W]`` or an id map, same ``H, W``.
        min_iou: keep pairs with IoU strictly above this (0 keeps every touching pair).

    Returns:
        ``(rows, cols, iou)``: indices into ``a`` and ``b`` and the IoU of each kept pair.
    """
    rows, cols, inter, area_a, area_b = _pair_intersections(_check(a, "a"), _check(b, "b"))
    iou = inter / (area_a[rows] + area_b[cols] - inter)
    keep = iou > min_iou
    return rows[keep], cols[keep], iou[keep]


def _one_to_one(rows: np.ndarray, cols: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """IoUs of a one-to-one matching of candidate pairs (greedy by decreasing IoU)."""
    if np.unique(rows).size == rows.size and np.unique(cols).size == cols.size:
        return iou  # the usual case: candidates are already one-to-one
    order = np.argsort(-iou, kind="stable")
    used_r, used_c, kept = set(), set(), []
    for k in order:  # only candidate pairs (IoU > 0.5) of an image with overlapping masks
        r, c = rows[k], cols[k]
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            kept.append(iou[k])
    return np.asarray(kept)


def kaggle_score(pred_masks: Any, gt_masks: Any) -> float:
    """Kaggle Sartorius score of one image (see the module docstring).

    Args:
        pred_masks: predicted masks ``bool[Np, H, W]`` or an id map ``int[H, W]``; an empty
            list when the image has no predictions.
        gt_masks: true masks ``bool[Ng, H, W]`` or an id map ``int[H, W]``; or an empty list.

    Returns:
        Mean over the 10 thresholds of ``TP / (TP + FP + FN)``, in ``[0, 1]``.
    """
    rows, cols, inter, area_p, area_g = _pair_intersections(
        _check(pred_masks, "pred_masks"), _check(gt_masks, "gt_masks"))
    n_pred, n_gt = np.count_nonzero(area_p), np.count_nonzero(area_g)  # empty masks: no objects
    if n_pred == 0 and n_gt == 0:
        return 1.0
    iou = inter / (area_p[rows] + area_g[cols] - inter)
    hit = iou > KAGGLE_THRESHOLDS[0]
    matched = _one_to_one(rows[hit], cols[hit], iou[hit])
    tp = (matched[:, None] > KAGGLE_THRESHOLDS[None, :]).sum(axis=0)
    return float(np.mean(tp / (n_pred + n_gt - tp)))


class KaggleScoreEvaluator(Evaluator):
    """Per-image Kaggle scores, averaged over the dataset and per group (e.g. cell type).

    Under DDP ``compute()`` gathers the per-image scores of all ranks; an image id seen on
    several ranks (a DistributedSampler pads with repeats) counts once.
    """

    def reset(self) -> None:
        self.records: dict[Any, tuple[float, Any]] = {}

    def update(self, image_id: Any, pred_masks: Any, gt_masks: Any, group: Any = None) -> None:
        """Score one image (masks as in :func:`kaggle_score`); ``group`` names its subset."""
        self.records[image_id] = (kaggle_score(pred_masks, gt_masks), group)

    def compute(self) -> dict[str, Any]:
        merged: dict[Any, tuple[float, Any]] = {}
        for records in all_gather_objects(self.records):
            for image_id, record in records.items():
                merged.setdefault(image_id, record)
        groups: dict[Any, list[float]] = defaultdict(list)
        for score, group in merged.values():
            if group is not None:
                groups[group].append(score)
        scores = [score for score, _ in merged.values()]
        return {
            "kaggle_score": float(np.mean(scores)) if scores else float("nan"),
            "per_group": {g: float(np.mean(v)) for g, v in sorted(groups.items())},
            "n_per_group": {g: len(v) for g, v in sorted(groups.items())},
            "n_images": len(scores),
        }
