"""``ensemblab demo`` part: synthetic cells of three types, the four members trained briefly by
one ``ensemble`` call, the three set-ups scored, and submissions of Mask R-CNN and the ensemble.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from pathlib import Path

from ensemblab.ensemble.manifest import Manifest, Member, save_manifest
from ensemblab.ensemble.submission import validate_submission
from ensemblab.jobs import default_jobs
from ensemblab.projects.sartorius_cells import commands
from ensemblab.projects.sartorius_cells.data import image_sizes_from_folder
from ensemblab.synthetic.cells import write_cells_dataset

SPLIT_OVERRIDE = "data.split.k=4"
# The demo's synthetic cells: 36 crop-like 128 px images of three types, 6 cells each.
DEMO_DATA = {"images_per_type": 12, "height": 128, "width": 128, "n_cells": 6,
             "cell_scale": 0.7}
# Mask R-CNN, ~3 minutes of one CPU core: 12 epochs of 14 steps at 128 px.
DEMO_OVERRIDES = ["model.image_size=128", "train.epochs=12", "train.val_every=6", SPLIT_OVERRIDE,
                  "train.warmup_steps=5", "model.box_detections_per_img=60",
                  "model.rpn_post_nms_top_n_test=200", "model.rpn_pre_nms_top_n_test=400",
                  "postprocess.search.min_area=[8]", "postprocess.search.mask_thresh=[0.5]"]
# (name, kind, config and overrides, box weight, mask weight, flips)
DEMO_MEMBERS = [
    ("maskrcnn", "maskrcnn", ["cpu_maskrcnn_r18", *DEMO_OVERRIDES], 1.0, 1.0, ["none", "h"]),
    ("yolox", "yolox", ["cpu_yolox_nano", SPLIT_OVERRIDE, "train.epochs=8", "train.repeats=4",
                        "train.sizes=[224,256]", "predict.size=256", "train.val_every=4"],
     1.0, 0.0, ["none", "h"]),
    ("upernet_crop", "upernet_crop", ["cpu_upernet_crop_lite0", SPLIT_OVERRIDE, "model.crop=64",
                                      "train.epochs=4", "train.samples_per_epoch=384",
                                      "train.val_every=4"], 0.0, 1.0, ["none"]),
    ("upernet_full", "upernet_full", ["cpu_upernet_full_lite0", SPLIT_OVERRIDE, "model.size=256",
                                      "train.crop=128", "train.epochs=10",
                                      "train.samples_per_epoch=32", "train.val_every=5"],
     0.0, 1.0, ["none"]),
]
SETUPS = (("setup1_nms", "(1) Mask R-CNN + NMS"),
          ("setup2_mask_vote", "(2) Mask R-CNN + flip TTA, box fusion + mask vote"),
          ("setup3_consensus", "(3) YOLOX + Mask R-CNN + UPerNet consensus"))


def demo_manifest(runs: Path) -> Manifest:
    """The demo's members as a manifest: runs under ``runs``, configs with their overrides."""
    return Manifest("demo", "consensus", [
        Member(name, kind, str(runs / name), box_weight=box, mask_weight=mask, flips=flips,
               config=shlex.join(config))
        for name, kind, config, box, mask, flips in DEMO_MEMBERS],
        fusion={"iou_thr": 0.55, "skip_box_thr": 0.02, "window_pad": 0.1},
        thresholds={"default": {"score_thresh": 0.2, "mask_thresh": 0.5, "min_area": 8}})


