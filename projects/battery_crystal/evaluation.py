"""Run every (feature set, model, protocol) combination and write the results.

Outputs (in the run folder): ``metrics.json`` (``results[feature_set][model][protocol]`` with
``macro_f1_mean``, ``macro_f1_std``, ``macro_precision_mean``, ``macro_recall_mean``,
``accuracy_mean`` and the per-split scores), ``results.md`` (our numbers beside the paper's)
and ``confusion.png`` (confusion matrices pooled over the repeated 5-fold test folds).
The combinations are independent, so they run in ``workers`` processes (joblib).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from ensemblab.errors import ConfigError
from ensemblab.io import atomic_write_text, write_json
from ensemblab.projects.battery_crystal.features import CLASSES, FEATURE_SETS, LABEL
from ensemblab.projects.battery_crystal.models import MODELS, build_model
from ensemblab.projects.battery_crystal.protocols import PROTOCOLS, evaluate_model, make_splits
from ensemblab.projects.battery_crystal.report import plot_confusions, results_markdown
from ensemblab.tabular.baselines import VOTING_TRIO
from ensemblab.tabular.leakage import leakage_report

LEAK_CHECK_COLUMNS = ("Formula", "Spacegroup", "Formation Energy (eV)", "E Above Hull (eV)",
                      "Band Gap (eV)", "Nsites", "Density (gm/cc)", "Volume",
                      "Has Bandstructure", "Formula units", "Volume per atom")


def _one(feature_set: str, model: str, outputs: list[str] | None, protocol: str,
         df: pd.DataFrame, y: np.ndarray, groups: np.ndarray,
         cfg: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    import torch

    torch.set_num_threads(1)  # one core per worker; the tiny matmuls gain nothing from more
    ev = cfg["evaluate"]
    splits = make_splits(protocol, y, groups, folds=ev["folds"], repeats=ev["repeats"],
                         holdout_seeds=ev["holdout_seeds"], seed=cfg["seed"])
    result = evaluate_model(lambda i: build_model(model, feature_set, cfg, seed=cfg["seed"] + i),
                            df, y, splits, len(CLASSES),
                            groups=groups if PROTOCOLS.get(protocol).grouped else None,
                            outputs=outputs)
    if outputs is None:
        return [(feature_set, model, protocol, result)]
    return [(feature_set, name, protocol, result[name]) for name in outputs]


def run_evaluation(df: pd.DataFrame, cfg: dict[str, Any], out_dir: Path,
                   data_name: str) -> dict[str, Any]:
    """Evaluate the configured models / protocols / feature sets on a labelled table.

    Args:
        df: validated table with derived columns (:func:`features.load_table`).
        cfg: resolved config (``evaluate`` section chooses models, protocols, feature sets).
        out_dir: where ``metrics.json``, ``results.md`` and ``confusion.png`` go.
        data_name: how the data is named in the outputs.

    Returns:
        The metrics dictionary written to ``metrics.json``.
    """
    ev = cfg["evaluate"]
    for key, registry in (("models", MODELS), ("protocols", PROTOCOLS)):
        for name in ev[key]:
            if name not in registry:
                raise ConfigError(f"evaluate.{key}: {registry.unknown_message(name)}")
    bad = [v for v in ev["feature_sets"] if v not in FEATURE_SETS]
    if bad:
        raise ConfigError(f"evaluate.feature_sets: unknown {bad}; "
                          f"choose from {', '.join(FEATURE_SETS)}")
    y = np.array([CLASSES.index(v) for v in df[LABEL]], dtype=np.int64)
    groups = df["Formula"].to_numpy()
    leaks = leakage_report(df, LABEL, [c for c in LEAK_CHECK_COLUMNS if c in df.columns])
    # SVM, LR, NB and the Voting models share one set of fits per split (VotingTrio)
    trio = [m for m in ev["models"] if m in VOTING_TRIO]
    units = [(m, None) for m in ev["models"] if m not in VOTING_TRIO]
    units += [("voting_trio", trio)] if trio else []
    jobs = [(f, m, outs, p) for f in ev["feature_sets"] for m, outs in units
            for p in ev["protocols"]]
    # the DNN jobs are the longest: start them first so the workers finish together
    jobs.sort(key=lambda j: j[1] != "dnn")
    wall, cpu = time.perf_counter(), time.process_time()
    workers = int(ev["workers"]) or (os.cpu_count() or 1)
    done = [r for rs in Parallel(n_jobs=workers)(
        delayed(_one)(f, m, outs, p, df, y, groups, cfg) for f, m, outs, p in jobs) for r in rs]
    results: dict[str, dict[str, dict[str, Any]]] = {
        f: {m: {} for m in ev["models"]} for f in ev["feature_sets"]}
    for f, m, p, r in done:
        results[f][m][p] = r
    metrics = {
        "data": data_name, "n_rows": int(len(df)), "classes": list(CLASSES),
        "class_counts": {c: int((y == i).sum()) for i, c in enumerate(CLASSES)},
        "leakage": [vars(r) for r in leaks],
        "leaky_features": [r.feature for r in leaks if r.leaky],
        "results": results,
        "timing": {"wall_seconds": round(time.perf_counter() - wall, 1),
                   "workers": workers,
                   "cpu_seconds_main_process": round(time.process_time() - cpu, 1),
                   "cpu_seconds_all_fits": round(sum(
                       r["cpu_seconds"] for _, m, _, r in done
                       if m not in trio or m == trio[0]), 1)},
    }
    write_json(out_dir / "metrics.json", metrics)
    atomic_write_text(out_dir / "results.md", results_markdown(metrics, cfg))
    plot_confusions(metrics, out_dir / "confusion.png")
    return metrics
