"""The results table: test mIoU mean ± std per variant, beside the paper's numbers."""

from __future__ import annotations

import json
from pathlib import Path

from ensemblab.errors import EnsemblabError
from ensemblab.io import atomic_write_text
from ensemblab.projects.fre_unet import MODEL, PROJECT, SEEDS, SEEDS_MARKERS
from ensemblab.run_record import check_run

# mIoU (%) reported in the paper (Drosophila ssTEM, 4 classes). Only the two numbers stated in
# the paper's abstract/results summary are given here; other cells are left blank rather than
# guessed.
PAPER_MIOU = {"drosophila": {"baseline": 73.98, "fre": 76.95}}

VARIANT_NAMES = {"baseline": "U-Net+SE", "no_deep": "U-Net+SE w/o deep layers",
                 "supervision": "+ SuperVision", "dropout": "+ Dropout (B/C)",
                 "fre": "+ FRE", "fre_fixed": "+ fixed enhancement (Table 3)"}


def results_table(runs: list[str | Path], paper: str = "drosophila",
                  out: str | Path | None = None) -> str:
    """Markdown table from evaluated multi-seed folders (``metrics.json`` with ``miou_mean``).

    The variant is the folder name (``baseline``, ``fre``, ...).
    """
    ref = PAPER_MIOU.get(paper, {})
    classes: list[str] = []
    rows = []
    for run in runs:
        check_run(run, PROJECT, (MODEL, SEEDS), "table", SEEDS_MARKERS)
        path = Path(run) / "metrics.json"
        if not path.is_file():
            raise EnsemblabError(f"{run}: no metrics.json; run `ensemblab fre_unet evaluate`")
        m = json.loads(path.read_text())
        if "miou_mean" not in m:
            m = {"miou_mean": m["miou"], "miou_std": 0.0, "n_seeds": 1, "iou_mean": m["iou"]}
        classes = classes or list(m["iou_mean"])
        name = Path(run).name
        paper_cell = f"{ref[name]:.2f}" if name in ref else "—"
        per_class = " | ".join(f"{100 * m['iou_mean'][c]:.1f}" for c in classes)
        rows.append(f"| {VARIANT_NAMES.get(name, name)} | {paper_cell} | "
                    f"{100 * m['miou_mean']:.2f} ± {100 * m['miou_std']:.2f} | {m['n_seeds']} | "
                    f"{per_class} |")
    head = ("| variant | paper mIoU | ours test mIoU (mean ± std) | seeds | "
            + " | ".join(f"IoU {c}" for c in classes) + " |")
    sep = "|" + "---|" * (4 + len(classes))
    table = "\n".join([head, sep, *rows]) + "\n"
    if out:
        atomic_write_text(out, table)
    return table
