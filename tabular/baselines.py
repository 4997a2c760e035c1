"""The paper's classical baselines and the tree ensembles, on top of the tabular preprocessor.

The crystal-system paper compares its DNN with a support vector machine, logistic regression,
Gaussian naive Bayes and a Voting model of those three; random forest and extra trees are
added here as the strong classical reference for small tables. SVM and logistic regression
choose their regularisation ``C`` by an inner stratified cross-validation on the training rows
only (:class:`sklearn.model_selection.GridSearchCV`), so the outer test rows never influence a
hyper-parameter. Every model sees the same features: :class:`TabularPreprocessor` output with
one-hot categories, fitted on the training rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC

from ensemblab.errors import ConfigError
from ensemblab.tabular.preprocess import TabularPreprocessor

BASELINES = ("svm", "lr", "nb", "voting_soft", "voting_hard", "rf", "et")
VOTING_TRIO = ("svm", "lr", "nb", "voting_soft", "voting_hard")


def make_baseline(name: str, seed: int = 0, trees: int = 200,
                  svm_c: Sequence[float] = (1.0, 10.0, 100.0),
                  lr_c: Sequence[float] = (0.1, 1.0, 10.0), inner_folds: int = 3):
    """An unfitted scikit-learn classifier.

    Args:
        name: one of :data:`BASELINES`.
        seed: random state (inner splits, trees, SVM probability calibration).
        trees: trees of the random forest / extra trees.
        svm_c, lr_c: ``C`` grids searched on inner folds of the training rows.
        inner_folds: folds of that inner search.
    """
    inner = StratifiedKFold(inner_folds, shuffle=True, random_state=seed)

    def svm():
        # Platt-scaled probabilities (needed by soft voting and `predict`) through
        # CalibratedClassifierCV, the replacement of the deprecated SVC(probability=True)
        calibrated = CalibratedClassifierCV(SVC(kernel="rbf"), method="sigmoid", cv=3,
                                            ensemble=False)
        return GridSearchCV(calibrated, {"estimator__C": list(svm_c)}, cv=inner,
                            scoring="f1_macro")

    def lr():
        return GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(lr_c)}, cv=inner,
                            scoring="f1_macro")

    factories: dict[str, Callable] = {
        "svm": svm,
        "lr": lr,
        "nb": GaussianNB,
        "voting_soft": lambda: VotingClassifier(
            [("svm", svm()), ("lr", lr()), ("nb", GaussianNB())], voting="soft"),
        "voting_hard": lambda: VotingClassifier(
            [("svm", svm()), ("lr", lr()), ("nb", GaussianNB())], voting="hard"),
        "rf": lambda: RandomForestClassifier(trees, random_state=seed, n_jobs=1),
        "et": lambda: ExtraTreesClassifier(trees, random_state=seed, n_jobs=1),
    }
    if name not in factories:
        raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return factories[name]()


class TabularSklearnClassifier:
    """A scikit-learn classifier behind a fit-on-train :class:`TabularPreprocessor`.

    Args:
        make_preprocessor: returns a fresh, unfitted preprocessor (one-hot encoding).
        estimator: an unfitted scikit-learn classifier.
        n_classes: C; labels are 0..C-1.
    """

    def __init__(self, make_preprocessor: Callable[[], TabularPreprocessor], estimator,
                 n_classes: int):
        self.make_preprocessor = make_preprocessor
        self.estimator = estimator
        self.n_classes = n_classes
        self.preprocessor_: TabularPreprocessor | None = None

    def fit(self, df: pd.DataFrame, y: np.ndarray, groups: np.ndarray | None = None):
        """Fit preprocessor and estimator on the training rows (``groups`` is unused)."""
        self.preprocessor_ = self.make_preprocessor().fit(df)
        self.estimator.fit(self.preprocessor_.transform(df).x_num, np.asarray(y))
        return self

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """float[N, C] class probabilities.

        A hard-voting model has none; its "probabilities" are the members' vote shares.
        """
        x = self.preprocessor_.transform(df).x_num
        est = self.estimator
        if isinstance(est, VotingClassifier) and est.voting == "hard":
            votes = est.transform(x)  # [N, n_members] predicted labels
            probs = np.stack([(votes == c).mean(axis=1) for c in range(self.n_classes)], 1)
            # arg-max of vote shares must equal the classifier's own tie-breaking
            probs[np.arange(len(x)), est.predict(x)] += 1e-6
            return probs / probs.sum(axis=1, keepdims=True)
        out = np.zeros((len(x), self.n_classes))
        out[:, est.classes_] = est.predict_proba(x)
        return out

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """int[N]: arg-max of :meth:`predict_proba`."""
        return self.predict_proba(df).argmax(1)


class VotingTrio(TabularSklearnClassifier):
    """SVM, logistic regression, naive Bayes and both Voting models from one set of fits.

    :class:`sklearn.ensemble.VotingClassifier` refits its members, so scoring the three
    members and the two Voting models separately fits the SVM three times. This class fits
    each member once and combines them exactly as ``VotingClassifier`` does: soft = arg-max of
    the mean member probabilities; hard = the most frequent member prediction, ties to the
    lowest class index. :meth:`predict_proba_named` returns all five.

    Args:
        make_preprocessor, n_classes: as :class:`TabularSklearnClassifier`.
        seed, svm_c, lr_c, inner_folds: as :func:`make_baseline`.
    """

    def __init__(self, make_preprocessor: Callable[[], TabularPreprocessor], n_classes: int,
                 seed: int = 0, svm_c: Sequence[float] = (1.0, 10.0, 100.0),
                 lr_c: Sequence[float] = (0.1, 1.0, 10.0), inner_folds: int = 3):
        super().__init__(make_preprocessor, None, n_classes)
        self.members = {name: make_baseline(name, seed=seed, svm_c=svm_c, lr_c=lr_c,
                                            inner_folds=inner_folds)
                        for name in ("svm", "lr", "nb")}

    def fit(self, df: pd.DataFrame, y: np.ndarray, groups: np.ndarray | None = None):
        """Fit the preprocessor and the three members on the training rows."""
        self.preprocessor_ = self.make_preprocessor().fit(df)
        x = self.preprocessor_.transform(df).x_num
        for member in self.members.values():
            member.fit(x, np.asarray(y))
        return self

    def predict_proba_named(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """``{"svm", "lr", "nb", "voting_soft", "voting_hard"}`` -> float[N, C]."""
        x = self.preprocessor_.transform(df).x_num
        out = {}
        for name, member in self.members.items():
            probs = np.zeros((len(x), self.n_classes))
            probs[:, member.classes_] = member.predict_proba(x)
            out[name] = probs
        out["voting_soft"] = np.mean([out[n] for n in ("svm", "lr", "nb")], axis=0)
        votes = np.stack([out[n].argmax(1) for n in ("svm", "lr", "nb")], axis=1)  # [N, 3]
        shares = np.stack([(votes == c).mean(axis=1) for c in range(self.n_classes)], axis=1)
        winner = shares.argmax(1)  # ties -> lowest class index, as VotingClassifier
        shares[np.arange(len(x)), winner] += 1e-6
        out["voting_hard"] = shares / shares.sum(axis=1, keepdims=True)
        return out

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """float[N, C] of the soft Voting model."""
        return self.predict_proba_named(df)["voting_soft"]
