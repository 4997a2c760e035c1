import numpy as np
import pandas as pd
import pytest

from ensemblab.projects.battery_crystal.features import load_table
from ensemblab.synthetic.battery import battery_table
from ensemblab.tabular.leakage import leakage_report, leaky_features
from ensemblab.tabular.preprocess import TabularPreprocessor
from ensemblab.testing import real_data


def test_planted_leak_is_caught_and_continuous_columns_are_not():
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], size=300)
    df = pd.DataFrame({
        "label": y,
        # planted leak: 4 codes per class, each repeated many times
        "leak": [f"{v}{rng.integers(4)}" for v in y],
        "unique_float": rng.normal(size=300),            # all distinct: must NOT be flagged
        "noisy_cat": rng.integers(0, 10, size=300),      # repeated, unrelated to the label
        "weak": np.where(y == "a", rng.integers(0, 3, 300), rng.integers(2, 6, 300)),
    })
    assert leaky_features(df, "label") == ["leak"]
    report = {r.feature: r for r in leakage_report(df, "label")}
    assert report["leak"].purity == 1.0 and report["leak"].coverage == 1.0
    assert report["unique_float"].n_values == 0 and not report["unique_float"].leaky
    assert "LEAKY" in report["leak"].describe()


def test_synthetic_spacegroup_is_flagged():
    df = battery_table(200, seed=3)
    assert leaky_features(df.drop(columns=["Materials Id"]), "Crystal System") == ["Spacegroup"]


@pytest.mark.realdata
def test_real_table_leak_is_spacegroup():
    df = load_table(real_data("battery/lithium-ion_batteries.csv"))
    assert len(df) == 339
    assert leaky_features(df.drop(columns=["Materials Id"]), "Crystal System") == ["Spacegroup"]


def test_preprocessor_fits_on_train_rows_only():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["u", "v", "u"], "f": ["Li2O"] * 3})
    test = pd.DataFrame({"x": [100.0], "c": ["w"], "f": ["LiF"]})
    pre = TabularPreprocessor(numeric=["x"], categorical=["c"], formula="f").fit(train)
    assert pre.feature_names == ["x", "frac(Li)", "frac(O)", "c=u", "c=v"]
    out = pre.transform(test).x_num
    assert out[0, 0] == pytest.approx((100 - 2) / np.std([1, 2, 3]))
    # unseen category -> both one-hot columns at their "absent" standardised value
    absent = pre.transform(train).x_num[1, 3]
    assert out[0, 3] == pytest.approx(absent)
    emb = TabularPreprocessor(numeric=["x"], categorical=["c"], encoding="embedding").fit(train)
    assert emb.cardinalities == [3]
    assert emb.transform(test).x_cat.tolist() == [[0]]
    assert emb.transform(train).x_cat[:, 0].tolist() == [1, 2, 1]
