"""The paper's three losses and their weighted sum (its Sec. 3.5, eqs. 6-9).

    L = lambda_CE * L_CE + lambda_CL * L_CL + lambda_SEQ * L_SEQ
    L_CL = y * D + (1 - y) * max(0, m - D)       (D: distance of image and text embeddings)

For L_CL the paper's pairwise form is :func:`contrastive_loss`; :func:`triplet_ranking_loss`
is the VSE++ form (Faghri et al. 2018) over the in-batch negatives, with the hardest negative
("max violation") or the sum over all of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(distance: torch.Tensor, same: torch.Tensor, margin: float = 1.0):
    """Margin contrastive loss, mean over pairs.

    Args:
        distance: ``[N]`` distances D >= 0 between paired embeddings.
        same: ``[N]`` y = 1 for a matching pair, 0 for a mismatched one.
        margin: m.
    """
    same = same.to(distance.dtype)
    return (same * distance + (1 - same) * F.relu(margin - distance)).mean()


def triplet_ranking_loss(sim: torch.Tensor, positive: torch.Tensor, margin: float = 0.2,
                         hardest: bool = True) -> torch.Tensor:
    """VSE++ hinge loss over the in-batch negatives of each matching pair.

    Row ``k`` of the batch is a matching pair (image k, text k); every pair (image k, text l)
    with ``positive[k, l]`` False is a negative of both its image and its text:

        sum over anchors of [m - s(k, k) + s(k, l)]_+ + [m - s(l, l) + s(k, l)]_+

    taken at the hardest negative per anchor (``hardest``) or summed over all of them.

    Args:
        sim: ``[B, B]`` similarities s(image k, text l) (cosine of unit embeddings).
        positive: ``[B, B]`` bool, True where image k and text l match (the diagonal, and
            other rows of the same image).
        margin: m.
        hardest: max over negatives (VSE++ max violation) instead of the sum.

    Returns:
        The mean over the B pairs of the image-anchored plus the text-anchored terms.
    """
    diag = sim.diagonal()
    img_anchor = (margin - diag[:, None] + sim).clamp_min(0).masked_fill(positive, 0.0)
    txt_anchor = (margin - diag[None, :] + sim).clamp_min(0).masked_fill(positive, 0.0)
    if hardest:
        return img_anchor.amax(dim=1).mean() + txt_anchor.amax(dim=0).mean()
    return img_anchor.sum(dim=1).mean() + txt_anchor.sum(dim=0).mean()


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_CE with soft targets (VQA answer scores), normalised per row.

    Args:
        logits: ``[B, K]``; targets: ``[B, K]`` non-negative scores (one-hot for hard labels).
        Rows whose targets are all zero (answer outside the vocabulary) are skipped.
    """
    total = targets.sum(dim=-1, keepdim=True)
    keep = total.squeeze(-1) > 0
    if not keep.any():
        return logits.sum() * 0.0
    probs = targets[keep] / total[keep]
    return -(probs * F.log_softmax(logits[keep], dim=-1)).sum(dim=-1).mean()


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """L_SEQ: token cross-entropy of teacher-forced logits ``[B, T, V]`` vs ``targets [B, T]``."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=pad_id, label_smoothing=label_smoothing)


def weighted_sum(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum_k weights[k] * losses[k]`` over the losses present (missing weight = 1)."""
    if not losses:
        raise ValueError("no loss to sum")
    return sum(weights.get(k, 1.0) * v for k, v in losses.items())
