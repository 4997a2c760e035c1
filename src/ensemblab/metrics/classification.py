"""Classification scores: macro precision / recall / F1 and accuracy (scikit-learn).

Macro averages give every class the same weight, which is what the crystal-system and VQA
papers report on imbalanced label sets. A class that is never predicted has precision 0
(``zero_division=0``) rather than a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from ensemblab.metrics.semantic import as_numpy


def macro_prf(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> dict[str, Any]:
    """Macro-averaged precision, recall, F1 and plain accuracy.

    Args:
        y_true: true labels ``[N]`` (ints or strings).
        y_pred: predicted labels ``[N]``.
        labels: the classes to average over (default: those in ``y_true`` or ``y_pred``).

    Returns:
        ``{"macro_precision", "macro_recall", "macro_f1", "accuracy"}`` plus ``per_class``:
        ``{label: {"precision", "recall", "f1", "support"}}``.
    """
    y_true, y_pred = as_numpy(y_true).reshape(-1), as_numpy(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} true labels but {y_pred.size} predictions")
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred])).tolist()
    p, r, f, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(labels), average=None, zero_division=0)
    return {
        "macro_precision": float(np.mean(p)),
        "macro_recall": float(np.mean(r)),
        "macro_f1": float(np.mean(f)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {str(lab): {"precision": float(p[i]), "recall": float(r[i]),
                                 "f1": float(f[i]), "support": int(support[i])}
                      for i, lab in enumerate(labels)},
    }
