"""The three evaluation protocols and the loop that scores every model on them.

- ``holdout``: the paper's single stratified 80/20 split, repeated over ``holdout_seeds``
  seeds (one split is far too noisy on 339 rows to compare models).
- ``repeated_cv``: repeated stratified 5-fold cross-validation (5 repeats = 25 test folds).
- ``grouped_cv``: stratified 5-fold cross-validation with every formula's rows in one fold
  (polymorphs share a formula; random splits put near-duplicates on both sides).

Each model is fitted on the training rows of each split only — including its preprocessing and
its hyper-parameter selection (inner folds of those rows; grouped by formula under
``grouped_cv``) — and scored on the test rows with macro precision / recall / F1 and accuracy
(:func:`ensemblab.metrics.classification.macro_prf`), reported as mean ± std over splits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import (
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    StratifiedShuffleSplit,
)

from ensemblab.errors import ConfigError
from ensemblab.metrics.classification import macro_prf

PROTOCOLS = ("holdout", "repeated_cv", "grouped_cv")
SCORES = ("macro_f1", "macro_precision", "macro_recall", "accuracy")


def make_splits(protocol: str, y: np.ndarray, groups: np.ndarray, folds: int = 5,
                repeats: int = 5, holdout_seeds: int = 5, test_size: float = 0.2,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, test_idx)`` pairs of a protocol.

    Args:
        protocol: one of :data:`PROTOCOLS`.
        y: int[N] labels (stratification).
        groups: [N] group per row (the formula), used by ``grouped_cv``.
        folds, repeats: cross-validation shape.
        holdout_seeds, test_size: number and size of the 80/20 splits.
        seed: base random state.
    """
    x = np.zeros(len(y))
    if protocol == "holdout":
        splitter = StratifiedShuffleSplit(holdout_seeds, test_size=test_size, random_state=seed)
        return list(splitter.split(x, y))
    if protocol == "repeated_cv":
        splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        return list(splitter.split(x, y))
    if protocol == "grouped_cv":
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        return list(splitter.split(x, y, groups))
    raise ConfigError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def evaluate_model(make_model: Callable[[int], Any], df: pd.DataFrame, y: np.ndarray,
                   splits: Sequence[tuple[np.ndarray, np.ndarray]], n_classes: int,
                   groups: np.ndarray | None = None,
                   outputs: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit and score a model on every split.

    Args:
        make_model: ``seed -> unfitted model`` (``fit(df, y, groups)``, ``predict_proba(df)``).
        df: the whole table; y: int[N] labels; splits: from :func:`make_splits`.
        n_classes: C.
        groups: passed to ``fit`` (restricted to the training rows) for grouped inner folds.
        outputs: for a model that scores several classifiers from one fit
            (``predict_proba_named(df) -> {name: probs}``), the names to score.

    Returns:
        ``{"<score>_mean", "<score>_std" for every score, "per_split": [...] (scores, and the
        hyper-parameters a nested search selected),
        "confusion": int[C, C] summed over splits (rows truth), "fit_seconds", "cpu_seconds"}``;
        with ``outputs``, ``{name: that dictionary}`` (times are those of the shared fits).
    """
    names = list(outputs) if outputs is not None else ["model"]
    per_split: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    cms = {n: np.zeros((n_classes, n_classes), dtype=np.int64) for n in names}
    labels = list(range(n_classes))
    wall, cpu = time.perf_counter(), time.process_time()
    for i, (train, test) in enumerate(splits):
        model = make_model(i)
        model.fit(df.iloc[train], y[train], None if groups is None else groups[train])
        if outputs is None:
            probs = {"model": model.predict_proba(df.iloc[test])}
        else:
            probs = model.predict_proba_named(df.iloc[test])
        selected = getattr(model, "selected_", None)  # the DNN's nested choice, if any
        for n in names:
            pred = probs[n].argmax(1)
            scores = macro_prf(y[test], pred, labels=labels)
            per_split[n].append({k: scores[k] for k in SCORES}
                                | ({"selected": selected} if selected else {}))
            cms[n] += confusion_matrix(y[test], pred, labels=labels)
    seconds = {"fit_seconds": round(time.perf_counter() - wall, 2),
               "cpu_seconds": round(time.process_time() - cpu, 2)}
    results = {n: _summary(per_split[n], cms[n], seconds) for n in names}
    return results if outputs is not None else results["model"]


def _summary(per_split: list[dict[str, float]], cm: np.ndarray,
             seconds: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in SCORES:
        values = np.array([s[k] for s in per_split])
        out[f"{k}_mean"] = float(values.mean())
        out[f"{k}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out.update(n_splits=len(per_split), per_split=per_split, confusion=cm.tolist(), **seconds)
    return out
