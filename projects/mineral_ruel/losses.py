"""Losses of the mineral paper (sec. 2.3.3-2.3.5): CE, CE + Dice, CE + Focal.

Dice and focal terms come from SMP and are added to cross-entropy with weight 1 (as in the
authors' code); the focal term uses alpha 0.5 and gamma 2 (their values). Each loss registers
the terms it adds to cross-entropy in :data:`LOSSES` (``loss.name`` in configs)::

    @LOSSES.register("ce+lovasz")
    def lovasz_terms(aux_weight, focal_alpha, focal_gamma):
        return [(smp.losses.LovaszLoss("multiclass"), aux_weight)]
"""

from __future__ import annotations

from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
from torch import nn

from ensemblab.errors import ConfigError
from ensemblab.registry import Registry

# loss name -> ``(aux_weight, focal_alpha, focal_gamma) -> [(term, weight), ...]``: the terms
# added to cross-entropy
LOSSES = Registry("loss")
Terms = list[tuple[nn.Module, float]]


class CompositeLoss(nn.Module):
    """``CE(logits, target) + sum_k w_k * term_k(logits, target)``.

    Args:
        class_weights: optional per-class CE weights ``[C]`` (data imbalance, sec. 1.2.2).
        terms: extra SMP losses with their weights.

    Forward: logits ``[B, C, H, W]``, target int64 ``[B, H, W]`` -> scalar.
    """

    def __init__(self, class_weights: Sequence[float] | None = None,
                 terms: Sequence[tuple[nn.Module, float]] = ()):
        super().__init__()
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.ce = nn.CrossEntropyLoss(weight=weight)
        self.terms = nn.ModuleList(t for t, _ in terms)
        self.term_weights = [w for _, w in terms]

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.ce(logits, target)
        for term, weight in zip(self.terms, self.term_weights):
            loss = loss + weight * term(logits, target)
        return loss


@LOSSES.register("ce")
def ce_terms(aux_weight: float, focal_alpha: float, focal_gamma: float) -> Terms:
    """Cross-entropy alone (sec. 2.3.3)."""
    return []


@LOSSES.register("ce+dice")
def dice_terms(aux_weight: float, focal_alpha: float, focal_gamma: float) -> Terms:
    """Cross-entropy + ``aux_weight`` x multi-class Dice (sec. 2.3.4)."""
    return [(smp.losses.DiceLoss("multiclass"), aux_weight)]


@LOSSES.register("ce+focal")
def focal_terms(aux_weight: float, focal_alpha: float, focal_gamma: float) -> Terms:
    """Cross-entropy + ``aux_weight`` x multi-class focal loss (sec. 2.3.5)."""
    return [(smp.losses.FocalLoss("multiclass", alpha=focal_alpha, gamma=focal_gamma),
             aux_weight)]


def build_loss(name: str = "ce", num_classes: int | None = None,
               class_weights: Sequence[float] | None = None, focal_alpha: float = 0.5,
               focal_gamma: float = 2.0, aux_weight: float = 1.0) -> CompositeLoss:
    """Build the loss registered as ``name`` (``ce``, ``ce+dice``, ``ce+focal``, ...).

    Args:
        name: loss name (unknown: a one-line ConfigError naming the closest registered one).
        num_classes: needed to check ``class_weights``.
        class_weights: optional CE class weights.
        focal_alpha: focal alpha (paper code: 0.5).
        focal_gamma: focal gamma (paper code: 2).
        aux_weight: weight of the Dice/focal term (paper code: 1).
    """
    if class_weights is not None and num_classes is not None and len(class_weights) != num_classes:
        raise ConfigError(f"loss.class_weights has {len(class_weights)} entries, "
                          f"expected {num_classes}")
    terms = LOSSES.get(name)(aux_weight=aux_weight, focal_alpha=focal_alpha,
                             focal_gamma=focal_gamma)
    return CompositeLoss(class_weights, terms)
