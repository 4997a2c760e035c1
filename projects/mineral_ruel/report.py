"""Tables of the RUEL results in the paper's form (Tables 5, 6, 7), as JSON and markdown.

Table 5: per learner / scheme the F1 of eq. 10 (from mPA and mRecall), the IoU of the ranking
class, mIoU and TPI.
Tables 6 and 7: per-class IoU and per-class F1. Scores are in percent as in the paper; a class
absent from both truth and prediction of the test images is shown as ``-`` and left out of means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ensemblab.io import atomic_write_text, write_json
from ensemblab.metrics.semantic import semantic_scores


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