def run_demo(out_dir: Path, device: str = "auto") -> str:
    """Generate data, train the members and score the set-ups, compare Mask R-CNN with its
    untrained initialisation, predict, submit.

    Returns:
        A markdown section; figure links are relative to the demo root (``sartorius_cells/...``).
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    data = write_cells_dataset(out_dir / "data", **DEMO_DATA)
    manifest = save_manifest(demo_manifest(out_dir / "runs"), out_dir / "manifest.yaml")
    ens_out = out_dir / "ensemble"
    # The members train side by side, one process per core: faster than one after another.
    scores = commands.ensemble(manifest, data, ens_out, device, progress_bar=False,
                               jobs=default_jobs(len(DEMO_MEMBERS)))
    run = out_dir / "runs" / "maskrcnn"
    trained = commands.evaluate(run, data, "val", device)
    untrained = commands.evaluate(run, data, "val", device, untrained=True)
    test = _test_folder(data / "train", out_dir / "test")
    commands.predict(run, test, out_dir / "pred", device, n_overlays=2)
    sizes = image_sizes_from_folder(test)
    submission = out_dir / "submission.csv"
    commands.submit_run(run, test, submission, device)
    problems = validate_submission(submission, sizes)
    commands.submit_manifest(ens_out / "manifest_fitted.yaml", test,
                             out_dir / "submission_ensemble.csv", device)
    per_type = ", ".join(f"{k} {v:.3f}" for k, v in trained["per_cell_type"].items())
    lines = [
        "Four members trained briefly on synthetic touching cells of three types (36 images "
        "of 128x128, 6 cells each; grouped validation fold of "
        f"{trained['n_images']} images), by one `ensemble` call: Mask R-CNN (ResNet-18 FPN, "
        "random init, 168 steps), YOLOX-nano (192 steps), UPerNet crop and full-image "
        "(EfficientNet-Lite0, ImageNet weights, 48 and 80 steps), trained side by side as "
        "single-thread processes.",
        "",
        "| Mask R-CNN alone | Kaggle score (val) | COCO mask AP |",
        "|---|---|---|",
        f"| untrained (same init) | {untrained['kaggle_score']:.3f} | "
        f"{untrained['coco_mask_ap']:.3f} |",
        f"| trained | {trained['kaggle_score']:.3f} | {trained['coco_mask_ap']:.3f} |",
        "",
        f"Per cell type: {per_type}. Submission for a 6-image test folder "
        "(`sartorius_cells/test`, two images per type) `sartorius_cells/submission.csv`: "
        f"{'valid' if not problems else f'{len(problems)} problems'} (validate-submission).",
        "",
        *_setup_table(scores),
        "",
    ]
    lines += [f"![overlay](sartorius_cells/pred/overlays/{p.name})"
              for p in sorted((out_dir / "pred" / "overlays").glob("*.png"))]
    overlays = sorted((ens_out / "overlays").glob("*.png"))
    lines += ["", "Ensemble overlays: " + ", ".join(
        f"[{p.stem}](sartorius_cells/ensemble/overlays/{p.name})" for p in overlays[:4]),
        "Submission of the ensemble: `sartorius_cells/submission_ensemble.csv` (validated). "
        f"Total {time.perf_counter() - start:.0f} s."]
    return "\n".join(lines)


def _test_folder(images: Path, test: Path, per_type: int = 2) -> Path:
    """A Kaggle-like test folder: the first ``per_type`` images of each cell type."""
    test.mkdir(parents=True, exist_ok=True)
    for cell_type in ("astro", "cort", "shsy5y"):
        for path in sorted(images.glob(f"{cell_type}_*.png"))[:per_type]:
            shutil.copyfile(path, test / path.name)
    return test


def _setup_table(scores: dict) -> list[str]:
    """The three set-ups, fitted and cross-fitted, with the gain over set-up 1."""
    base = scores["setup1_nms"]
    lines = ["| set-up (validation split) | Kaggle score, fitted on val | gain over (1) | "
             "cross-fitted | gain over (1) |", "|---|---|---|---|---|"]
    for entry, label in SETUPS:
        r = scores[entry]
        lines.append(f"| {label} | {r['kaggle_fit']:.3f} | "
                     f"{r['kaggle_fit'] - base['kaggle_fit']:+.3f} | "
                     f"{r['kaggle_crossfit']:.3f} | "
                     f"{r['kaggle_crossfit'] - base['kaggle_crossfit']:+.3f} |")
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in scores["train_seconds"].items()
                        if v is not None)
    return [*lines, "", f"Member training time: {seconds}. Scores: "
            "`sartorius_cells/ensemble/scores.csv`; " + json.dumps(
                {k: round(v["kaggle_fit"], 3) for k, v in scores.items()
                 if k.endswith("_alone")}) + " (members alone)."]
