"""Markdown tables (ours beside the paper's) and confusion-matrix figures from ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ensemblab.io import save_figure  # noqa: E402
from ensemblab.projects.battery_crystal.features import LEAKY_FEATURE_SETS  # noqa: E402
from ensemblab.projects.battery_crystal.models import MODELS  # noqa: E402
from ensemblab.projects.battery_crystal.protocols import PROTOCOLS  # noqa: E402


def _pm(r: dict[str, Any] | None, key: str = "macro_f1") -> str:
    if r is None:
        return "-"
    return f"{r[f'{key}_mean']:.3f} ± {r[f'{key}_std']:.3f}"


def results_markdown(metrics: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The results as markdown: one macro-F1 table per feature set, then the detail table.

    Args:
        metrics: the dictionary written to ``metrics.json``.
        cfg: the resolved config (split counts are quoted in the caption).
    """
    ev = cfg["evaluate"]
    nets = cfg["dnn"]["inner_folds"] * cfg["dnn"]["repeats"]
    names = {name: spec.title for name, spec in MODELS.items()}
    names["dnn"] = f"DNN (nested-selected, {nets}-net CV ensemble)"
    lines = [f"Data: `{metrics['data']}` ({metrics['n_rows']} rows; "
             + ", ".join(f"{c} {n}" for c, n in metrics["class_counts"].items()) + "). "
             "Macro-F1 mean ± std over "
             + ", ".join(PROTOCOLS.get(p).caption.format(**ev) for p in ev["protocols"])
             + ". Paper: one 80/20 split.", ""]
    leaky = ", ".join(metrics["leaky_features"]) or "none"
    lines += [f"Leakage check (all rows): flagged {leaky}.", ""]
    for fset, per_model in metrics["results"].items():
        protocols = [p for p in ev["protocols"] if any(p in r for r in per_model.values())]
        tag = f" — LEAKY: {LEAKY_FEATURE_SETS[fset]}" if fset in LEAKY_FEATURE_SETS else ""
        lines += [f"### Feature set `{fset}`{tag}", "",
                  "| model | paper macro-F1 (80/20) | "
                  + " | ".join(f"ours: {PROTOCOLS.get(p).title.format(**ev)}"
                               for p in protocols) + " |",
                  "|---|---|" + "---|" * len(protocols)]
        for model, per_protocol in per_model.items():
            paper = MODELS.get(model).paper_macro_f1 if model in MODELS else None
            lines.append(f"| {names.get(model, model)} | "
                         f"{'-' if paper is None else f'{paper:.2f}'} | "
                         + " | ".join(_pm(per_protocol.get(p)) for p in protocols) + " |")
        lines.append("")
    lines += ["### Detail (macro precision / recall / F1, accuracy; mean ± std)", "",
              "| feature set | model | protocol | precision | recall | F1 | accuracy | "
              "CPU s |", "|---|---|---|---|---|---|---|---|"]
    for fset, per_model in metrics["results"].items():
        for model, per_protocol in per_model.items():
            for p, r in per_protocol.items():
                lines.append(f"| {fset} | {model} | {p} | {_pm(r, 'macro_precision')} | "
                             f"{_pm(r, 'macro_recall')} | {_pm(r)} | {_pm(r, 'accuracy')} | "
                             f"{r['cpu_seconds']:.1f} |")
    t = metrics["timing"]
    lines += ["", f"Wall time {t['wall_seconds']} s with {t['workers']} worker(s); "
              f"CPU time of all fits {t['cpu_seconds_all_fits']} s. SVM, LR, NB and the two "
              "Voting models share one set of fits per split; their CPU s is that shared total.",
              ""]
    return "\n".join(lines)


def plot_confusions(metrics: dict[str, Any], path: Path, feature_set: str = "honest",
                    protocol: str = "repeated_cv") -> Path | None:
    """Row-normalised confusion matrices, one panel per model, pooled over a protocol's splits.

    Falls back to the first feature set / protocol present. Returns the PNG path (None when
    there are no results).
    """
    results = metrics["results"]
    if not results:
        return None
    per_model = results.get(feature_set) or next(iter(results.values()))
    feature_set = next(f for f, v in results.items() if v is per_model)
    classes = metrics["classes"]
    models = list(per_model)
    fig, axes = plt.subplots(1, len(models), figsize=(3.1 * len(models), 3.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        runs = per_model[model]
        proto = protocol if protocol in runs else next(iter(runs))
        cm = np.array(runs[proto]["confusion"], dtype=float)
        norm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), [c[:5] for c in classes], fontsize=7)
        ax.set_yticks(range(len(classes)), [c[:5] for c in classes], fontsize=7)
        ax.set_title(f"{model}\nF1 {runs[proto]['macro_f1_mean']:.2f} ({proto})", fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
    axes[0][0].set_ylabel("true", fontsize=7)
    fig.suptitle(f"feature set {feature_set}: confusion (rows = truth, normalised)", fontsize=9)
    save_figure(fig, path)
    return path
