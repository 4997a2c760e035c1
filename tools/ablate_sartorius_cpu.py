"""Re-run the Mask R-CNN CPU ablation of the sartorius_cells README ("What moved the CPU scores").

    python tools/ablate_sartorius_cpu.py [--variants 0 1 2 3 4 5 6] [--threads 1]
        [--out ablate_sartorius] [--overrides KEY=VALUE ...]

Every variant trains the ``cpu_maskrcnn_r18`` member on the demo's synthetic cells (three
types, 128 px, 6 cells per image, grouped 4-fold split, fold 0 validates) and reports the
validation Kaggle score after threshold tuning and the training wall time. Variants 0-4 are
cumulative (0 is the table's baseline, 4 is the ``ensemblab demo`` schedule); 5 and 6 are the
rejected alternatives, each on the base it was tried on. Scores depend on the thread count
(float summation order); the README's figures are for ``--threads 1``, where each variant takes
1.5-8 minutes. ``--overrides`` are applied after every variant's (``train.epochs=1`` makes a
quick check of the script).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ensemblab.projects.sartorius_cells import commands
from ensemblab.projects.sartorius_cells.demo import DEMO_DATA, DEMO_OVERRIDES
from ensemblab.synthetic.cells import write_cells_dataset

BASELINE = ["model.input_norm=fixed", "model.box_head_dim=1024",
            "model.box_batch_size_per_image=128", "model.mask_logit_init=kaiming",
            "train.epochs=12", "train.val_every=12"]
NORM = ["model.input_norm=image"]
LIGHT = ["model.box_head_dim=256", "model.box_batch_size_per_image=64"]
LONGER = ["train.epochs=18", "train.val_every=6"]
INIT = ["model.mask_logit_init=small"]
# (label, images per type, overrides applied after DEMO_OVERRIDES)
VARIANTS = [
    ("0 baseline cpu_maskrcnn_r18 (18 images, 72 steps)", 6, BASELINE),
    ("1 + per-image standardisation", 6, BASELINE + NORM),
    ("2 + box head FC 256, 64 RoIs per image", 6, BASELINE + NORM + LIGHT),
    ("3 + 36 images, 18 epochs (252 steps)", 12, BASELINE + NORM + LIGHT + LONGER),
    ("4 + detectron2 mask-logit init (= demo)", 12, BASELINE + NORM + LIGHT + LONGER + INIT),
    ("5 variant 3 with v2 BatchNorm heads", 12,
     BASELINE + NORM + LIGHT + LONGER + ["model.v2_heads=true"]),
    ("6 variant 2 with AdamW lr 1e-3", 6, BASELINE + NORM + LIGHT + ["train.lr=0.001"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, nargs="*", default=list(range(len(VARIANTS))))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="ablate_sartorius")
    ap.add_argument("--overrides", nargs="*", default=[],
                    help="config overrides applied after every variant's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = []
    for index in args.variants:
        label, per_type, overrides = VARIANTS[index]
        data = write_cells_dataset(out / f"data_{per_type}",
                                   **dict(DEMO_DATA, images_per_type=per_type))
        run = out / f"run_{index}"
        start = time.perf_counter()
        commands.train("cpu_maskrcnn_r18", data, run, "cpu",
                       overrides=DEMO_OVERRIDES + overrides + args.overrides, progress_bar=False)
        seconds = time.perf_counter() - start
        m = commands.evaluate(run, data, "val", "cpu")
        per = ", ".join(f"{k} {v:.3f}" for k, v in m["per_cell_type"].items())
        rows.append(f"| {label} | {m['kaggle_score']:.3f} ({per}) | {seconds:.0f} |")
    print(f"\nthreads {args.threads}; train seconds include threshold tuning\n")
    print("| variant | Kaggle score (val) | train s |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
