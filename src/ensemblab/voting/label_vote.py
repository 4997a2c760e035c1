"""Hard voting over label maps: weighted (RUEL) and plurality.

RUEL (mineral paper, eq. 5) ranks the ``n`` learners by a validation metric and gives
learner ``i`` (0 = best) the weight ``w_i = (n - i) / sum_j (n - j)``. Each pixel takes the class
with the largest summed weight of the learners voting for it. A tie goes to the class voted by
the learner of highest weight among those voting for a tied class; between learners of equal
weight, to the earlier one (so with rank weights, to the higher-ranked learner, and with equal
weights, plurality voting, to the earliest).

Implementation (exact, no loop over pixels): at a pixel, the learners voting class ``c`` form a
subset ``S`` of the ``M`` learners, written as an ``M``-bit code. For ``M <= 16`` a lookup table
over all ``2^M`` subsets gives each subset one integer key ordered first by its summed weight
``W(S)`` and then by the priority of its best learner; voter sets of different classes at one
pixel are disjoint, so the largest key is the winning class, ties included. The loop runs over
classes (bit codes from ``M`` comparisons, one table look-up, a running maximum). For ``M > 16``
the class scores come from one weighted ``np.bincount`` of ``pixel * C + label`` and tied pixels
are settled by walking the learners from the lowest to the highest priority. Weight sums within
``1e-9 * sum(w)`` of each other count as equal: that absorbs float rounding (``0.1 + 0.2`` vs
``0.3``) and nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ensemblab.metrics.semantic import as_numpy

_TIE_RTOL = 1e-9


def rank_weights(n: int) -> np.ndarray:
    """RUEL rank weights (mineral paper eq. 5): ``w_i = (n - i) / sum_j (n - j)``.

    Args:
        n: number of learners, ranked best first.

    Returns:
        ``float64[n]``, decreasing, summing to 1 (e.g. ``n=3 -> [3/6, 2/6, 1/6]``).
    """
    if n < 1:
        raise ValueError(f"need at least one learner, got n={n}")
    raw = np.arange(n, 0, -1, dtype=np.float64)
    return raw / raw.sum()


def _check_weights(weights: Any, m: int) -> np.ndarray:
    if weights is None:
        return np.full(m, 1.0 / m)
    w = as_numpy(weights).astype(np.float64).reshape(-1)
    if w.size != m:
        raise ValueError(f"{w.size} weights for {m} label maps")
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {w.tolist()}")
    return w


def _priority(w: np.ndarray) -> np.ndarray:
    """Learner indices from the highest to the lowest priority (weight desc, then index asc)."""
    return np.lexsort((np.arange(w.size), -w))


def _subset_keys(w: np.ndarray) -> np.ndarray:
    """Key of every voter subset (bit ``m`` = learner ``m``), ordered like the vote's winner.

    Returns:
        ``[2^M]`` unsigned ints: larger ``W(S)`` (up to the tie tolerance) wins; equal ``W``
        goes to the subset holding the higher-priority learner; the empty subset is 0.
    """
    m = w.size
    members = (np.arange(1 << m)[:, None] >> np.arange(m)) & 1  # [2^M, M]
    total = members @ w
    rank = np.empty(m, dtype=np.int64)
    rank[_priority(w)] = np.arange(m)  # 0 = highest priority
    best = np.where(members == 1, rank, m).min(axis=1)  # m for the empty subset
    order = np.argsort(total, kind="stable")
    level = np.empty(1 << m, dtype=np.int64)
    level[order] = np.concatenate([[0], np.cumsum(np.diff(total[order]) > _TIE_RTOL * w.sum())])
    keys = level * (m + 1) + (m - best)
    return keys.astype(np.min_scalar_type(keys.max()))


def _vote_by_subset_keys(flat: np.ndarray, w: np.ndarray, c: int) -> np.ndarray:
    """``M <= 16``: running maximum over classes of the subset keys. ``flat``: ``[M, P]``.

    Per class: ``M`` comparisons, the voter codes built byte by byte with Horner's scheme
    (``acc = 2 * acc | vote``: additions and ors are the cheapest uint8 ufuncs), one look-up.
    All buffers are allocated once.
    """
    m, n_pix = flat.shape
    keys = _subset_keys(w)
    n_bytes = (m + 7) // 8
    votes = np.empty((m, n_pix), dtype=bool)
    votes8 = votes.view(np.uint8)
    code = np.zeros((n_pix, 2), dtype=np.uint8)  # little-endian bytes of a uint16 code
    code16 = code.view(np.uint16).reshape(-1)
    acc = np.empty(n_pix, dtype=np.uint8)
    key = np.empty(n_pix, dtype=keys.dtype)
    best = np.zeros(n_pix, dtype=keys.dtype)
    better = np.empty(n_pix, dtype=bool)
    voted = np.zeros(n_pix, dtype=np.int64)
    for cls in range(c):
        np.equal(flat, cls, out=votes)
        for byte in range(n_bytes):
            top = min(8 * byte + 8, m) - 1
            np.copyto(acc, votes8[top])
            for k in range(top - 1, 8 * byte - 1, -1):
                np.add(acc, acc, out=acc)
                np.bitwise_or(acc, votes8[k], out=acc)
            code[:, byte] = acc
        np.take(keys, code16, out=key)
        np.greater(key, best, out=better)
        np.copyto(voted, cls, where=better)
        np.maximum(best, key, out=best)
    return voted


def _vote_by_bincount(flat: np.ndarray, w: np.ndarray, c: int) -> np.ndarray:
    """Any ``M``: weighted histogram of (pixel, class), then an explicit tie pass."""
    m, n_pix = flat.shape
    index = flat.astype(np.intp) + np.arange(n_pix, dtype=np.intp) * c  # [M, P]
    scores = np.bincount(index.reshape(-1), weights=np.repeat(w, n_pix),
                         minlength=n_pix * c).reshape(n_pix, c)
    voted = scores.argmax(axis=1)
    best = scores[np.arange(n_pix), voted]
    tied = scores >= (best - _TIE_RTOL * w.sum())[:, None]  # [P, C]
    tie_pix = np.flatnonzero(tied.sum(axis=1) > 1)
    if tie_pix.size:
        sub_tied, sub_labels = tied[tie_pix], flat[:, tie_pix]
        rows = np.arange(tie_pix.size)
        result = voted[tie_pix]
        for k in _priority(w)[::-1]:  # lowest priority first: the highest one writes last
            result = np.where(sub_tied[rows, sub_labels[k]], sub_labels[k], result)
        voted[tie_pix] = result
    return voted


def weighted_vote(label_maps: Any, weights: Any = None, num_classes: int | None = None
                  ) -> np.ndarray:
    """Weighted hard vote of ``M`` label maps (RUEL, mineral paper eq. 5 weights).

    Args:
        label_maps: ``int[M, H, W]`` (or ``[M, ...]`` any spatial shape) class indices.
        weights: ``[M]`` non-negative weights (default equal: plurality voting).
        num_classes: ``C``; default ``max label + 1``.

    Returns:
        ``[H, W]`` voted classes, dtype of ``label_maps``. Ties: see the module docstring.
    """
    maps = as_numpy(label_maps)
    if maps.ndim < 2:
        raise ValueError(f"label_maps must be [M, H, W], got shape {maps.shape}")
    m = maps.shape[0]
    w = _check_weights(weights, m)
    flat = maps.reshape(m, -1)
    if flat.size and flat.min() < 0:
        raise ValueError("class indices must be >= 0")
    c = int(flat.max(initial=0)) + 1 if num_classes is None else int(num_classes)
    if flat.size and flat.max() >= c:
        raise ValueError(f"label {flat.max()} >= num_classes {c}")
    # The per-class comparisons run at the speed of the label type: uint8 maps vote ~2.7x
    # faster than numpy's default int64, so every caller gets the smallest type once.
    flat = flat.astype(np.min_scalar_type(max(c - 1, 0)), copy=False)
    vote = _vote_by_subset_keys if m <= 16 else _vote_by_bincount
    return vote(flat, w, c).reshape(maps.shape[1:]).astype(maps.dtype, copy=False)


def reference_weighted_vote(label_maps: Any, weights: Any = None) -> np.ndarray:
    """Straightforward per-pixel weighted vote: the specification, for tests and benchmarks.

    Same contract as :func:`weighted_vote`, but a Python loop over pixels and learners.
    """
    maps = as_numpy(label_maps)
    m = maps.shape[0]
    w = _check_weights(weights, m)
    flat = maps.reshape(m, -1)
    tol = _TIE_RTOL * w.sum()
    priority = _priority(w).tolist()
    out = np.empty(flat.shape[1], dtype=maps.dtype)
    for p in range(flat.shape[1]):
        labels = flat[:, p].tolist()
        score: dict[int, float] = {}
        for k, label in enumerate(labels):
            score[label] = score.get(label, 0.0) + w[k]
        top = max(score.values())
        tied = {label for label, s in score.items() if s >= top - tol}
        out[p] = next(labels[k] for k in priority if labels[k] in tied)
    return out.reshape(maps.shape[1:])


def plurality_vote(label_maps: Any, num_classes: int | None = None) -> np.ndarray:
    """Majority/plurality vote with equal weights; ties go to the earliest label map.

    Args:
        label_maps: ``int[M, H, W]``.
        num_classes: ``C``; default ``max label + 1``.
    """
    return weighted_vote(label_maps, None, num_classes)
