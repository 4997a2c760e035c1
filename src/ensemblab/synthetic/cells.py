"""Synthetic touching cells of three types, written in the Kaggle Sartorius layout.

The Sartorius competition images are 520x704 grayscale phase-contrast frames of three neuronal
cell types: ``cort`` (~34 medium round cells), ``shsy5y`` (dense small elongated cells, up to
~800 per image) and ``astro`` (few large irregular cells). This generator draws cells with the
same count and size statistics, packed so that many touch, and renders them learnably: each
cell is brighter than the background with a textured interior and a dark one-pixel rim (the
phase-contrast halo), so touching cells stay separable. Everything is deterministic in ``seed``.

Written layout (see ``datasets/README.md``)::

    OUT/train.csv            id,annotation,width,height,cell_type,sample_id (one row per cell,
                             Kaggle RLE: 1-based starts, row-major)
    OUT/train/<id>.png       uint8 grayscale H x W
    OUT/instances/images/<id>/{phase.png,instances_ids.png}   (optional, usiigaci layout)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ensemblab.data.images import write_png
from ensemblab.data.rle import instance_map_to_rles
from ensemblab.io import write_csv

CELL_TYPES = ("shsy5y", "astro", "cort")


@dataclass(frozen=True)
class CellStyle:
    """Shape statistics of one cell type at the 520x704 reference size.

    Attributes:
        count: (low, high) number of cells per reference image.
        radius: (low, high) mean radius in pixels.
        elongation: (low, high) ratio of the long to the short axis.
        roughness: amplitude of the random radial harmonics (0 = ellipse).
        brightness: (low, high) mean cell intensity (background is ~100).
    """

    count: tuple[int, int]
    radius: tuple[float, float]
    elongation: tuple[float, float]
    roughness: float
    brightness: tuple[float, float]


STYLES = {
    "cort": CellStyle((28, 40), (11.0, 15.0), (1.0, 1.4), 0.08, (165, 200)),
    "shsy5y": CellStyle((300, 420), (6.0, 8.5), (1.3, 2.0), 0.10, (150, 185)),
    "astro": CellStyle((8, 14), (26.0, 40.0), (1.0, 1.6), 0.30, (140, 170)),
}


def _cell_mask(rng: np.random.Generator, style: CellStyle, scale: float
               ) -> tuple[np.ndarray, int, int]:
    """One cell shape in its own bounding box: ``(bool[h, w], cy_offset, cx_offset)``."""
    r = rng.uniform(*style.radius) * scale
    elong = rng.uniform(*style.elongation)
    a, b = r * np.sqrt(elong), r / np.sqrt(elong)
    theta = rng.uniform(0, np.pi)
    half = int(np.ceil(max(a, b) * (1 + 3 * style.roughness))) + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    dist = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    phi = np.arctan2(v, u)
    bound = np.ones_like(phi)
    for k in (2, 3, 5):
        bound += style.roughness * rng.normal() / k * 2 * np.cos(k * phi + rng.uniform(0, 6.3))
    return dist <= bound, half, half


def make_cells_image(seed: int, cell_type: str, height: int = 520, width: int = 704,
                     n_cells: int | None = None, cell_scale: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic image of touching cells.

    Args:
        seed: random seed (the image is a pure function of its arguments).
        cell_type: ``shsy5y``, ``astro`` or ``cort``.
        height, width: image size.
        cell_scale: cell size relative to the 520x704 reference (default
            ``sqrt(H*W / (520*704))``, i.e. a downscaled Kaggle frame; tests pass ~0.7 to get
            a crop-like tiny image with few, normal-sized cells).
        n_cells: number of cells to place (default: the type's count range, scaled by area,
            at least 2). A placement hiding more than a third of the new cell is retried, up
            to 4 * n_cells attempts, so a crowded image may hold fewer.

    Returns:
        ``(image uint8[H, W], instance_ids int32[H, W])`` with 0 = background, 1..N = cells.
    """
    if cell_type not in STYLES:
        raise ValueError(f"unknown cell type {cell_type!r}; expected one of {CELL_TYPES}")
    rng = np.random.default_rng([seed, CELL_TYPES.index(cell_type)])
    style = STYLES[cell_type]
    scale = float(np.sqrt(height * width / (520 * 704))) if cell_scale is None else cell_scale
    area_ratio = height * width / (520 * 704)
    n = n_cells if n_cells is not None else max(
        2, int(round(rng.integers(*style.count) * area_ratio)))
    ids = np.zeros((height, width), np.int32)
    image = np.full((height, width), 100.0, np.float32)
    next_id = 1
    for _ in range(4 * n):  # placements that hide too much of earlier cells are retried
        if next_id > n:
            break
        shape, oy, ox = _cell_mask(rng, style, scale)
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        y0, x0 = cy - oy, cx - ox
        ys, xs = np.nonzero(shape)
        ys, xs = ys + y0, xs + x0
        keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        ys, xs = ys[keep], xs[keep]
        free = ids[ys, xs] == 0
        # Touching is fine; a cell more than a third hidden is not drawn at all.
        if free.sum() < max(8, 0.66 * shape.sum()):
            continue
        ys, xs = ys[free], xs[free]
        ids[ys, xs] = next_id
        image[ys, xs] = rng.uniform(*style.brightness)
        next_id += 1
    rim = (ndimage.grey_dilation(ids, size=3) != ids) | (ndimage.grey_erosion(ids, size=3) != ids)
    image += rng.normal(0, 6, image.shape).astype(np.float32) * (ids > 0)
    image = ndimage.gaussian_filter(image, 0.7)
    image[rim & (ids > 0)] = 55.0
    image = ndimage.gaussian_filter(image, 0.5) + rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), _relabel(ids)


