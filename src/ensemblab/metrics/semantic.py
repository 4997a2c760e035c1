"""Semantic segmentation scores from a dataset-level confusion matrix.

Definitions follow the mineral paper (Res-UNet Ensemble Learning for Semantic Segmentation of
Mineral Optical Microscopy Images), eq. 8-11, per class ``c`` with ``TP``, ``FP``, ``FN``
counted over all pixels of the dataset:

- eq. 8, pixel accuracy of a class (a *precision*): ``PA_c = TP / (TP + FP)``
- eq. 9, recall: ``R_c = TP / (TP + FN)``
- eq. 10, F1: ``F1_c = 2 PA_c R_c / (PA_c + R_c)``
- eq. 11, intersection over union: ``IoU_c = TP / (TP + FP + FN)``

``mIoU``, ``mPA``, ``mRecall`` and ``mF1`` are the means of the per-class values over the classes
that occur in the truth or in the prediction; a class absent from both has no defined score
(``NaN`` in the per-class lists) and is left out of the means. A class that occurs but has a zero
denominator in one formula (e.g. never predicted, so ``TP + FP = 0``) scores 0 there.
``pixel_accuracy`` is the overall fraction of correctly labelled pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ensemblab.metrics.evaluators import Evaluator, all_reduce_sum


def as_numpy(x: Any) -> np.ndarray:
    """A numpy view of a numpy array or a (possibly GPU) torch tensor."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def confusion_matrix(
    pred: Any, target: Any, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Confusion matrix of two label maps, counted with one ``np.bincount``.

    Args:
        pred: predicted class indices, any shape (e.g. ``[B, H, W]``), numpy or torch.
        target: true class indices, same shape.
        num_classes: ``C``; every non-ignored value must lie in ``[0, C)``.
        ignore_index: target value whose pixels are not counted.

    Returns:
        ``int64[C, C]``; rows are the truth, columns the prediction.

    Raises:
        ValueError: on a shape mismatch or a class index outside ``[0, C)``.
    """
    pred = as_numpy(pred).reshape(-1)
    target = as_numpy(target).reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.size} values, target {target.size}")
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, arr in (("pred", pred), ("target", target)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} holds class {arr.min()}..{arr.max()} "
                             f"outside [0, {num_classes})")
    index = target.astype(np.int64) * num_classes + pred.astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with ``0/0 -> 0``."""
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def semantic_scores(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-class and mean scores of a confusion matrix (mineral paper eq. 8-11).

    Args:
        cm: ``[C, C]`` counts, rows = truth, columns = prediction.
        class_names: optional names of the ``C`` classes (echoed as ``class_names``).

    Returns:
        ``{"iou", "pa", "recall", "f1"}``: per-class lists (``NaN`` for a class absent from
        truth and prediction), ``{"miou", "mpa", "mrecall", "mf1"}``: their means over the
        present classes, ``pixel_accuracy`` and ``class_names``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    if class_names is not None and len(class_names) != cm.shape[0]:
        raise ValueError(f"{len(class_names)} class names for {cm.shape[0]} classes")
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (tp + fp + fn) > 0
    pa = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * pa * recall, pa + recall)
    iou = _ratio(tp, tp + fp + fn)
    per_class = {}
    means = {}
    for name, values in (("iou", iou), ("pa", pa), ("recall", recall), ("f1", f1)):
        values = np.where(present, values, np.nan)
        per_class[name] = values.tolist()
        means["m" + name] = float(values[present].mean()) if present.any() else float("nan")
    total = cm.sum()
    return {
        **per_class,
        **means,
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "class_names": list(class_names) if class_names is not None else None,
    }


class ConfusionMatrixEvaluator(Evaluator):
    """Accumulates a confusion matrix over a dataset; ``compute()`` sums it over DDP ranks.

    Args:
        num_classes: ``C``.
        ignore_index: target value that is not counted.
        class_names: optional class names passed to :func:`semantic_scores`.

    Example::

        ev = ConfusionMatrixEvaluator(9)
        for pred, target in batches:         # [B, H, W] each
            ev.update(pred, target)
        scores = ev.compute()                # {"miou": .., "iou": [..], ..., "confusion_matrix"}
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None,
                 class_names: Sequence[str] | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = class_names
        super().__init__()

    def reset(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> None:
        """Add one batch: ``pred``, ``target`` class-index maps of the same shape."""
        self.matrix += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def reduced_matrix(self) -> np.ndarray:
        """The matrix summed over all ranks (collective under DDP)."""
        return all_reduce_sum(self.matrix)

    def compute(self) -> dict[str, Any]:
        cm = self.reduced_matrix()
        return {**semantic_scores(cm, self.class_names), "confusion_matrix": cm.tolist()}
