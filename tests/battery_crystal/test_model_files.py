"""Run folders hold the model as data (``model.json`` + ``model.npz``): a reloaded model predicts
exactly what the fitted one did, and no file in a run folder is ever unpickled."""

import hashlib
import io
import json
import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch

from ensemblab.cli import main
from ensemblab.config import find_config, load_config
from ensemblab.engine import prepare_run_dir
from ensemblab.errors import DataError
from ensemblab.projects.battery_crystal.features import CLASSES, LABEL, load_table
from ensemblab.projects.battery_crystal.models import build_model
from ensemblab.synthetic.battery import write_battery_csv
from ensemblab.tabular.persist import FORMAT, VERSION, arrays_path, load_model, save_model

CONFIGS = Path(__file__).resolve().parents[2] / "projects" / "battery_crystal" / "configs"
# tiny fits: every model kind a run can hold, in well under a second each
TINY = ["baselines.trees=5", "baselines.svm_c=[1.0,10.0]", "baselines.lr_c=[1.0]",
        "baselines.inner_folds=2", "dnn.inner_folds=2", "dnn.max_epochs=10",
        "dnn.grid=[{hidden: [8], dropout: 0.1, weight_decay: 0.0001}]"]
KINDS = [("dnn", "honest", "onehot"), ("dnn", "paper", "embedding"), ("svm", "honest", None),
         ("lr", "honest", None), ("nb", "honest", None), ("voting_soft", "honest", None),
         ("voting_hard", "paper", None), ("rf", "honest", None), ("et", "raw", None),
         ("voting_trio", "honest", None)]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("battery")
    train = load_table(write_battery_csv(root / "train.csv", n_rows=80, seed=0))
    new = load_table(write_battery_csv(root / "new.csv", n_rows=25, seed=7, with_label=False),
                     with_label=False)
    return train, new


@pytest.mark.parametrize(("name", "feature_set", "categorical"), KINDS,
                         ids=[f"{n}-{f}-{c or 'onehot'}" for n, f, c in KINDS])
def test_reloaded_model_predicts_like_the_fitted_one(tables, tmp_path, name, feature_set,
                                                     categorical):
    torch.set_num_threads(1)
    train, new = tables
    overrides = TINY + ([f"dnn.categorical={categorical}"] if categorical else [])
    cfg = load_config(find_config("cpu_quick", CONFIGS), overrides)
    model = build_model(name, feature_set, cfg, seed=0)
    model.fit(train, np.array([CLASSES.index(v) for v in train[LABEL]]))
    json_file, npz_file = save_model(model, tmp_path / "model.json")
    assert npz_file == arrays_path(json_file) and npz_file.is_file()
    reloaded = load_model(json_file)
    assert type(reloaded) is type(model)
    np.testing.assert_array_equal(reloaded.predict_proba(new), model.predict_proba(new))
    if name == "voting_trio":
        for key, probs in model.predict_proba_named(new).items():
            np.testing.assert_array_equal(reloaded.predict_proba_named(new)[key], probs, key)
    # the stored pipeline can fit again: same settings as the original
    assert vars(reloaded.make_preprocessor()) == vars(model.make_preprocessor())


class _Marker:
    """Unpickling this creates ``path`` through a shell command."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.path))}",)


def _run_folder(tmp_path: Path) -> Path:
    return prepare_run_dir(tmp_path / "run", load_config(find_config("cpu_quick", CONFIGS)))


def _predict(tmp_path: Path, run: Path, capsys) -> tuple[int, str]:
    csv = write_battery_csv(tmp_path / "new.csv", n_rows=5, seed=1, with_label=False)
    capsys.readouterr()
    code = main(["battery_crystal", "predict", "--run", str(run), "--input", str(csv),
                 "--out", str(tmp_path / "pred")])
    return code, capsys.readouterr().err


def test_the_planted_payload_runs_when_unpickled(tmp_path):
    """Control: the crafted pickle of the tests below is live."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Marker(marker)))
    assert marker.exists()


