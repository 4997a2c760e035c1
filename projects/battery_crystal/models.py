"""The compared classifiers, each registered under the name configs choose it by.

A model is a factory ``(feature_set, cfg, seed) -> unfitted classifier`` (``fit(df, y,
groups=None)``, ``predict_proba(df)``) registered in :data:`MODELS` with the title the results
table shows and the paper's macro-F1 beside ours::

    @register_model("knn", "k nearest neighbours")
    def knn(feature_set, cfg, seed): ...

``model`` (what ``train`` fits) and ``evaluate.models`` name registered models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ensemblab.projects.battery_crystal.features import CLASSES, preprocessor_factory
from ensemblab.registry import Registry
from ensemblab.tabular.baselines import (
    TabularSklearnClassifier,
    VotingTrio,
    make_baseline,
)
from ensemblab.tabular.dnn_ensemble import DNNEnsembleClassifier


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        build: ``(feature_set, cfg, seed) -> unfitted classifier``; ``feature_set`` is
            ``honest``, ``paper`` or ``raw``, ``cfg`` the resolved config (sections ``dnn`` and
            ``baselines``), ``seed`` seeds inner splits and initialisations.
        title: its row title in ``results.md``.
        paper_macro_f1: the paper's macro-F1 on its single 80/20 split (None: not in the paper).
    """

    build: Callable[[str, dict[str, Any], int], Any]
    title: str
    paper_macro_f1: float | None = None


MODELS = Registry("battery model")


def register_model(name: str, title: str, paper_macro_f1: float | None = None):
    """Decorator: register a factory ``(feature_set, cfg, seed) -> classifier`` as ``name``."""

    def add(build: Callable[[str, dict[str, Any], int], Any]):
        MODELS.register(name, ModelSpec(build, title, paper_macro_f1))
        return build

    return add


def build_model(name: str, feature_set: str, cfg: dict[str, Any], seed: int = 0):
    """An unfitted classifier with ``fit(df, y, groups=None)`` and ``predict_proba(df)``.

    Args:
        name: a registered model (unknown: a one-line ConfigError naming the closest one).
        feature_set: ``honest``, ``paper`` or ``raw``.
        cfg: the resolved config (sections ``dnn`` and ``baselines``).
        seed: seeds inner splits and initialisations.
    """
    return MODELS.get(name).build(feature_set, cfg, seed)


@register_model("dnn", "DNN", paper_macro_f1=0.81)
def dnn(feature_set: str, cfg: dict[str, Any], seed: int) -> DNNEnsembleClassifier:
    """The paper's DNN: a cross-validation ensemble with a nested choice of its layer sizes."""
    d = cfg["dnn"]
    return DNNEnsembleClassifier(
        preprocessor_factory(feature_set, d["categorical"]), len(CLASSES),
        grid=d["grid"], inner_folds=d["inner_folds"], repeats=d["repeats"],
        max_epochs=d["max_epochs"], patience=d["patience"], val_every=d["val_every"],
        lr=d["lr"], embedding_dim=d["embedding_dim"], seed=seed, optimizer=d["optimizer"])


@register_model("voting_trio", "Voting SVM+LR+NB (soft, members fitted once)")
def voting_trio(feature_set: str, cfg: dict[str, Any], seed: int) -> VotingTrio:
    """SVM, LR, NB and both Voting models from one set of fits
    (:class:`ensemblab.tabular.baselines.VotingTrio`; ``evaluate`` scores the five with it)."""
    b = cfg["baselines"]
    return VotingTrio(preprocessor_factory(feature_set, "onehot"), len(CLASSES), seed=seed,
                      svm_c=b["svm_c"], lr_c=b["lr_c"], inner_folds=b["inner_folds"])


def _baseline(name: str) -> Callable[[str, dict[str, Any], int], TabularSklearnClassifier]:
    """The factory of :func:`ensemblab.tabular.baselines.make_baseline` ``name`` behind the
    one-hot preprocessor."""

    def build(feature_set: str, cfg: dict[str, Any], seed: int) -> TabularSklearnClassifier:
        b = cfg["baselines"]
        estimator = make_baseline(name, seed=seed, trees=b["trees"], svm_c=b["svm_c"],
                                  lr_c=b["lr_c"], inner_folds=b["inner_folds"])
        return TabularSklearnClassifier(preprocessor_factory(feature_set, "onehot"), estimator,
                                        len(CLASSES))

    return build


register_model("svm", "SVM (RBF)", paper_macro_f1=0.39)(_baseline("svm"))
register_model("lr", "Logistic regression", paper_macro_f1=0.49)(_baseline("lr"))
register_model("nb", "Gaussian naive Bayes", paper_macro_f1=0.32)(_baseline("nb"))
register_model("voting_soft", "Voting SVM+LR+NB (soft)", paper_macro_f1=0.38)(
    _baseline("voting_soft"))
register_model("voting_hard", "Voting SVM+LR+NB (hard)", paper_macro_f1=0.38)(
    _baseline("voting_hard"))
register_model("rf", "Random forest")(_baseline("rf"))
register_model("et", "Extra trees")(_baseline("et"))
