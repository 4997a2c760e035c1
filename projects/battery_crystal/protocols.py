"""The evaluation protocols, each registered by name, and the loop that scores every model.

- ``holdout``: the paper's single stratified 80/20 split, repeated over ``holdout_seeds``
  seeds (one split is far too noisy on 339 rows to compare models).
- ``repeated_cv``: repeated stratified 5-fold cross-validation (5 repeats = 25 test folds).
- ``grouped_cv``: stratified 5-fold cross-validation with every formula's rows in one fold
  (polymorphs share a formula; random splits put near-duplicates on both sides).

Each model is fitted on the training rows of each split only — including its preprocessing and
its hyper-parameter selection (inner folds of those rows; grouped by formula under
``grouped_cv``) — and scored on the test rows with macro precision / recall / F1 and accuracy
(:func:`ensemblab.metrics.classification.macro_prf`), reported as mean ± std over splits.

A protocol is a function returning a scikit-learn splitter, registered in :data:`PROTOCOLS` with
the words the results table uses (``evaluate.protocols`` names registered protocols)::

    @register_protocol("loo", "leave-one-out", "leave-one-out")
    def leave_one_out(folds, repeats, holdout_seeds, test_size, seed):
        return LeaveOneOut()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import (
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    StratifiedShuffleSplit,
)

from ensemblab.metrics.classification import macro_prf
from ensemblab.registry import Registry

SCORES = ("macro_f1", "macro_precision", "macro_recall", "accuracy")


@dataclass(frozen=True)
class Protocol:
    """A registered evaluation protocol.

    Attributes:
        splitter: ``(folds, repeats, holdout_seeds, test_size, seed) -> scikit-learn splitter``
            (``split(x, y, groups)`` gives ``(train_idx, test_idx)`` pairs).
        caption: how the results caption counts its splits; ``str.format`` fields are keys of
            the ``evaluate`` config section, e.g. ``"{folds}-fold CV"``.
        title: its column title in the results table (formatted the same way).
        grouped: splits keep each group (formula) in one fold, and ``groups`` reach the
            models' ``fit`` so that their inner folds are grouped too.
    """

    splitter: Callable[..., Any]
    caption: str
    title: str
    grouped: bool = False


PROTOCOLS = Registry("evaluation protocol")


def register_protocol(name: str, caption: str, title: str, grouped: bool = False):
    """Decorator: register a splitter function as the protocol ``name`` (see :class:`Protocol`)."""

    def add(splitter: Callable[..., Any]) -> Callable[..., Any]:
        PROTOCOLS.register(name, Protocol(splitter, caption, title, grouped))
        return splitter

    return add


@register_protocol("holdout", "{holdout_seeds} stratified 80/20 splits",
                   "stratified 80/20 split")
def holdout(folds: int, repeats: int, holdout_seeds: int, test_size: float, seed: int):
    """The paper's stratified 80/20 split, over ``holdout_seeds`` seeds."""
    return StratifiedShuffleSplit(holdout_seeds, test_size=test_size, random_state=seed)


@register_protocol("repeated_cv", "{folds}-fold x {repeats} repeated stratified CV",
                   "repeated stratified {folds}-fold")
def repeated_cv(folds: int, repeats: int, holdout_seeds: int, test_size: float, seed: int):
    """Stratified ``folds``-fold cross-validation, ``repeats`` times."""
    return RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)


@register_protocol("grouped_cv", "{folds}-fold CV grouped by formula",
                   "{folds}-fold grouped by formula", grouped=True)
def grouped_cv(folds: int, repeats: int, holdout_seeds: int, test_size: float, seed: int):
    """Stratified ``folds``-fold cross-validation with each group (formula) in one fold."""
    return StratifiedGroupKFold(folds, shuffle=True, random_state=seed)


def make_splits(protocol: str, y: np.ndarray, groups: np.ndarray, folds: int = 5,
                repeats: int = 5, holdout_seeds: int = 5, test_size: float = 0.2,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, test_idx)`` pairs of a protocol.

    Args:
        protocol: a registered protocol (unknown: a one-line ConfigError naming the closest).
        y: int[N] labels (stratification).
        groups: [N] group per row (the formula), used by ``grouped_cv``.
        folds, repeats: cross-validation shape.
        holdout_seeds, test_size: number and size of the 80/20 splits.
        seed: base random state.
    """
    spec = PROTOCOLS.get(protocol)
    splitter = spec.splitter(folds=folds, repeats=repeats, holdout_seeds=holdout_seeds,
                             test_size=test_size, seed=seed)
    x = np.zeros(len(y))
    return list(splitter.split(x, y, groups) if spec.grouped else splitter.split(x, y))


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
