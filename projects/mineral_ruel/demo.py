"""``ensemblab demo --only mineral_ruel``: three quick learners and RUEL-3 on synthetic minerals.

Generates the synthetic sections (gangue looks like the background), trains three learners
that differ as the paper's do (encoder, loss, decoder activation, STN), scores them, ranks them
by gangue IoU on the hold-out, builds RUEL-3-PV/WV, predicts with the chosen scheme and draws a
comparison figure. The same three learners are the CI test of the ensemble.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ensemblab.data.images import read_label_png
from ensemblab.jobs import Job, default_jobs, run_parallel, training_progress
from ensemblab.projects.mineral_ruel import commands
from ensemblab.projects.mineral_ruel.data import load_image, split_pairs
from ensemblab.projects.mineral_ruel.inference import Learner
from ensemblab.projects.mineral_ruel.visual import comparison_figure
from ensemblab.synthetic.minerals import write_mineral_dataset

LITE0_UNET = ["model.arch=unet", "model.encoder=efficientnet_lite0", "model.pretrained=true",
              "model.decoder_channels=[64,32,32,16,16]", "train.bf16=true"]
LEARNERS = {  # run name -> overrides of ``synthetic_quick`` (a random-init ResNet-18 Res-UNet)
    "lite0_ce": LITE0_UNET,
    "lite0_dice_relu": [*LITE0_UNET, "loss.name=ce+dice", "model.activation=relu"],
    "res18_focal_stn": ["loss.name=ce+focal", "model.stn=trained"],
}
"""Three deliberately different learners: pretrained EfficientNet-Lite0 U-Nets with CE and
with CE+Dice and a ReLU decoder, and the paper's Res-UNet (ResNet-18 here, random init) with
CE+Focal and a trained STN."""


def run_demo(out_dir: Path, device: str = "auto") -> str:
    """Run the demo into ``out_dir``; returns the markdown section (links relative to its
    parent, i.e. ``mineral_ruel/...``)."""
    out_dir = Path(out_dir)
    data = write_mineral_dataset(out_dir / "data", n_train=16, n_val=6, size=128, seed=0)
    runs, jobs = [], []
    for name, overrides in LEARNERS.items():
        run = out_dir / "runs" / name
        runs.append(str(run))
        if not (run / "train_summary.json").is_file():
            shutil.rmtree(run, ignore_errors=True)  # an interrupted earlier demo run
            jobs.append(Job(name, ["mineral_ruel", "train", "--config", "synthetic_quick",
                                   "--data", str(data), "--out", str(run), "--device", device,
                                   *overrides], out_dir / "runs" / f"{name}.log",
                            training_progress(run)))
    # The learners train side by side, one process per core: faster than one after another.
    run_parallel(jobs, default_jobs(len(jobs)))
    for run in runs:
        commands.evaluate(run, None, "val", device)
    ens_dir = out_dir / "ruel"
    manifest = commands.ensemble(runs, None, str(ens_dir), "iou:gangue", "val", device)
    commands.predict(str(ens_dir), str(data / "raw" / "val"), str(out_dir / "predictions"),
                     device=device)
    figure = _figure(out_dir, data, manifest, device)
    tables = (ens_dir / "tables.md").read_text()
    rows = json.loads((ens_dir / "results.json").read_text())["rows"]
    best_single = max((n for n in rows if not n.startswith("RUEL")), key=lambda n: rows[n]["miou"])
    chosen = manifest["chosen_scheme"]
    return "\n".join([
        "Synthetic polished sections (16 train images of 128 px, 4 held out for ranking; 6 test "
        "images), 9 classes, gangue nearly background-coloured. Three learners "
        "(`synthetic_quick`, 16 epochs, 1 frozen): EfficientNet-Lite0 U-Nets (ImageNet "
        "weights) with CE and with CE+Dice, and a ResNet-18 Res-UNet (random init) with "
        "CE+Focal and a trained STN, ranked by gangue IoU on the hold-out.",
        "",
        f"Best single learner on the test images: **{best_single}** mIoU "
        f"{100 * rows[best_single]['miou']:.2f}; scheme chosen on the hold-out: **{chosen}** "
        f"mIoU {100 * rows[chosen]['miou']:.2f} (test).",
        "",
        tables.split("\n", 2)[2] if tables.startswith("## ") else tables,
        "",
        f"![image, truth, best learner, {chosen}](mineral_ruel/{figure.name})",
        "",
        "Predictions (class-index PNGs + overlays): `mineral_ruel/predictions/`.",
    ])


def _figure(out_dir: Path, data: Path, manifest: dict, device: str) -> Path:
    """Image | truth | best-ranked learner | chosen RUEL scheme for the first test image."""
    image_path, mask_path = split_pairs(data, "val")[0]
    image = load_image(image_path)
    truth = read_label_png(mask_path)
    best = Learner(manifest["members"][0], device)
    single = best.predict(image)[0]
    voted = read_label_png(out_dir / "predictions" / f"{image_path.stem}.png")
    return comparison_figure(out_dir / "comparison.png", image, truth,
                             [(best.name, single), (manifest["chosen_scheme"], voted)],
                             best.classes)
