"""Synthetic EM-like sections in the layout of the Drosophila ssTEM stack.

Each section is a Voronoi tiling of "neurons" whose borders are membranes, with dark textured
mitochondria inside some cells, small very dark synapses on some membranes, a few glia cells and
light intracellular background. The files use the real dataset's layout and grey codes
(Gerhard et al. 2013, ``stack1``)::

    root/raw/00.tif ..                      uint8 grayscale sections
    root/labels/labels00000000.png ..       merged labels: 0/32/64/96 membrane (orientation),
                                            128 membrane junction, 159 glia, 191 mitochondria,
                                            223 synapse, 255 intracellular

so the same loader (and the same pinned 4-class mapping) reads both. Deterministic given the
seed; the classes differ in intensity and texture, so a small U-Net learns them in a minute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

from ensemblab.io import atomic_path

MEMBRANE_CODES = (0, 32, 64, 96)
JUNCTION, GLIA, MITO, SYNAPSE, INTRA = 128, 159, 191, 223, 255


def _section(rng: np.random.Generator, size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """One section: ``(raw uint8[size, size], label codes uint8[size, size])``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    seeds = rng.uniform(0, size, size=(cells, 2)).astype(np.float32)
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    order = np.argsort(d, axis=-1)
    cell = order[..., 0]
    gap = np.sqrt(np.take_along_axis(d, order[..., 1:2], -1)[..., 0]) - np.sqrt(
        np.take_along_axis(d, order[..., 0:1], -1)[..., 0])
    third = np.sqrt(np.take_along_axis(d, order[..., 2:3], -1)[..., 0]) - np.sqrt(
        np.take_along_axis(d, order[..., 0:1], -1)[..., 0])
    thickness = max(1.5, size / 90)
    membrane = gap < thickness
    junction = membrane & (third < 1.5 * thickness)

    labels = np.full((size, size), INTRA, np.uint8)
    glia_cells = rng.choice(cells, size=max(1, cells // 8), replace=False)
    labels[np.isin(cell, glia_cells)] = GLIA
    # Membrane orientation code from the direction between the two nearest seeds.
    a, b = seeds[order[..., 0]], seeds[order[..., 1]]
    angle = np.mod(np.arctan2(b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]), np.pi)
    codes = np.asarray(MEMBRANE_CODES, np.uint8)[np.minimum((angle / np.pi * 4).astype(int), 3)]
    labels[membrane] = codes[membrane]
    labels[junction] = JUNCTION

    raw = np.where(labels == GLIA, 150.0, 185.0).astype(np.float32)
    raw += 12 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0)
    raw[membrane] = 55.0
    # Mitochondria: ellipses well inside a cell, dark with a stripe texture (cristae).
    inner = ~ndimage.binary_dilation(membrane, iterations=int(2 * thickness))
    for _ in range(max(2, cells // 2)):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(0.04, 0.08, 2) * size
        theta = rng.uniform(0, np.pi)
        u = ((yy - cy) * np.cos(theta) + (xx - cx) * np.sin(theta)) / ry
        v = (-(yy - cy) * np.sin(theta) + (xx - cx) * np.cos(theta)) / rx
        blob = (u**2 + v**2 < 1) & inner
        labels[blob] = MITO
        raw[blob] = 105.0 + 25.0 * np.sin(u[blob] * 9.0)
    # Synapses: short, very dark, dotted thickenings on a membrane.
    on_membrane = np.flatnonzero(membrane & ~junction)
    for idx in rng.choice(on_membrane, size=max(1, cells // 4), replace=False):
        cy, cx = divmod(int(idx), size)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < (0.03 * size) ** 2) & ~inner
        labels[blob] = SYNAPSE
        raw[blob] = 25.0 + 20.0 * ((yy[blob] + xx[blob]) % 4 < 2)
    raw = ndimage.gaussian_filter(raw, 0.8) + rng.normal(0, 8, raw.shape)
    return np.clip(raw, 0, 255).astype(np.uint8), labels


def make_em_stack(root: str | Path, n_slices: int = 8, size: int = 128, cells: int = 12,
                  seed: int = 0) -> Path:
    """Write a synthetic ssTEM-like stack and return ``root``.

    Args:
        root: output folder (``raw/`` and ``labels/`` are created in it).
        n_slices: number of sections (``00.tif`` ..).
        size: section height and width in pixels.
        cells: Voronoi cells per section (more cells = more membrane).
        seed: the only source of randomness; the same seed writes identical files.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "raw").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(n_slices):
        raw, labels = _section(rng, size, cells)
        with atomic_path(root / "raw" / f"{i:02d}.tif") as tmp:
            tifffile.imwrite(tmp, raw)
        with atomic_path(root / "labels" / f"labels{i:08d}.png") as tmp:
            Image.fromarray(labels, mode="L").save(tmp)
    return root
