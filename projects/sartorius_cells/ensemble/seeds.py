"""Mean ± std over seeds of several ``ensemble`` output folders (``sartorius_cells seeds``).

Each folder is one seed's ``ensemble`` run (``scores.json``, ``manifest_members.yaml``); a seed
may hold out its own images (``data.split.test_ids``), so the held-out column pools different
images per seed. The std is the sample std (ddof 1), as in ``mineral_ruel seeds``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ensemblab.errors import ConfigError
from ensemblab.io import atomic_write_text, write_json
from ensemblab.projects.sartorius_cells import ENSEMBLE, PROJECT
from ensemblab.projects.sartorius_cells.ensemble.consensus import read_manifest
from ensemblab.run_record import check_run

SETUPS = {"setup1_nms": "(1) Mask R-CNN + NMS",
          "setup2_mask_vote": "(2) Mask R-CNNs, flips, box fusion + mask vote",
          "setup3_consensus": "(3) consensus: YOLOX + Mask R-CNNs find, all masks vote"}
COLUMNS = (("kaggle_fit", "fitted"), ("kaggle_crossfit", "cross-fitted"),
           ("kaggle_heldout", "held out"))


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``"0.312 ± 0.004"`` (sample std, ddof 1; 0 for one value); ``-`` for no values."""
    if not values:
        return "-"
    arr = np.asarray(values, np.float64)
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1) if arr.size > 1 else 0.0:.{digits}f}"


def _split_ids(folder: Path) -> tuple[list[str], list[str]]:
    """The seed's validation and held-out images (``data.split.val_ids`` and ``test_ids`` of
    its first member); empty lists when its members' configs are not there."""
    path = folder / "manifest_members.yaml"
    if not path.is_file():
        return [], []
    manifest = read_manifest(path)
    config = manifest.run_path(manifest.members[0]) / "config.yaml"
    if not config.is_file():
        return [], []
    split = yaml.safe_load(config.read_text())["data"]["split"]
    return ([str(i) for i in split.get("val_ids") or []],
            [str(i) for i in split.get("test_ids") or []])


def seed_summary(ensemble_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Mean ± std over seeds of the set-ups, each member alone and each member's training time.

    Writes ``OUT/seeds.json`` and ``OUT/seeds.md``.

    Returns:
        ``{"setups": {entry: {column: [per-seed]}}, "members": {...}, "sentence": str,
        "text": the markdown of seeds.md}``.

    Raises:
        ConfigError: a folder that is not a finished ``sartorius_cells ensemble`` output.
    """
    per_seed = []
    val, held = [], []
    for folder in map(Path, ensemble_dirs):
        check_run(folder, PROJECT, (ENSEMBLE,), "seeds", {"scores.json": ENSEMBLE})
        if not (folder / "scores.json").is_file():
            raise ConfigError(f"{folder}: no scores.json (the ensemble has not finished)")
        per_seed.append(json.loads((folder / "scores.json").read_text()))
        ids = _split_ids(folder)
        val.append(ids[0])
        held.append(ids[1])

    def values(entry: str, key: str) -> list[float]:
        return [s[entry][key] for s in per_seed if key in s.get(entry, {})]

    setups = {e: {k: values(e, k) for k, _ in COLUMNS} for e in SETUPS}
    names = list(per_seed[0]["train_seconds"])
    members = {n: {"alone_fit": values(f"{n}_alone", "kaggle_fit"),
                   "alone_heldout": values(f"{n}_alone", "kaggle_heldout"),
                   "masks_on_fused_boxes": values(f"{n}_masks_on_fused_boxes", "kaggle_fit"),
                   "box_AP50": values(f"{n}_boxes", "box_AP50"),
                   "train_minutes": [s["train_seconds"][n] / 60 for s in per_seed
                                     if s["train_seconds"].get(n) is not None]}
               for n in names}
    lines = ["| set-up | " + " | ".join(label for _, label in COLUMNS) + " |",
             "|---|---:|---:|---:|"]
    for entry, label in SETUPS.items():
        lines.append(f"| {label} | " + " | ".join(mean_std(setups[entry][k])
                                                  for k, _ in COLUMNS) + " |")
    lines += ["", "| member | alone, fitted | alone, held out | masks on the fused boxes "
                  "| box AP50 | training (min) |", "|---|---:|---:|---:|---:|---:|"]
    for n, m in members.items():
        lines.append(f"| {n} | " + " | ".join(mean_std(m[k]) for k in (
            "alone_fit", "alone_heldout", "masks_on_fused_boxes", "box_AP50")) +
            f" | {mean_std(m['train_minutes'], 1)} |")
    gain = {k: [a - b for a, b in zip(setups["setup3_consensus"][k], setups["setup1_nms"][k])]
            for k, _ in COLUMNS}
    wins = sum(g > 0 for g in gain["kaggle_fit"])
    sentence = (f"Set-up 3 beats set-up 1 in {wins} of {len(per_seed)} seeds (fitted); gain "
                + ", ".join(f"{label} {mean_std(gain[k])}" for k, label in COLUMNS
                            if gain[k]) + ".")
    def folds(groups: list[list[str]]) -> str:
        return "; ".join(f"{Path(folder).name}: {', '.join(ids) if ids else 'none'}"
                         for folder, ids in zip(ensemble_dirs, groups))

    text = "\n\n".join([
        f"## The ensemble over {len(per_seed)} seeds (Kaggle score, mean ± std)",
        f"Validation images per seed: {folds(val)}.", f"Held-out images per seed: {folds(held)}.",
        "\n".join(lines), sentence]) + "\n"
    summary = {"ensembles": [str(f) for f in ensemble_dirs], "validation": val,
               "held_out": held,
               "setups": setups, "members": members, "gain_setup3_over_setup1": gain,
               "sentence": sentence}
    out_dir = Path(out_dir)
    write_json(out_dir / "seeds.json", summary)
    atomic_write_text(out_dir / "seeds.md", text)
    return {**summary, "text": text}
