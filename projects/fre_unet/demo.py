"""``ensemblab demo --only fre_unet``: synthetic EM, baseline vs FRE, a 3-trial TPE search.

Everything runs on a synthetic ssTEM-like stack (:mod:`ensemblab.synthetic.em`) written in the
real layout, with a tiny SE-U-Net (width 0.125, 32-px tiles) so the whole part takes well
under three minutes on two CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ensemblab.config import load_config  # noqa: E402
from ensemblab.io import save_figure  # noqa: E402
from ensemblab.projects.fre_unet.commands import (  # noqa: E402
    evaluate,
    predict,
    resolve_config,
    train_run,
)
from ensemblab.projects.fre_unet.data import SSTEM_LABEL_MAP, map_labels  # noqa: E402
from ensemblab.projects.fre_unet.magnitude import plot_feature_magnitudes  # noqa: E402
from ensemblab.projects.fre_unet.search import run_search  # noqa: E402
from ensemblab.synthetic.em import make_em_stack  # noqa: E402

DEMO_OVERRIDES = ["data.scale=1.0", "data.tile=32", "data.batch_size=8", "model.width=0.125",
                  "train.epochs=12", "train.lr=0.01", "train.schedule=cosine",
                  "data.split={train: 0-4, val: '5', test: 6-7}"]
VARIANTS = {"baseline": [], "fre": ["model.fre.num_enhanced=1", "model.fre.factor=250"]}


def _magnitudes(run: Path) -> list[tuple[int, float, float]]:
    lines = (run / "feature_magnitude.csv").read_text().splitlines()[1:]
    return [(int(a), float(b), float(c)) for a, b, c in (line.split(",") for line in lines)]


def _prediction_figure(stack: Path, pred_dir: Path, out: Path) -> None:
    raw = np.asarray(Image.open(stack / "raw" / "07.tif"))
    truth = map_labels(np.asarray(Image.open(stack / "labels" / "labels00000007.png")),
                       SSTEM_LABEL_MAP, "labels00000007.png")
    pred = np.asarray(Image.open(pred_dir / "07.png"))
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    for ax, img, title in zip(axes, (raw, truth, pred), ("image", "truth", "FRE prediction")):
        ax.imshow(img, cmap="gray" if title == "image" else "viridis",
                  vmin=0, vmax=255 if title == "image" else 3)
        ax.set_title(title)
        ax.axis("off")
    save_figure(fig, out)


def run_demo(out_dir: Path, device: str = "auto") -> str:
    """Generate data, train baseline and FRE, evaluate, predict, search; return markdown."""
    out_dir = Path(out_dir)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    stack = make_em_stack(out_dir / "synthetic_em", n_slices=8, size=128, seed=0)
    rows, series = [], {}
    for name, extra in VARIANTS.items():
        cfg = load_config(resolve_config("cpu_quick"), DEMO_OVERRIDES + extra)
        run = out_dir / "runs" / name
        if not (run / "checkpoints" / "best.ckpt").is_file():
            train_run(cfg, stack, run, device=device, progress_bar=False)
        m = evaluate(run, device=device)
        rows.append(f"| {name} | {100 * m['miou']:.1f} | "
                    + " | ".join(f"{100 * v:.1f}" for v in m["iou"].values()) + " |")
        series[name] = _magnitudes(run)
    classes = list(m["iou"])
    predict(out_dir / "runs" / "fre", stack / "raw", out_dir / "pred", device=device)
    _prediction_figure(stack, out_dir / "pred", out_dir / "prediction.png")
    plot_feature_magnitudes(series, out_dir / "feature_magnitude.png")
    search_cfg = load_config(resolve_config("cpu_quick"), DEMO_OVERRIDES + [
        "train.epochs=3", "train.track_magnitudes=false"])
    study = run_search(search_cfg, stack, out_dir / "search", space="fre", trials=3,
                       device=device)
    best = study.best_params
    return "\n".join([
        "SE-U-Net (width 0.125) on a synthetic ssTEM-like stack (8 sections of 128 px, "
        "32-px tiles; train 0-4, val 5, test 6-7), 12 epochs each.",
        "",
        "| variant | test mIoU (%) | " + " | ".join(f"IoU {c}" for c in classes) + " |",
        "|" + "---|" * (2 + len(classes)),
        *rows,
        "",
        f"TPE search over (B, X), 3 trials of 3 epochs: best B={best['B']}, X={best['X']:.1f}, "
        f"val mIoU {100 * study.best_value:.1f}% (`fre_unet/search/best_fre.yaml`).",
        "",
        "![prediction](fre_unet/prediction.png)",
        "![feature magnitudes](fre_unet/feature_magnitude.png)",
        "![search](fre_unet/search/search_fre.png)",
    ])
