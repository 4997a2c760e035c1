"""Overlay PNGs: instance outlines drawn on the image (grey or RGB), coloured by score.

Small images (the demo's 128 px crops) are enlarged by a whole factor before drawing, so the
outlines stay one pixel thin on a picture at least ``min_side`` (384) pixels wide.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from scipy import ndimage

from ensemblab.data.images import write_png
from ensemblab.projects.sartorius_cells.structures import Instances, instances_to_idmap


def outline_overlay(image: np.ndarray, inst: Instances, gt_idmap: np.ndarray | None = None,
                    min_side: int = 384) -> np.ndarray:
    """RGB overlay of predicted outlines (colour = score, viridis 0..1).

    Args:
        image: uint8[H, W] grayscale or [H, W, 3] RGB.
        inst: post-processed (non-overlapping) instances of the image.
        gt_idmap: optional true id map; its outlines are drawn in red underneath.
        min_side: enlarge (nearest neighbour, whole factor k) until the longer side reaches it.

    Returns:
        uint8[k H, k W, 3].
    """
    k = max(1, math.ceil(min_side / max(image.shape[:2])))
    rgb = _enlarge(image, k).astype(np.uint8)  # a copy: the outlines are drawn into it
    rgb = rgb if rgb.ndim == 3 else np.repeat(rgb[..., None], 3, axis=-1)
    if gt_idmap is not None:
        rgb[_edges(_enlarge(gt_idmap, k))] = (230, 40, 40)
    idmap = _enlarge(instances_to_idmap(inst), k)
    edges = _edges(idmap)
    if len(inst):
        colours = (colormaps["viridis"](np.clip(inst.scores, 0, 1))[:, :3] * 255).astype(np.uint8)
        rgb[edges] = colours[idmap[edges] - 1]
    return rgb


def _enlarge(array: np.ndarray, k: int) -> np.ndarray:
    return array if k == 1 else np.repeat(np.repeat(array, k, axis=0), k, axis=1)


def _edges(idmap: np.ndarray) -> np.ndarray:
    """bool[H, W]: instance pixels with another id in their 3x3 neighbourhood."""
    grown = ndimage.grey_dilation(idmap, size=3)
    shrunk = ndimage.grey_erosion(idmap, size=3)
    return (idmap > 0) & ((grown != idmap) | (shrunk != idmap))


def save_overlay(path: str | Path, image: np.ndarray, inst: Instances,
                 gt_idmap: np.ndarray | None = None) -> Path:
    """Write :func:`outline_overlay` as a PNG (atomically)."""
    write_png(path, outline_overlay(image, inst, gt_idmap))
    return Path(path)
