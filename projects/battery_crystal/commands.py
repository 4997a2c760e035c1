"""The verbs of ``ensemblab battery_crystal`` as plain functions; ``cli.py`` only parses
arguments.

- :func:`train`: fit the configured model (default: the DNN ensemble on ``honest`` features) on
  every row of the table -> ``RUN/model.json`` + ``RUN/model.npz``, ``RUN/train_summary.json``.
  The model files are data only (:mod:`ensemblab.tabular.persist`): loading them runs no code.
- :func:`evaluate`: every configured model x protocol x feature set, fitted per split
  (:mod:`.evaluation`) -> ``RUN/metrics.json``, ``RUN/results.md``, ``RUN/confusion.png``.
- :func:`predict`: a table without the label column -> ``OUT/predictions.csv`` (class and the
  three class probabilities per row).

The models are small: they run on the CPU whatever ``--device`` says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ensemblab.config import find_config, load_config
from ensemblab.engine import check_run, open_run, prepare_run_dir, seed_everything
from ensemblab.errors import DataError, EnsemblabError
from ensemblab.io import write_csv, write_json
from ensemblab.metrics.classification import macro_prf
from ensemblab.projects.battery_crystal import MODEL, PROJECT
from ensemblab.projects.battery_crystal.evaluation import LEAK_CHECK_COLUMNS, run_evaluation
from ensemblab.projects.battery_crystal.features import (
    CLASSES,
    FEATURE_SETS,
    LABEL,
    LEAKY_FEATURE_SETS,
    load_table,
)
from ensemblab.projects.battery_crystal.models import MODELS, build_model
from ensemblab.projects.battery_crystal.protocols import PROTOCOLS
from ensemblab.tabular.leakage import leakage_report
from ensemblab.tabular.persist import arrays_path, load_model, save_model
from ensemblab.tabular.preprocess import ENCODINGS

CONFIG_DIR = Path(__file__).parent / "configs"
BASE_CONFIG = CONFIG_DIR / "default.yaml"
"""The root config: every default, and the keys an older run's saved config lacks."""
CHOICES = {"features": FEATURE_SETS, "model": MODELS.names(), "dnn.categorical": ENCODINGS,
           "dnn.optimizer": ("adam",), "evaluate.feature_sets": FEATURE_SETS,
           "evaluate.models": MODELS.names(), "evaluate.protocols": PROTOCOLS.names()}
"""The choice-valued config keys and their allowed values, checked when a config loads."""
MODEL_FILE = "model.json"  # its arrays: model.npz beside it
# a pickled model in a run folder is never opened: the user is asked to train again
PICKLED_MODEL_FILE = "model.pkl"
RETRAIN = "ensemblab battery_crystal train --config CFG --data DATA --out RUN"


def resolve_config(name: str | Path) -> Path:
    """A config path, or a bare name of a file in ``configs/`` (``cpu_quick``)."""
    return find_config(name, CONFIG_DIR)


def resolve_csv(data: str | Path | None, cfg: dict[str, Any]) -> Path:
    """The battery CSV from ``--data``: the file itself, ``DIR/<csv>`` or ``DIR/battery/<csv>``."""
    if not data:
        raise DataError(None, "--data is required (the battery CSV or its folder)")
    path = Path(data)
    if path.is_file():
        return path
    if not path.exists():
        raise DataError(path, "not found")
    for candidate in (path / cfg["data"]["csv"], path / "battery" / cfg["data"]["csv"]):
        if candidate.is_file():
            return candidate
    raise DataError(path, f"no {cfg['data']['csv']} here (nor under battery/)")


def single_thread() -> None:
    """One torch thread: the DNN's matrices are tiny, and thread start-up and contention cost
    far more than they save (a fit took 70 s instead of 1 s on a busy 2-core machine)."""
    torch.set_num_threads(1)


def _labels(df) -> np.ndarray:
    return np.array([CLASSES.index(v) for v in df[LABEL]], dtype=np.int64)


