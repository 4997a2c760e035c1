"""``ensemblab demo`` part: synthetic cells of three types, quick Mask R-CNN, score, submission.

When part 2 is installed (``demo_part2``), its ensemble demo runs on the same data and run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
from pathlib import Path

from ensemblab.config import load_config
from ensemblab.ensemble.submission import validate_submission
from ensemblab.projects.sartorius_cells.cli import resolve_config
from ensemblab.projects.sartorius_cells.workflow import (
    evaluate_run,
    image_sizes_from_folder,
    predict_run,
    submit_run,
    train_run,
)
from ensemblab.synthetic.cells import write_cells_dataset

PART2_DEMO = "ensemblab.projects.sartorius_cells.demo_part2"
SPLIT_OVERRIDE = "data.split.k=4"
# The demo's synthetic cells: 36 crop-like 128 px images of three types, 6 cells each.
DEMO_DATA = {"images_per_type": 12, "height": 128, "width": 128, "n_cells": 6,
             "cell_scale": 0.7}
# ~4 CPU minutes: 36 crop-like 128 px images (6 cells each), 18 epochs of 14 steps.
DEMO_OVERRIDES = ["model.image_size=128", "train.epochs=18", "train.val_every=6", SPLIT_OVERRIDE,
                  "train.warmup_steps=5", "model.box_detections_per_img=60",
                  "model.rpn_post_nms_top_n_test=200", "model.rpn_pre_nms_top_n_test=400",
                  "postprocess.search.min_area=[8]", "postprocess.search.mask_thresh=[0.5]"]


def run_demo(out_dir: Path, device: str = "auto") -> str:
    """Generate data, train, evaluate against the untrained model, predict, submit.

    Returns:
        A markdown section; figure links are relative to the demo root (``sartorius_cells/...``).
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    data = write_cells_dataset(out_dir / "data", **DEMO_DATA)
    run = out_dir / "run"
    cfg = load_config(resolve_config("cpu_quick"), DEMO_OVERRIDES)
    train_run(cfg, data, run, device, progress_bar=False)
    evaluate_run(run, data, "val", device)
    evaluate_run(run, data, "val", device, untrained=True)
    trained = json.loads((run / "metrics.json").read_text())
    untrained = json.loads((run / "metrics_untrained.json").read_text())
    predict_run(run, data / "train", out_dir / "pred", device, n_overlays=2)
    submission = out_dir / "submission.csv"
    submit_run(run, data / "train", submission, device)
    problems = validate_submission(submission, image_sizes_from_folder(data / "train"))
    overlays = sorted((out_dir / "pred" / "overlays").glob("*.png"))
    per_type = ", ".join(f"{k} {v:.3f}" for k, v in trained["per_cell_type"].items())
    lines = [
        "Mask R-CNN member (ResNet-18 FPN, cpu_quick schedule at 128 px, ~250 steps) on "
        "synthetic touching cells of three types (36 images of 128x128, 6 cells each; "
        f"grouped validation fold of {trained['n_images']} images).",
        "",
        "| model | Kaggle score (val) | COCO mask AP |",
        "|---|---|---|",
        f"| untrained (same init) | {untrained['kaggle_score']:.3f} | "
        f"{untrained['coco_mask_ap']:.3f} |",
        f"| trained | {trained['kaggle_score']:.3f} | {trained['coco_mask_ap']:.3f} |",
        "",
        f"Per cell type: {per_type}. Submission `sartorius_cells/submission.csv`: "
        f"{'valid' if not problems else f'{len(problems)} problems'} "
        f"(validate-submission). Total {time.perf_counter() - start:.0f} s.",
        "",
    ]
    lines += [f"![overlay](sartorius_cells/pred/overlays/{p.name})" for p in overlays]
    if importlib.util.find_spec(PART2_DEMO) is not None:
        part2 = importlib.import_module(PART2_DEMO)
        lines += ["", part2.run_ensemble_demo(out_dir, data, run, SPLIT_OVERRIDE, device)]
    return "\n".join(lines)
