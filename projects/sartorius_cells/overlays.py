"""Overlay PNGs: instance outlines drawn on the grayscale image, coloured by score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from scipy import ndimage

from ensemblab.data.images import write_png
from ensemblab.projects.sartorius_cells.postprocess import Instances, instances_to_idmap


def outline_overlay(image: np.ndarray, inst: Instances, gt_idmap: np.ndarray | None = None
                    ) -> np.ndarray:
    """RGB overlay of predicted outlines (colour = score, viridis 0..1).

    Args:
        image: uint8[H, W] grayscale.
        inst: post-processed (non-overlapping) instances of the image.
        gt_idmap: optional true id map; its outlines are drawn in red underneath.

    Returns:
        uint8[H, W, 3].
    """
    rgb = np.repeat(image[..., None], 3, axis=-1).astype(np.uint8)
    if gt_idmap is not None:
        rgb[_edges(gt_idmap)] = (230, 40, 40)
    idmap = instances_to_idmap(inst)
    edges = _edges(idmap)
    if len(inst):
        colours = (colormaps["viridis"](np.clip(inst.scores, 0, 1))[:, :3] * 255).astype(np.uint8)
        rgb[edges] = colours[idmap[edges] - 1]
    return rgb


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