def train(config: str | Path, data: str | Path | None, out: str | Path,
          overrides: Sequence[str] = (), resume: bool = False) -> Path:
    """Fit the configured model on every row of the table; returns the run folder.

    Writes ``RUN/model.json`` + ``RUN/model.npz`` (:func:`ensemblab.tabular.persist.save_model`)
    and ``RUN/train_summary.json`` (selected hyper-parameters, leakage check).
    """
    single_thread()
    cfg = load_config(resolve_config(config), list(overrides), choices=CHOICES)
    csv = resolve_csv(data, cfg)
    df = load_table(csv)
    run_dir = prepare_run_dir(out, cfg, resume=resume, project=PROJECT, kind=MODEL)
    seed_everything(cfg["seed"])
    start = time.perf_counter()
    model = build_model(cfg["model"], cfg["features"], cfg, seed=cfg["seed"])
    model.fit(df, _labels(df))
    save_model(model, run_dir / MODEL_FILE)
    (run_dir / PICKLED_MODEL_FILE).unlink(missing_ok=True)  # replaced by the files above
    leaks = leakage_report(df, LABEL, [c for c in LEAK_CHECK_COLUMNS if c in df.columns])
    summary = {"data": str(csv), "rows": len(df), "model": cfg["model"],
               "features": cfg["features"], "leaky_feature_set": cfg["features"]
               in LEAKY_FEATURE_SETS, "leaky_features": [r.feature for r in leaks if r.leaky],
               "seconds": round(time.perf_counter() - start, 2),
               "selected": getattr(model, "selected_", None),
               "search": getattr(model, "search_", None)}
    write_json(run_dir / "train_summary.json", summary)
    print(f"trained {cfg['model']} on {len(df)} rows ({cfg['features']} features) "
          f"in {summary['seconds']} s -> {run_dir / MODEL_FILE}")
    if summary["leaky_feature_set"]:
        print(f"warning: feature set {cfg['features']!r} is leaky: "
              f"{LEAKY_FEATURE_SETS[cfg['features']]}")
    return run_dir


def _check_model_files(run_dir: Path) -> bool:
    """Whether the run holds a model; DataError for a pickled one (it is never unpickled)."""
    if (run_dir / MODEL_FILE).is_file() or arrays_path(run_dir / MODEL_FILE).is_file():
        return True
    if (run_dir / PICKLED_MODEL_FILE).is_file():
        raise DataError(run_dir / PICKLED_MODEL_FILE,
                        "a pickled model from an earlier release is not loaded (unpickling can "
                        f"run code); train the run again: {RETRAIN}")
    return False


def _load_model(run_dir: Path):
    """The run's fitted model from ``model.json`` + ``model.npz`` (no unpickling)."""
    if not _check_model_files(run_dir):
        raise EnsemblabError(f"{run_dir}: no {MODEL_FILE}; run `battery_crystal train` first")
    try:
        return load_model(run_dir / MODEL_FILE)
    except DataError as exc:
        raise DataError(exc.path, f"{exc.problem}; train the run again: {RETRAIN}") from None


def evaluate(run: str | Path, data: str | Path | None) -> dict[str, Any]:
    """Every configured model x protocol x feature set, fitted per split (:mod:`.evaluation`),
    and the run's own model scored on ``data``; writes and returns ``RUN/metrics.json``."""
    single_thread()
    check_run(run, PROJECT, (MODEL,), "evaluate")
    run_dir, cfg = open_run(run, base=BASE_CONFIG)
    model = _load_model(run_dir) if _check_model_files(run_dir) else None
    csv = resolve_csv(data, cfg)
    df = load_table(csv)
    metrics = run_evaluation(df, cfg, run_dir, str(csv))
    if model is not None:
        pred = model.predict_proba(df).argmax(1)
        fitted = macro_prf(_labels(df), pred, labels=list(range(len(CLASSES))))
        metrics["trained_model_on_data"] = {
            "note": "the run's trained model scored on --data; if that is its training table "
                    "this is a training-set score, not an estimate of generalisation",
            **{k: fitted[k] for k in ("macro_f1", "macro_precision", "macro_recall",
                                      "accuracy")}}
        write_json(run_dir / "metrics.json", metrics)
    for fset, per_model in metrics["results"].items():
        for model, per_protocol in per_model.items():
            cells = ", ".join(f"{p} {r['macro_f1_mean']:.3f}±{r['macro_f1_std']:.3f}"
                              for p, r in per_protocol.items())
            print(f"{fset:7s} {model:12s} macro-F1: {cells}")
    print(f"leakage check flags: {', '.join(metrics['leaky_features']) or 'none'}")
    print(f"wrote {run_dir / 'metrics.json'}, results.md, confusion.png "
          f"({metrics['timing']['wall_seconds']} s)")
    return metrics


def predict(run: str | Path, input_path: str | Path, out: str | Path) -> Path:
    """Class and class probabilities for every row of a table without the label column;
    writes and returns ``OUT/predictions.csv``."""
    single_thread()
    check_run(run, PROJECT, (MODEL,), "predict")
    run_dir, cfg = open_run(run, base=BASE_CONFIG)
    model = _load_model(run_dir)
    src = Path(input_path)
    csv = src if src.is_file() else resolve_csv(input_path, cfg)
    df = load_table(csv, with_label=False)
    probs = model.predict_proba(df)
    out = Path(out)
    rows = [[i, df["Materials Id"].iloc[i], CLASSES[int(p.argmax())],
             *(f"{v:.4f}" for v in p)] for i, p in enumerate(probs)]
    write_csv(out / "predictions.csv",
              ["row", "Materials Id", "predicted", *(f"p_{c}" for c in CLASSES)], rows)
    counts = {c: int((probs.argmax(1) == i).sum()) for i, c in enumerate(CLASSES)}
    print(f"wrote {out / 'predictions.csv'} ({len(df)} rows: {json.dumps(counts)})")
    return out / "predictions.csv"
