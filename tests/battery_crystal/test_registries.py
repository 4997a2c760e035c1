"""Models and evaluation protocols are chosen by name from their registries."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.neighbors import KNeighborsClassifier

from ensemblab.config import find_config, load_config
from ensemblab.errors import ConfigError
from ensemblab.projects.battery_crystal.evaluation import run_evaluation
from ensemblab.projects.battery_crystal.features import CLASSES, load_table, preprocessor_factory
from ensemblab.projects.battery_crystal.models import MODELS, build_model, register_model
from ensemblab.projects.battery_crystal.protocols import (
    PROTOCOLS,
    make_splits,
    register_protocol,
)
from ensemblab.synthetic.battery import write_battery_csv
from ensemblab.tabular.baselines import TabularSklearnClassifier

CONFIGS = Path(__file__).resolve().parents[2] / "projects" / "battery_crystal" / "configs"


def _cfg() -> dict:
    return load_config(find_config("cpu_quick", CONFIGS))


def test_the_compared_models_and_protocols_are_registered():
    assert {"dnn", "svm", "lr", "nb", "voting_soft", "voting_hard", "rf", "et"} <= set(
        MODELS.names())
    assert MODELS.get("dnn").paper_macro_f1 == 0.81 and MODELS.get("rf").paper_macro_f1 is None
    assert set(PROTOCOLS.names()) >= {"holdout", "repeated_cv", "grouped_cv"}
    y, groups = np.arange(30) % 3, np.arange(30) % 10
    assert len(make_splits("repeated_cv", y, groups, folds=3, repeats=2)) == 6
    for train, test in make_splits("grouped_cv", y, groups, folds=3):  # no formula on both sides
        assert not set(groups[train]) & set(groups[test])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: build_model("rff", "honest", _cfg()), "unknown battery model 'rff' (did you mean rf"),
    (lambda: make_splits("grouped", np.zeros(6), np.zeros(6)),
     "unknown evaluation protocol 'grouped' (did you mean grouped_cv"),
])
def test_unknown_names_are_one_line_naming_the_closest(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert "\n" not in str(info.value) and str(info.value).startswith(message)


def test_unknown_names_in_the_evaluate_section_are_refused_before_any_fit(tmp_path):
    cfg = _cfg()
    cfg["evaluate"]["protocols"] = ["holdout", "repeated"]
    with pytest.raises(ConfigError, match=r"^evaluate.protocols: unknown evaluation protocol "
                                          r"'repeated' \(did you mean repeated_cv"):
        run_evaluation(None, cfg, tmp_path, "none")


def test_a_registered_model_and_protocol_are_selectable_by_name(tmp_path):
    df = load_table(write_battery_csv(tmp_path / "table.csv", n_rows=90))
    cfg = _cfg()
    cfg["evaluate"].update(models=["knn", "lr"], protocols=["shuffle30"], feature_sets=["honest"])
    with MODELS.scope(), PROTOCOLS.scope():
        @register_model("knn", "5 nearest neighbours")
        def knn(feature_set, cfg, seed):
            return TabularSklearnClassifier(preprocessor_factory(feature_set, "onehot"),
                                            KNeighborsClassifier(5), len(CLASSES))

        @register_protocol("shuffle30", "{holdout_seeds} stratified 70/30 splits", "70/30 split")
        def shuffle30(folds, repeats, holdout_seeds, test_size, seed):
            return StratifiedShuffleSplit(holdout_seeds, test_size=0.3, random_state=seed)

        metrics = run_evaluation(df, cfg, tmp_path / "out", "synthetic")
    result = metrics["results"]["honest"]["knn"]["shuffle30"]
    assert result["n_splits"] == cfg["evaluate"]["holdout_seeds"]
    assert 0.0 < result["macro_f1_mean"] <= 1.0
    assert set(metrics["results"]["honest"]["lr"]) == {"shuffle30"}
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| 5 nearest neighbours | - |" in table and "ours: 70/30 split" in table
    assert f"over {cfg['evaluate']['holdout_seeds']} stratified 70/30 splits." in table
    assert "knn" not in MODELS and "shuffle30" not in PROTOCOLS
