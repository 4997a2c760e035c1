"""Tables of the RUEL results in the paper's form (Tables 5, 6, 7), as JSON and markdown.

Table 5: per learner / scheme the F1 of eq. 10 (from mPA and mRecall), the IoU of the ranking
class, mIoU and TPI.
Tables 6 and 7: per-class IoU and per-class F1. Scores are in percent as in the paper; a class
absent from both truth and prediction of the test images is shown as ``-`` and left out of means.
:func:`seed_summary` gives mean ± std of those rows over seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ensemblab.io import atomic_write_text, write_json
from ensemblab.metrics.semantic import semantic_scores
from ensemblab.projects.mineral_ruel import ENSEMBLE, ENSEMBLE_MARKERS, PROJECT
from ensemblab.run_record import check_run


def summarise(tallies: dict[str, Any], classes: Sequence[str], rank_index: int | None
              ) -> dict[str, dict[str, Any]]:
    """One row per learner/scheme: ``f1, rank_iou, miou, tpi_s, vote_s, iou[], f1_per_class[]``.

    Args:
        tallies: ``{name: Tally}`` from :func:`~.ruel.evaluate_test` (insertion order kept).
        classes: class names.
        rank_index: class used for ranking (None: ranked by mIoU, reported as mIoU).
    """
    rows = {}
    for name, tally in tallies.items():
        scores = semantic_scores(tally.cm, list(classes))
        rank_iou = scores["miou"] if rank_index is None else scores["iou"][rank_index]
        rows[name] = {
            "f1": scores["f1_score"], "rank_iou": rank_iou, "miou": scores["miou"],
            "mpa": scores["mpa"], "mrecall": scores["mrecall"],
            "pixel_accuracy": scores["pixel_accuracy"],
            "tpi_s": float(np.mean(tally.seconds)), "vote_s": float(np.mean(tally.vote_seconds)),
            "iou": scores["iou"], "f1_per_class": scores["f1"], "n_images": len(tally.seconds),
        }
    return rows


def _pct(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{100 * value:.2f}"


def table5(rows: dict[str, dict[str, Any]], rank_label: str) -> str:
    """Markdown: ``| model | F1 | IoU(rank class) | mIoU | TPI (s) |``."""
    lines = [f"| model | F1 (%) | IoU {rank_label} (%) | mIoU (%) | TPI (s) | voting (s) |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        vote = f"{r['vote_s']:.4f}" if name.startswith("RUEL") else "-"
        lines.append(f"| {name} | {_pct(r['f1'])} | {_pct(r['rank_iou'])} | {_pct(r['miou'])} "
                     f"| {r['tpi_s']:.3f} | {vote} |")
    return "\n".join(lines)


def per_class_table(rows: dict[str, dict[str, Any]], classes: Sequence[str], key: str) -> str:
    """Markdown of per-class ``iou`` (Table 6) or ``f1_per_class`` (Table 7), one row per model.

    Classes absent from every row (not in the test images) are dropped.
    """
    keep = [i for i in range(len(classes))
            if any(not math.isnan(r[key][i]) for r in rows.values())]
    lines = ["| model | " + " | ".join(classes[i] for i in keep) + " |",
             "|---|" + "---|" * len(keep)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_pct(r[key][i]) for i in keep) + " |")
    return "\n".join(lines)


def write_results(out_dir: str | Path, rows: dict[str, dict[str, Any]], classes: Sequence[str],
                  rank_label: str, header: str) -> Path:
    """Write ``results.json`` and ``tables.md`` (Tables 5-7) into ``out_dir``; returns the md."""
    out_dir = Path(out_dir)
    write_json(out_dir / "results.json", {"classes": list(classes), "rank_label": rank_label,
                                          "rows": rows})
    text = "\n\n".join([
        header,
        "### Table 5 style: overall (test split)", table5(rows, rank_label),
        "### Table 6 style: per-class IoU (%)", per_class_table(rows, classes, "iou"),
        "### Table 7 style: per-class F1 (%)", per_class_table(rows, classes, "f1_per_class"),
    ]) + "\n"
    atomic_write_text(out_dir / "tables.md", text)
    return out_dir / "tables.md"


def mean_std(values: Sequence[float], sign: bool = False) -> str:
    """``"mean ± std"`` in percent of fractions (sample std, ddof 1); ``sign``: ``+`` shown."""
    arr = 100 * np.asarray(values, np.float64)
    mean = f"{arr.mean():+.2f}" if sign else f"{arr.mean():.2f}"
    return f"{mean} ± {arr.std(ddof=1) if arr.size > 1 else 0.0:.2f}"


def with_holdout_picks(rows: dict[str, Any], top: str, chosen: str) -> dict[str, Any]:
    """``rows`` plus the two rows of the honest protocol: the learner ranked first on the
    hold-out (``top``) and the scheme chosen on it (``chosen``)."""
    return {**rows, "top-ranked learner (hold-out)": rows[top],
            "chosen scheme (hold-out)": rows[chosen]}


def seed_table(per_seed: Sequence[dict[str, dict[str, float]]], metrics: Sequence[str]
               ) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """``({row: {metric: [per-seed values]}}, paired mIoU gain per seed)`` of the rows present
    in every seed (rows from :func:`with_holdout_picks`); the gain is the chosen scheme's mIoU
    minus the top-ranked learner's."""
    names = [n for n in per_seed[0] if all(n in rows for rows in per_seed)]
    table = {n: {m: [rows[n][m] for rows in per_seed] for m in metrics} for n in names}
    gain = [a - b for a, b in zip(table["chosen scheme (hold-out)"]["miou"],
                                  table["top-ranked learner (hold-out)"]["miou"])]
    return table, gain


