"""Save and load fitted tabular classifiers as data: ``NAME.json`` plus ``NAME.npz``.

Reading either file runs no code from it. The JSON file holds a tree of plain values (numbers,
strings, lists, mappings) and of objects named by class; every array (fitted coefficients,
scaler means, support vectors, tree nodes, network weights) sits in the ``.npz`` file beside it,
read with ``numpy.load(allow_pickle=False)``, which refuses object arrays, the only place an
``.npz`` file can hold pickled data. The JSON file records the SHA-256 of the ``.npz`` file, so
a pair from two different saves is refused.

Loading builds only the classes of :data:`CLASSES` — the tabular preprocessor, the wrappers of
:mod:`ensemblab.tabular.baselines`, :class:`~ensemblab.tabular.dnn_ensemble.DNNEnsembleClassifier`
and the scikit-learn estimators they hold — and sets their attributes to the stored values, as
unpickling a scikit-learn estimator does, so a reloaded model predicts exactly what the fitted
one did. Some values get their own entry:

- ``GridSearchCV``: only what it predicts with, its refitted ``best_estimator_`` (an unfitted
  search: its ``estimator``). The search results and the splitter are not kept.
- scikit-learn's decision ``Tree``: its constructor arguments, node table and leaf values; the
  node table is checked (children after their parent, features in range) before use.
- :class:`~ensemblab.tabular.dnn.MemberMLP`: its constructor arguments and state dict.
- ``functools.partial`` of :class:`~ensemblab.tabular.preprocess.TabularPreprocessor` (the
  preprocessor factory of every model): its keyword arguments.
- NumPy scalars: 0-d arrays (exact type and value); torch tensors: arrays.

An SVC's support-vector tables are checked against each other as well, since libsvm reads them
without bounds checks. Anything else the model holds makes :func:`save_model` raise
``TypeError``; a file that does not follow this layout makes :func:`load_model` raise
:class:`~ensemblab.errors.DataError`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn import calibration
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import LabelEncoder
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier
from sklearn.tree._tree import Tree
from sklearn.utils import Bunch

from ensemblab.errors import DataError, EnsemblabError
from ensemblab.io import atomic_path
from ensemblab.tabular.baselines import TabularSklearnClassifier, VotingTrio
from ensemblab.tabular.dnn import MemberMLP
from ensemblab.tabular.dnn_ensemble import DNNEnsembleClassifier
from ensemblab.tabular.preprocess import TabularPreprocessor

FORMAT = "ensemblab.tabular.model"
VERSION = 1


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_CLASS_LIST = [
    TabularPreprocessor, TabularSklearnClassifier, VotingTrio, DNNEnsembleClassifier,
    LogisticRegression, GaussianNB, SVC, calibration.CalibratedClassifierCV,
    VotingClassifier, LabelEncoder, RandomForestClassifier, ExtraTreesClassifier,
    DecisionTreeClassifier, ExtraTreeClassifier,
    # private helpers of CalibratedClassifierCV (one fitted calibrator per class)
    *(getattr(calibration, n) for n in ("_CalibratedClassifier", "_SigmoidCalibration")
      if hasattr(calibration, n)),
]
CLASSES: dict[str, type] = {_name(c): c for c in _CLASS_LIST}
"""Every class :func:`load_model` may build, by ``module.qualname``."""

PARTIAL_FUNCS: dict[str, Callable] = {_name(TabularPreprocessor): TabularPreprocessor}
"""Callables a stored ``functools.partial`` may wrap."""


def arrays_path(path: str | Path) -> Path:
    """The ``.npz`` file that goes with the JSON file ``path``."""
    return Path(path).with_suffix(".npz")


# ------------------------------------------------------------------------------------ saving
class _Encoder:
    """Turns a model into a JSON-able tree plus a dict of arrays."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.ids: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps encoded objects alive, so ids stay unique

    def array(self, value: np.ndarray) -> str:
        if value.dtype.hasobject:
            raise TypeError(f"cannot store an array of dtype {value.dtype} (Python objects)")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return key

    def shared(self, obj: Any, build: Callable[[int], dict]) -> dict:
        """``build(id)`` the first time ``obj`` is met, a reference to that id afterwards."""
        if id(obj) in self.ids:
            return {"$": "ref", "id": self.ids[id(obj)]}
        ref = self.ids[id(obj)] = len(self.ids)
        self.keep.append(obj)
        return build(ref)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, np.generic):  # before float: numpy.float64 is a float subclass
            return {"$": "scalar", "key": self.array(np.asarray(value))}
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$": "float", "value": repr(value)}
        if isinstance(value, np.ndarray):
            return {"$": "array", "key": self.array(value)}
        if isinstance(value, torch.Tensor):
            return {"$": "tensor", "key": self.array(value.detach().cpu().numpy())}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, tuple):
            return {"$": "tuple", "items": [self(v) for v in value]}
        if isinstance(value, Bunch):
            return {"$": "bunch", "items": self._mapping(value)}
        if isinstance(value, dict):
            return {"$": "dict", "items": self._mapping(value)}
        if isinstance(value, GridSearchCV):
            return self(getattr(value, "best_estimator_", value.estimator))
        if isinstance(value, functools.partial):
            return self._partial(value)
        if isinstance(value, Tree):
            return self.shared(value, lambda ref: self._tree(value, ref))
        if type(value) is MemberMLP:
            return self.shared(value, lambda ref: self._member_mlp(value, ref))
        if _name(type(value)) in CLASSES and CLASSES[_name(type(value))] is type(value):
            return self.shared(value, lambda ref: {
                "$": "object", "id": ref, "class": _name(type(value)),
                "state": self._mapping(vars(value))})
        raise TypeError(f"cannot store a {_name(type(value))} in a model file")

    def _mapping(self, mapping: dict) -> dict[str, Any]:
        bad = [k for k in mapping if not isinstance(k, str)]
        if bad:
            raise TypeError(f"cannot store mapping keys {bad!r} (strings only)")
        return {k: self(v) for k, v in mapping.items()}

    def _partial(self, value: functools.partial) -> dict:
        name = _name(value.func) if isinstance(value.func, type) else repr(value.func)
        if PARTIAL_FUNCS.get(name) is not value.func or value.args:
            raise TypeError(f"cannot store functools.partial of {name} with positional args "
                            "or of a function other than " + ", ".join(PARTIAL_FUNCS))
        return {"$": "partial", "func": name, "keywords": self._mapping(value.keywords)}

    def _tree(self, tree: Tree, ref: int) -> dict:
        _, (n_features, n_classes, n_outputs), state = tree.__reduce__()
        return {"$": "sklearn_tree", "id": ref, "n_features": int(n_features),
                "n_classes": self(np.asarray(n_classes)), "n_outputs": int(n_outputs),
                "state": self._mapping(state)}

    def _member_mlp(self, net: MemberMLP, ref: int) -> dict:
        embedding_dim = int(net.embeddings[0].shape[2]) if len(net.embeddings) else 4
        init = {"n_members": int(net.weights[0].shape[0]),
                "in_features": int(net.weights[0].shape[1]) - embedding_dim * len(net.embeddings),
                "n_classes": int(net.weights[-1].shape[2]),
                "hidden": [int(w.shape[2]) for w in net.weights][:-1],
                "dropout": net.dropout.tolist(),
                "cardinalities": [int(e.shape[1]) for e in net.embeddings],
                "embedding_dim": embedding_dim}
        return {"$": "member_mlp", "id": ref, "init": init,
                "state": self._mapping(dict(net.state_dict()))}


