"""Top-k retrieval accuracy (Recall@k) for image-text matching.

A query is a hit at ``k`` when at least one of its correct gallery items is among the ``k``
most similar ones. Image-to-text retrieval on COCO/Flickr has five correct captions per image,
so the ground truth may be a set per query. Equal similarities are ranked by gallery index
(stable sort), which makes the result deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ensemblab.metrics.semantic import as_numpy


def _relevance(gt: Any, n_query: int, n_gallery: int) -> np.ndarray:
    """``bool[Nq, Ng]``: which gallery items are correct for each query."""
    if isinstance(gt, np.ndarray) and gt.dtype == bool:
        if gt.shape != (n_query, n_gallery):
            raise ValueError(f"relevance matrix {gt.shape} != similarities {(n_query, n_gallery)}")
        return gt
    rel = np.zeros((n_query, n_gallery), dtype=bool)
    if isinstance(gt, np.ndarray) or hasattr(gt, "detach") or (
            len(gt) and np.isscalar(gt[0])):
        index = as_numpy(gt).reshape(-1).astype(np.int64)
        if index.size != n_query:
            raise ValueError(f"{index.size} ground-truth indices for {n_query} queries")
        rel[np.arange(n_query), index] = True
        return rel
    if len(gt) != n_query:
        raise ValueError(f"{len(gt)} ground-truth sets for {n_query} queries")
    rows = np.repeat(np.arange(n_query), [len(s) for s in gt])
    cols = np.fromiter((c for s in gt for c in s), dtype=np.int64, count=rows.size)
    rel[rows, cols] = True
    return rel


def topk_retrieval(
    sim: Any, gt: Sequence[int] | Sequence[Iterable[int]], ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Fraction of queries with a correct item in their top ``k``.

    Args:
        sim: similarities ``[Nq, Ng]`` (higher = more similar).
        gt: the correct gallery index of each query (``[Nq]`` ints), one set of correct
            indices per query, or a relevance matrix ``bool[Nq, Ng]``.
        ks: the cut-offs.

    Returns:
        ``{"top1": .., "top5": ..}`` (one key per ``k``).
    """
    sim = as_numpy(sim).astype(np.float64)
    n_query, n_gallery = sim.shape
    rel = _relevance(gt, n_query, n_gallery)
    kmax = min(max(ks), n_gallery)
    order = np.argsort(-sim, axis=1, kind="stable")[:, :kmax]  # [Nq, kmax]
    first_hit = np.cumsum(np.take_along_axis(rel, order, axis=1), axis=1) > 0
    return {f"top{k}": float(first_hit[:, min(k, kmax) - 1].mean()) for k in ks}


def image_text_retrieval(
    sim: Any, text_image: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Both directions of image-text retrieval from one similarity matrix.

    Args:
        sim: ``[N_images, N_texts]`` similarities.
        text_image: the image index each text describes (``[N_texts]``).
        ks: the cut-offs.

    Returns:
        ``{"i2t_top1", ..., "t2i_top1", ...}``: image->text counts a hit when any of the
        image's texts is retrieved; text->image has one correct image.
    """
    sim = as_numpy(sim)
    text_image = as_numpy(text_image).reshape(-1).astype(np.int64)
    relevant = text_image[None, :] == np.arange(sim.shape[0])[:, None]  # [N_images, N_texts]
    i2t = topk_retrieval(sim, relevant, ks)
    t2i = topk_retrieval(sim.T, text_image, ks)
    return {**{f"i2t_{k}": v for k, v in i2t.items()}, **{f"t2i_{k}": v for k, v in t2i.items()}}
