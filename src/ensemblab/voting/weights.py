"""Ensemble weights derived from the members' validation scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from ensemblab.voting.label_vote import rank_weights


def weights_from_scores(scores: Any, method: str = "rank", temperature: float = 1.0
                        ) -> np.ndarray:
    """Weights for ``n`` members from their validation scores (higher = better).

    Args:
        scores: ``[n]`` validation scores (e.g. mIoU per member), in member order.
        method: ``"rank"``: the RUEL rank weights (mineral paper eq. 5) given by the members'
            rank, best member ``(n)/sum``, worst ``1/sum``; equal scores rank by member order.
            ``"proportional"``: ``s_i / sum(s)`` (scores must be >= 0).
            ``"softmax"``: ``exp(s_i / T) / sum_j exp(s_j / T)``.
            ``"equal"``: ``1/n``.
        temperature: ``T`` of the softmax.

    Returns:
        ``float64[n]`` weights in member order, summing to 1. With ``weighted_vote`` a tie goes
        to the member of highest weight, i.e. the best-ranked one.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = s.size
    if n == 0:
        raise ValueError("no scores")
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite, got {s.tolist()}")
    if method == "rank":
        order = np.argsort(-s, kind="stable")  # best first; ties keep member order
        w = np.empty(n)
        w[order] = rank_weights(n)
        return w
    if method == "proportional":
        if (s < 0).any() or not s.sum() > 0:
            raise ValueError("proportional weights need scores >= 0 with a positive sum")
        return s / s.sum()
    if method == "softmax":
        z = np.exp((s - s.max()) / temperature)
        return z / z.sum()
    if method == "equal":
        return np.full(n, 1.0 / n)
    raise ValueError(f"unknown method {method!r}; use rank, proportional, softmax or equal")