def save_model(model: Any, path: str | Path) -> tuple[Path, Path]:
    """Write a fitted model to ``path`` (JSON) and :func:`arrays_path` ``(path)`` (arrays).

    Args:
        model: a fitted :class:`TabularSklearnClassifier`, :class:`VotingTrio` or
            :class:`DNNEnsembleClassifier` (or any value built from :data:`CLASSES`).
        path: the JSON file, e.g. ``RUN/model.json``; the arrays go to ``RUN/model.npz``.

    Returns:
        The JSON file and the arrays file, both written atomically (arrays first).

    Raises:
        TypeError: the model holds a value this format cannot store.
    """
    path = Path(path)
    encode = _Encoder()
    tree = encode(model)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **encode.arrays)
    blob = buffer.getvalue()
    doc = {"format": FORMAT, "version": VERSION,
           "libraries": {"scikit-learn": sklearn.__version__, "torch": torch.__version__,
                         "numpy": np.__version__},
           "arrays_sha256": hashlib.sha256(blob).hexdigest(), "model": tree}
    text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    npz = arrays_path(path)
    with atomic_path(npz) as tmp:
        tmp.write_bytes(blob)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path, npz


# ----------------------------------------------------------------------------------- loading
class _Decoder:
    """Rebuilds values from the JSON tree and the arrays (only :data:`CLASSES` objects)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.objects: dict[int, Any] = {}

    def array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise ValueError(f"array {key!r} is not in the arrays file")
        return self.arrays[key]

    def register(self, node: dict, obj: Any) -> Any:
        ref = node["id"]
        if not isinstance(ref, int) or ref in self.objects:
            raise ValueError(f"object id {ref!r} is not a fresh integer")
        self.objects[ref] = obj
        return obj

    def __call__(self, node: Any) -> Any:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, list):
            return [self(v) for v in node]
        if not isinstance(node, dict):
            raise ValueError(f"unexpected {type(node).__name__} in the model tree")
        tag = node.get("$")
        if tag == "float":
            if node["value"] not in ("nan", "inf", "-inf"):
                raise ValueError(f"float {node['value']!r}")
            return float(node["value"])
        if tag == "scalar":
            arr = self.array(node["key"])
            if arr.ndim != 0:
                raise ValueError("a scalar must be a 0-d array")
            return arr[()]
        if tag == "array":
            return self.array(node["key"])
        if tag == "tensor":
            return torch.from_numpy(np.array(self.array(node["key"])))
        if tag == "tuple":
            return tuple(self(v) for v in _list(node["items"]))
        if tag == "dict":
            return self._mapping(node["items"])
        if tag == "bunch":
            return Bunch(**self._mapping(node["items"]))
        if tag == "ref":
            if node["id"] not in self.objects:
                raise ValueError(f"reference to unknown object {node['id']!r}")
            return self.objects[node["id"]]
        if tag == "partial":
            func = PARTIAL_FUNCS.get(node["func"])
            if func is None:
                raise ValueError(f"partial of {node['func']!r} is not allowed")
            return functools.partial(func, **self._mapping(node["keywords"]))
        if tag == "sklearn_tree":
            return self._tree(node)
        if tag == "member_mlp":
            return self._member_mlp(node)
        if tag == "object":
            cls = CLASSES.get(node["class"])
            if cls is None:
                raise ValueError(f"class {node['class']!r} is not allowed in a model file")
            obj = self.register(node, cls.__new__(cls))
            state = self._mapping(node["state"])
            bad = [k for k in state if not k.isidentifier() or k.startswith("__")]
            if bad:
                raise ValueError(f"attribute names {bad!r}")
            obj.__dict__.update(state)
            for check in _CHECKS.get(cls, ()):
                check(obj)
            return obj
        raise ValueError(f"unknown entry {tag!r}")

    def _mapping(self, items: Any) -> dict[str, Any]:
        if not isinstance(items, dict):
            raise ValueError(f"expected a mapping, got {type(items).__name__}")
        return {str(k): self(v) for k, v in items.items()}

    def _tree(self, node: dict) -> Tree:
        n_features, n_outputs = node["n_features"], node["n_outputs"]
        n_classes = np.asarray(self(node["n_classes"]), dtype=np.intp)
        state = self._mapping(node["state"])
        if set(state) != {"max_depth", "node_count", "nodes", "values"}:
            raise ValueError(f"tree state keys {sorted(state)}")
        if not (isinstance(n_features, int) and isinstance(n_outputs, int)
                and n_classes.shape == (n_outputs,) and (n_classes > 0).all()):
            raise ValueError("tree shape arguments")
        _check_tree_nodes(state, n_features, n_outputs, int(n_classes.max(initial=0)))
        tree = Tree(n_features, n_classes, n_outputs)
        tree.__setstate__(state)
        return self.register(node, tree)

    def _member_mlp(self, node: dict) -> MemberMLP:
        init = self._mapping(node["init"])
        state = self._mapping(node["state"])
        with torch.random.fork_rng(devices=[]):  # the random initial weights are replaced
            net = MemberMLP(**init)
        net.load_state_dict(state, strict=True)
        return self.register(node, net.eval())


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _check_tree_nodes(state: dict, n_features: int, n_outputs: int, max_classes: int) -> None:
    """Node table of a decision tree: children after their parent, features in range."""
    nodes, values = state["nodes"], state["values"]
    if not isinstance(nodes, np.ndarray) or nodes.dtype.names is None or nodes.ndim != 1:
        raise ValueError("tree nodes must be a 1-d structured array")
    n = len(nodes)
    if state["node_count"] != n or n < 1:
        raise ValueError("tree node_count does not match its node table")
    if not isinstance(values, np.ndarray) or values.shape != (n, n_outputs, max_classes):
        raise ValueError("tree values do not match its node table")
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    index = np.arange(n)
    leaf = left == -1
    inner = ~leaf
    if ((right == -1) != leaf).any():
        raise ValueError("tree node with one child")
    if ((left[inner] <= index[inner]) | (left[inner] >= n) | (right[inner] <= index[inner])
            | (right[inner] >= n) | (feature[inner] < 0) | (feature[inner] >= n_features)).any():
        raise ValueError("tree node links or features out of range")


def _check_tree_estimator(est: Any) -> None:
    tree = getattr(est, "tree_", None)
    if tree is not None and tree.n_features != est.n_features_in_:
        raise ValueError("tree_ feature count differs from n_features_in_")


def _check_svc(svc: SVC) -> None:
    """The support-vector tables libsvm reads must agree with each other."""
    if not hasattr(svc, "support_vectors_"):
        return
    sv = np.asarray(svc.support_vectors_)
    n_sv = int(np.asarray(svc._n_support).sum())
    k = len(svc._n_support)
    pairs = k * (k - 1) // 2
    ok = (sv.ndim == 2 and sv.shape == (n_sv, svc.n_features_in_) and svc._sparse is False
          and len(svc.support_) == n_sv and len(svc.classes_) == k
          and np.asarray(svc._dual_coef_).shape == (k - 1, n_sv)
          and len(svc._intercept_) == pairs
          and len(svc._probA) in (0, pairs) and len(svc._probB) == len(svc._probA))
    if not ok:
        raise ValueError("SVC support-vector tables do not agree")


_CHECKS: dict[type, tuple[Callable[[Any], None], ...]] = {
    SVC: (_check_svc,),
    DecisionTreeClassifier: (_check_tree_estimator,),
    ExtraTreeClassifier: (_check_tree_estimator,),
}


def load_model(path: str | Path) -> Any:
    """Rebuild a model written by :func:`save_model`; never unpickles anything.

    Args:
        path: the JSON file (its arrays are read from :func:`arrays_path` ``(path)``).

    Raises:
        DataError: a file is missing, unreadable, from another save, or not in this format.
    """
    path = Path(path)
    npz = arrays_path(path)
    for p in (path, npz):
        if not p.is_file():
            raise DataError(p, "model file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} file")
        if doc.get("version") != VERSION:
            raise ValueError(f"format version {doc.get('version')!r}, this release reads "
                             f"{VERSION}")
        blob = npz.read_bytes()
        if hashlib.sha256(blob).hexdigest() != doc.get("arrays_sha256"):
            raise ValueError(f"{npz.name} does not belong to {path.name} (checksum differs)")
        with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
        saved = doc.get("libraries", {}).get("scikit-learn")
        if saved != sklearn.__version__:
            warnings.warn(f"{path}: saved with scikit-learn {saved}, loaded with "
                          f"{sklearn.__version__}; retrain if predictions look wrong",
                          stacklevel=2)
        return _Decoder(arrays)(doc["model"])
    except EnsemblabError:
        raise
    except Exception as exc:  # a damaged or foreign file fails in many ways; none is a crash
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise DataError(path, f"not a readable model file ({type(exc).__name__}"
                              f"{': ' + reason if reason else ''})") from None
