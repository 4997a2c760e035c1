"""Demo of part 2: the three-model ensemble on synthetic cells (called by part 1's ``demo.py``).

Given part 1's synthetic dataset and its trained Mask R-CNN run, trains YOLOX, UPerNet full and
UPerNet box-crop for a few steps, fits and scores the three set-ups with the ``ensemble`` verb,
writes a submission of the full ensemble and returns a markdown section.
"""

from __future__ import annotations

import json
from pathlib import Path

from ensemblab.cli import main
from ensemblab.ensemble.manifest import Manifest, Member, save_manifest
from ensemblab.errors import EnsemblabError

QUICK = {
    "yolox": ["yolox_cpu_quick", "train.epochs=4", "train.repeats=2", "train.sizes=[224,256]",
              "predict.size=256", "train.val_every=4"],
    "upernet_full": ["upernet_full_cpu_quick", "model.size=256", "train.crop=128",
                     "train.epochs=3", "train.samples_per_epoch=16", "train.val_every=3"],
    "upernet_crop": ["upernet_crop_cpu_quick", "model.crop=32", "train.epochs=2",
                     "train.samples_per_epoch=256", "train.val_every=2"],
}


def run_ensemble_demo(out_dir: Path, data_dir: Path, maskrcnn_run: Path, split: str,
                      device: str = "auto") -> str:
    """Train the part-2 members briefly, score the set-ups, submit; markdown of the results.

    Args:
        out_dir: demo folder of this project (``<demo root>/sartorius_cells``).
        data_dir: the synthetic Kaggle-layout dataset part 1's demo wrote.
        maskrcnn_run: part 1's trained Mask R-CNN run folder (same split).
        split: the split override part 1 trained with, e.g.
            ``"data.split={val_ids: [a, b]}"``.
        device: ``auto | cpu | cuda``.
    """
    out_dir = Path(out_dir)
    runs = out_dir / "part2_runs"
    for name, (config, *overrides) in QUICK.items():
        if main(["sartorius_cells", "train", "--config", config, "--data", str(data_dir),
                 "--out", str(runs / name), "--device", device, split, *overrides]) != 0:
            raise EnsemblabError(f"demo: training {name} failed")
    manifest = Manifest("demo", "consensus", [
        Member("yolox", "yolox", str(runs / "yolox"), mask_weight=0.0, flips=["none", "h"]),
        Member("maskrcnn", "maskrcnn", str(maskrcnn_run)),
        Member("upernet_crop", "upernet_crop", str(runs / "upernet_crop"), box_weight=0.0),
        Member("upernet_full", "upernet_full", str(runs / "upernet_full"), box_weight=0.0)],
        fusion={"iou_thr": 0.55, "skip_box_thr": 0.02, "window_pad": 0.1},
        thresholds={"default": {"score_thresh": 0.2, "mask_thresh": 0.5, "min_area": 8}})
    path = save_manifest(manifest, out_dir / "manifest.yaml")
    ens_out = out_dir / "ensemble"
    main(["sartorius_cells", "ensemble", "--manifest", str(path), "--data", str(data_dir),
          "--out", str(ens_out), "--device", device])
    main(["sartorius_cells", "submit", "--manifest", str(ens_out / "manifest_fitted.yaml"),
          "--images", str(data_dir), "--out", str(out_dir / "submission_ensemble.csv"),
          "--device", device])
    scores = json.loads((ens_out / "scores.json").read_text())
    lines = ["### Part 2: three-model ensemble (synthetic cells, validation split)", "",
             "| entry | Kaggle score (fit on val) | cross-fitted |", "|---|---|---|"]
    for entry in ("setup1_nms", "setup2_mask_vote", "setup3_consensus", "upernet_full_alone"):
        r = scores.get(entry, {})
        fit, cross = r.get("kaggle_fit"), r.get("kaggle_crossfit")
        lines.append(f"| {entry} | {fit:.3f} | {'' if cross is None else f'{cross:.3f}'} |"
                     if fit is not None else f"| {entry} | - | - |")
    overlays = sorted((ens_out / "overlays").glob("*.png"))
    lines += ["", "Overlays: " + ", ".join(f"[{p.stem}](sartorius_cells/ensemble/overlays/"
                                             f"{p.name})" for p in overlays[:4]),
              "Submission of the ensemble: `sartorius_cells/submission_ensemble.csv` "
              "(validated)."]
    return "\n".join(lines)
