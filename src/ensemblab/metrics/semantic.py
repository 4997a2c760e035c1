"""Semantic segmentation scores from a dataset-level confusion matrix.

Definitions follow the mineral paper (Res-UNet Ensemble Learning for Semantic Segmentation of
Mineral Optical Microscopy Images), eq. 8-11, per class ``c`` with ``TP``, ``FP``, ``FN``
counted over all pixels of the dataset:

- eq. 8, pixel accuracy of a class (a *precision*): ``PA_c = TP / (TP + FP)``
- eq. 9, recall: ``R_c = TP / (TP + FN)``
- eq. 10, F1 of the dataset: ``F1 = 2 mPA mRecall / (mPA + mRecall)`` (``f1_score``)
- eq. 11, intersection over union: ``IoU_c = TP / (TP + FP + FN)``

``mIoU``, ``mPA`` and ``mRecall`` are the means of the per-class values over the classes that
occur in the truth or in the prediction; a class absent from both has no defined score (``NaN``
in the per-class lists) and is left out of the means. A class that occurs but has a zero
denominator in one formula (e.g. never predicted, so ``TP + FP = 0``) scores 0 there.
The per-class F1 ``2 PA_c R_c / (PA_c + R_c)`` (the paper's Table 7) is reported too, with its
mean ``mf1``; that mean is not eq. 10. ``pixel_accuracy`` is the overall fraction of correctly
labelled pixels.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ensemblab.metrics.evaluators import Evaluator, all_gather_objects, all_reduce_sum


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
    pred = as_numpy(pred).reshape(1, -1)
    target = as_numpy(target).reshape(1, -1)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.size} values, target {target.size}")
    return confusion_matrices(pred, target, num_classes, ignore_index)[0]


def confusion_matrices(
    pred: Any, target: Any, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """One confusion matrix per sample of a batch, counted with one ``np.bincount``.

    Args:
        pred: predicted class indices ``[B, ...]`` (e.g. ``[B, H, W]``), numpy or torch.
        target: true class indices, same shape.
        num_classes: ``C``; every non-ignored value must lie in ``[0, C)``.
        ignore_index: target value whose pixels are not counted.

    Returns:
        ``int64[B, C, C]``; rows are the truth, columns the prediction.

    Raises:
        ValueError: on a shape mismatch or a class index outside ``[0, C)``.
    """
    pred, target = as_numpy(pred), as_numpy(target)
    if pred.shape != target.shape or pred.ndim == 0:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    batch = pred.shape[0]
    pred, target = pred.reshape(batch, -1), target.reshape(batch, -1)
    sample = np.broadcast_to(np.arange(batch, dtype=np.int64)[:, None], pred.shape)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target, sample = pred[keep], target[keep], sample[keep]
    for name, arr in (("pred", pred), ("target", target)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} holds class {arr.min()}..{arr.max()} "
                             f"outside [0, {num_classes})")
    index = (sample * num_classes + target.astype(np.int64)) * num_classes + pred.astype(np.int64)
    counts = np.bincount(index.reshape(-1), minlength=batch * num_classes * num_classes)
    return counts.reshape(batch, num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with ``0/0 -> 0``."""
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _harmonic_mean(a: float, b: float) -> float:
    """``2ab / (a + b)``; 0 when both are 0, NaN when either is NaN."""
    if math.isnan(a) or math.isnan(b):
        return float("nan")
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def semantic_scores(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-class and mean scores of a confusion matrix (mineral paper eq. 8-11).

    Args:
        cm: ``[C, C]`` counts, rows = truth, columns = prediction.
        class_names: optional names of the ``C`` classes (echoed as ``class_names``).

    Returns:
        ``{"iou", "pa", "recall", "f1"}``: per-class lists (``NaN`` for a class absent from
        truth and prediction), ``{"miou", "mpa", "mrecall", "mf1"}``: their means over the
        present classes, ``f1_score``: eq. 10 from ``mpa`` and ``mrecall``, ``pixel_accuracy``
        and ``class_names``.
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
    mpa, mrecall = means["mpa"], means["mrecall"]
    total = cm.sum()
    return {
        **per_class,
        **means,
        "f1_score": _harmonic_mean(mpa, mrecall),
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "class_names": list(class_names) if class_names is not None else None,
    }


class ConfusionMatrixEvaluator(Evaluator):
    """Accumulates a confusion matrix over a dataset; ``compute()`` sums it over DDP ranks.

    A ``DistributedSampler`` pads the dataset with repeated samples so that every rank gets
    the same count; to score each sample exactly once, pass ``sample_ids`` to :meth:`update`:
    those samples are kept per id and a repeated id (on the same or another rank) counts once,
    as in :class:`~ensemblab.metrics.instance.KaggleScoreEvaluator`. Batches without ids are
    summed as given.

    Args:
        num_classes: ``C``.
        ignore_index: target value that is not counted.
        class_names: optional class names passed to :func:`semantic_scores`.

    Example::

        ev = ConfusionMatrixEvaluator(9)
        for pred, target, ids in batches:    # [B, H, W], [B, H, W], B ids
            ev.update(pred, target, sample_ids=ids)
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
        self.per_sample: dict[Hashable, np.ndarray] = {}

    def update(self, pred: Any, target: Any,
               sample_ids: Sequence[Hashable] | None = None) -> None:
        """Add one batch of class-index maps.

        Args:
            pred: predicted classes ``[B, ...]`` (numpy or torch).
            target: true classes, same shape.
            sample_ids: ``B`` dataset ids of the samples (ints, strings or 0-d tensors), so
                that a sample repeated by DDP padding is counted once; None sums the batch.
        """
        if sample_ids is None:
            self.matrix += confusion_matrix(pred, target, self.num_classes, self.ignore_index)
            return
        matrices = confusion_matrices(pred, target, self.num_classes, self.ignore_index)
        if len(sample_ids) != len(matrices):
            raise ValueError(f"{len(sample_ids)} sample ids for a batch of {len(matrices)}")
        for sample_id, matrix in zip(sample_ids, matrices):
            self.per_sample[_plain_id(sample_id)] = matrix

    def reduced_matrix(self) -> np.ndarray:
        """The matrix summed over all ranks, each sample id once (collective under DDP)."""
        merged: dict[Hashable, np.ndarray] = {}
        for records in all_gather_objects(self.per_sample):
            for sample_id, matrix in records.items():
                merged.setdefault(sample_id, matrix)
        return all_reduce_sum(self.matrix) + sum(merged.values(), np.zeros_like(self.matrix))

    def compute(self) -> dict[str, Any]:
        cm = self.reduced_matrix()
        return {**semantic_scores(cm, self.class_names), "confusion_matrix": cm.tolist()}


def _plain_id(sample_id: Any) -> Hashable:
    """A tensor or numpy scalar id as a Python scalar, so that equal ids hash equal."""
    return sample_id.item() if hasattr(sample_id, "item") else sample_id
