"""Build the compared classifiers from the config: the paper's DNN and its baselines."""

from __future__ import annotations

from typing import Any

from ensemblab.errors import ConfigError
from ensemblab.projects.battery_crystal.features import CLASSES, preprocessor_factory
from ensemblab.tabular.baselines import (
    BASELINES,
    TabularSklearnClassifier,
    VotingTrio,
    make_baseline,
)
from ensemblab.tabular.dnn_ensemble import DNNEnsembleClassifier

MODELS = ("dnn", *BASELINES)
# the paper's macro-F1 on its single 80/20 split (its Table of results); None: not in the paper
PAPER_MACRO_F1 = {"dnn": 0.81, "svm": 0.39, "lr": 0.49, "nb": 0.32, "voting_soft": 0.38,
                  "voting_hard": 0.38, "rf": None, "et": None}
MODEL_TITLES = {"dnn": "DNN", "svm": "SVM (RBF)",
                "lr": "Logistic regression", "nb": "Gaussian naive Bayes",
                "voting_soft": "Voting SVM+LR+NB (soft)", "voting_hard": "Voting SVM+LR+NB (hard)",
                "rf": "Random forest", "et": "Extra trees"}


def build_model(name: str, feature_set: str, cfg: dict[str, Any], seed: int = 0):
    """An unfitted classifier with ``fit(df, y, groups=None)`` and ``predict_proba(df)``.

    Args:
        name: one of :data:`MODELS`, or ``voting_trio`` (SVM, LR, NB and both Voting models
            from one set of fits: :class:`ensemblab.tabular.baselines.VotingTrio`).
        feature_set: ``honest`` or ``paper``.
        cfg: the resolved config (sections ``dnn`` and ``baselines``).
        seed: seeds inner splits and initialisations.
    """
    if name == "dnn":
        d = cfg["dnn"]
        return DNNEnsembleClassifier(
            preprocessor_factory(feature_set, d["categorical"]), len(CLASSES),
            grid=d["grid"], inner_folds=d["inner_folds"], repeats=d["repeats"],
            max_epochs=d["max_epochs"], patience=d["patience"], val_every=d["val_every"],
            lr=d["lr"], embedding_dim=d["embedding_dim"], seed=seed)
    b = cfg["baselines"]
    if name == "voting_trio":
        return VotingTrio(preprocessor_factory(feature_set, "onehot"), len(CLASSES), seed=seed,
                          svm_c=b["svm_c"], lr_c=b["lr_c"], inner_folds=b["inner_folds"])
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    estimator = make_baseline(name, seed=seed, trees=b["trees"], svm_c=b["svm_c"],
                              lr_c=b["lr_c"], inner_folds=b["inner_folds"])
    return TabularSklearnClassifier(preprocessor_factory(feature_set, "onehot"), estimator,
                                    len(CLASSES))