@pytest.mark.parametrize("verb", ["predict", "evaluate"])
def test_a_pickled_model_is_refused_not_unpickled(tmp_path, capsys, verb):
    run = _run_folder(tmp_path)
    marker = tmp_path / "pwned"
    (run / "model.pkl").write_bytes(pickle.dumps(_Marker(marker)))
    if verb == "predict":
        code, err = _predict(tmp_path, run, capsys)
    else:
        data = write_battery_csv(tmp_path / "data.csv", n_rows=30, seed=0)
        capsys.readouterr()
        code = main(["battery_crystal", "evaluate", "--run", str(run), "--data", str(data)])
        err = capsys.readouterr().err
        assert not (run / "metrics.json").exists()  # refused before the long evaluation
    assert not marker.exists()
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "model.pkl" in err and "battery_crystal train" in err


def _model_json(run: Path, blob: bytes, model: object) -> None:
    doc = {"format": FORMAT, "version": VERSION,
           "libraries": {"scikit-learn": sklearn.__version__},
           "arrays_sha256": hashlib.sha256(blob).hexdigest(), "model": model}
    (run / "model.json").write_text(json.dumps(doc))


def _object_npz(marker: Path) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, a0=np.array([_Marker(marker)], dtype=object))
    return buffer.getvalue()


@pytest.mark.parametrize("planted", ["pickle_as_npz", "object_array_in_npz"])
def test_pickled_data_in_the_arrays_file_is_refused(tmp_path, capsys, planted):
    """A pickle as ``model.npz``, or an object array in it, with a matching ``model.json``."""
    run = _run_folder(tmp_path)
    marker = tmp_path / "pwned"
    if planted == "pickle_as_npz":
        blob = pickle.dumps(_Marker(marker))
    else:
        blob = _object_npz(marker)
    (run / "model.npz").write_bytes(blob)
    _model_json(run, blob, {"$": "array", "key": "a0"})
    code, err = _predict(tmp_path, run, capsys)
    assert not marker.exists()
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "model.json" in err and "battery_crystal train" in err


@pytest.mark.parametrize("node", [
    {"$": "object", "id": 0, "class": "subprocess.Popen", "state": {}},
    {"$": "partial", "func": "posix.system", "keywords": {}},
    {"$": "object", "id": 0, "class": "sklearn.naive_bayes.GaussianNB",
     "state": {"__class__": None}},
], ids=["class_not_listed", "partial_of_a_function", "dunder_attribute"])
def test_only_listed_classes_are_built(tmp_path, node):
    blob = _empty_npz()
    (tmp_path / "model.npz").write_bytes(blob)
    _model_json(tmp_path, blob, node)
    with pytest.raises(DataError, match="not a readable model file"):
        load_model(tmp_path / "model.json")


def _empty_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer)
    return buffer.getvalue()


def test_arrays_from_another_save_are_refused(tables, tmp_path):
    train, _ = tables
    cfg = load_config(find_config("cpu_quick", CONFIGS), TINY)
    y = np.array([CLASSES.index(v) for v in train[LABEL]])
    save_model(build_model("nb", "honest", cfg).fit(train, y), tmp_path / "a" / "model.json")
    save_model(build_model("lr", "honest", cfg).fit(train, y), tmp_path / "b" / "model.json")
    (tmp_path / "a" / "model.npz").write_bytes((tmp_path / "b" / "model.npz").read_bytes())
    with pytest.raises(DataError, match="does not belong"):
        load_model(tmp_path / "a" / "model.json")


def test_a_tree_with_a_cycle_is_refused(tables, tmp_path):
    """Tree nodes are traversed in C without bounds checks: the node table is checked first."""
    train, _ = tables
    cfg = load_config(find_config("cpu_quick", CONFIGS), TINY)
    model = build_model("rf", "honest", cfg).fit(
        train, np.array([CLASSES.index(v) for v in train[LABEL]]))
    path, npz = save_model(model, tmp_path / "model.json")
    doc = json.loads(path.read_text())
    with np.load(npz, allow_pickle=False) as stored:
        arrays = {k: stored[k] for k in stored.files}
    key = next(k for k, a in arrays.items() if a.dtype.names and "left_child" in a.dtype.names)
    nodes = arrays[key].copy()
    nodes["left_child"][0] = 0  # the root as its own child
    arrays[key] = nodes
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    npz.write_bytes(buffer.getvalue())
    doc["arrays_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="tree node"):
        load_model(path)
