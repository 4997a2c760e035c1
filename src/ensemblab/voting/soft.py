"""Soft voting: a weighted mean of the class-probability maps of several models."""

from __future__ import annotations

from typing import Any

import numpy as np


def soft_vote(probs: Any, weights: Any = None) -> Any:
    """Weighted average of ``M`` probability maps.

    Args:
        probs: ``[M, C, H, W]`` (or ``[M, C, ...]``) probabilities, numpy array or torch tensor.
        weights: ``[M]`` non-negative weights (default equal); normalised to sum 1.

    Returns:
        ``[C, H, W]`` averaged probabilities, same library and float dtype as ``probs``; take
        ``argmax(0)`` for the voted label map.
    """
    m = probs.shape[0]
    w = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (m,):
        raise ValueError(f"{w.size} weights for {m} probability maps")
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {w.tolist()}")
    w = w / w.sum()
    if hasattr(probs, "detach"):  # torch: stay on the tensor's device and dtype
        import torch

        wt = torch.as_tensor(w, dtype=probs.dtype, device=probs.device)
        return torch.tensordot(wt, probs, dims=1)
    probs = np.asarray(probs)
    dtype = probs.dtype if np.issubdtype(probs.dtype, np.floating) else np.float64
    return np.tensordot(w.astype(dtype), probs, axes=1)