def _relabel(ids: np.ndarray) -> np.ndarray:
    """Renumber instances 1..N keeping their order, dropping ids of cells never drawn."""
    present = np.unique(ids)
    present = present[present > 0]
    lut = np.zeros(int(ids.max()) + 1, np.int32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return lut[ids]


def write_cells_dataset(out_dir: str | Path, images_per_type: int = 2, seed: int = 0,
                        height: int = 520, width: int = 704,
                        cell_types: tuple[str, ...] = CELL_TYPES,
                        n_cells: int | None = None, instance_folders: bool = False,
                        cell_scale: float | None = None) -> Path:
    """Write a synthetic Kaggle-layout dataset (``train.csv`` + ``train/<id>.png``).

    Images come in pairs per ``sample_id`` (two frames of one sample), so grouped folds have
    something to group.

    Args:
        out_dir: folder to create/fill.
        images_per_type: images of each cell type.
        seed: base seed.
        height, width: image size (Kaggle: 520 x 704).
        cell_types: which types to draw.
        n_cells: fixed number of cells per image (default: the type's range).
        cell_scale: cell size factor (see :func:`make_cells_image`).
        instance_folders: also write ``instances/images/<id>/{phase.png,instances_ids.png}``.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    (out_dir / "train").mkdir(parents=True, exist_ok=True)
    rows = []
    for t_index, cell_type in enumerate(cell_types):
        for i in range(images_per_type):
            image_id = f"{cell_type}_{seed:03d}_{i:03d}"
            image, ids = make_cells_image(seed * 1000 + t_index * 100 + i, cell_type,
                                          height, width, n_cells, cell_scale)
            write_png(out_dir / "train" / f"{image_id}.png", image)
            if instance_folders:
                folder = out_dir / "instances" / "images" / image_id
                folder.mkdir(parents=True, exist_ok=True)
                write_png(folder / "phase.png", image)
                write_png(folder / "instances_ids.png", ids.astype(np.uint16))
            sample = f"{cell_type}_sample{i // 2}"
            rles, _ = instance_map_to_rles(ids)
            rows += [(image_id, rle, width, height, cell_type, sample) for rle in rles]
    write_csv(out_dir / "train.csv",
              ("id", "annotation", "width", "height", "cell_type", "sample_id"), rows)
    return out_dir
