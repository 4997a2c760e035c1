"""Colour overlays and comparison figures of class-index label maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ensemblab.io import save_figure  # noqa: E402


def palette(num_classes: int) -> np.ndarray:
    """uint8 [C, 3] colours; class 0 (background) is black, the rest from matplotlib's tab20."""
    colours = (np.array([plt.get_cmap("tab20")(i % 20)[:3] for i in range(num_classes)])
               * 255).astype(np.uint8)
    colours[0] = 0
    return colours


def colorize(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label map [H, W] -> RGB uint8 [H, W, 3]."""
    return palette(num_classes)[np.clip(labels, 0, num_classes - 1)]


def overlay(image: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float = 0.5,
            rows: int = 256) -> np.ndarray:
    """Blend the colour-coded labels over an RGB uint8 image [H, W, 3] (background untouched).

    Works ``rows`` rows at a time, so a 3396x2547 image needs no full-size float copy.
    """
    colours = palette(num_classes).astype(np.float32)
    out = image.copy()
    for start in range(0, image.shape[0], rows):
        part, lab = out[start:start + rows], labels[start:start + rows]
        fg = lab > 0
        blend = part[fg].astype(np.float32) * (1 - alpha)
        blend += alpha * colours[np.clip(lab[fg], 0, num_classes - 1)]
        part[fg] = blend.clip(0, 255).astype(np.uint8)
    return out


def comparison_figure(path: str | Path, image: np.ndarray, truth: np.ndarray,
                      predictions: Sequence[tuple[str, np.ndarray]],
                      class_names: Sequence[str]) -> Path:
    """Save image | truth | predictions side by side (the paper's Fig. 8 layout) to ``path``."""
    panels = [("image", image), ("truth", colorize(truth, len(class_names)))]
    panels += [(name, colorize(p, len(class_names))) for name, p in predictions]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (title, arr) in zip(axes, panels):
        ax.imshow(arr)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    colours = palette(len(class_names)) / 255
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i]) for i in range(len(class_names))]
    fig.legend(handles, class_names, loc="lower center", ncol=min(len(class_names), 9),
               fontsize=7, frameon=False)
    save_figure(fig, path)
    return Path(path)
