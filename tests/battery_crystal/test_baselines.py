import numpy as np
import pandas as pd
from sklearn.ensemble import VotingClassifier

from ensemblab.tabular.baselines import TabularSklearnClassifier, VotingTrio, make_baseline
from ensemblab.tabular.preprocess import TabularPreprocessor


def _table(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    df = pd.DataFrame({"a": y + rng.normal(0, 0.8, n), "b": rng.normal(size=n),
                       "c": np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n)).astype(str)})
    return df, y


def test_voting_trio_equals_sklearn_voting_classifier():
    df, y = _table(90, 0)
    test, _ = _table(40, 1)

    def make():
        return TabularPreprocessor(numeric=["a", "b"], categorical=["c"])

    trio = VotingTrio(make, 3, seed=0).fit(df, y)
    named = trio.predict_proba_named(test)
    for voting in ("soft", "hard"):
        ref = TabularSklearnClassifier(make, make_baseline(f"voting_{voting}", seed=0), 3)
        ref.fit(df, y)
        assert isinstance(ref.estimator, VotingClassifier)
        np.testing.assert_array_equal(named[f"voting_{voting}"].argmax(1), ref.predict(test))
    soft = TabularSklearnClassifier(make, make_baseline("voting_soft", seed=0), 3).fit(df, y)
    np.testing.assert_allclose(named["voting_soft"], soft.predict_proba(test), atol=1e-8)
    for name in ("svm", "lr", "nb"):
        np.testing.assert_allclose(named[name].sum(1), 1.0, atol=1e-6)