def seed_summary(ensemble_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Mean ± std over seeds of RUEL results, one ``ensemble`` output folder per seed.

    Every folder holds ``results.json`` and ``ensemble.json`` of one seed; learners carry the
    same run names in every seed. Besides every learner and scheme, two rows follow the
    honest protocol (nothing chosen on the test split): the learner ranked first on the
    hold-out, and the scheme chosen on the hold-out. Their paired per-seed difference answers
    the paper's claim (the ensemble beats its best learner). Writes ``OUT/seeds.json`` and
    ``OUT/seeds.md``.

    Returns:
        ``{"rows": {name: {metric: [per-seed values]}}, "gain_miou": [...], "sentence": str}``.
    """
    per_seed = []
    for folder in ensemble_dirs:
        folder = Path(folder)
        check_run(folder, PROJECT, (ENSEMBLE,), "seeds", ENSEMBLE_MARKERS)
        results = json.loads((folder / "results.json").read_text())
        manifest = json.loads((folder / "ensemble.json").read_text())
        rows = results["rows"]
        top = Path(manifest["members"][0]).name
        rows = with_holdout_picks(rows, top, manifest["chosen_scheme"])
        per_seed.append((rows, top, manifest["chosen_scheme"], results["rank_label"]))
    metrics = ("f1", "rank_iou", "miou")
    table, gain = seed_table([rows for rows, *_ in per_seed], metrics)
    wins = sum(g > 0 for g in gain)
    sentence = (f"The scheme chosen on the hold-out beats the learner ranked first on the "
                f"hold-out in {wins} of {len(gain)} seeds: mIoU gain {mean_std(gain)} points "
                f"(paired, per seed: {', '.join(f'{100 * g:+.2f}' for g in gain)}).")
    rank_label = per_seed[0][3]
    lines = [f"| model | F1 (%) | IoU {rank_label} (%) | mIoU (%) |", "|---|---|---|---|"]
    for n in table:
        lines.append(f"| {n} | " + " | ".join(mean_std(table[n][m]) for m in metrics) + " |")
    picks = "; ".join(f"seed {i}: {top} / {scheme}" for i, (_, top, scheme, _) in
                      enumerate(per_seed))
    text = "\n\n".join([
        f"## RUEL over {len(per_seed)} seeds (mean ± std, test split)",
        "Top-ranked learner / chosen scheme per seed: " + picks + ".",
        "\n".join(lines), sentence]) + "\n"
    out_dir = Path(out_dir)
    summary = {"ensembles": [str(f) for f in ensemble_dirs], "rows": table,
               "gain_miou": gain, "sentence": sentence}
    write_json(out_dir / "seeds.json", summary)
    atomic_write_text(out_dir / "seeds.md", text)
    return summary
