"""Synthetic reflected-light mineral sections: 9 classes, one of them background-like.

The generator imitates what makes the mineral paper hard (Jiang et al., Minerals 2024, sec. 1.2):
a dark resin background that covers about half of each image, particles of eight minerals with
distinct reflectance colours, and *gangue*, a transparent mineral whose mean colour is almost
the background's. Gangue is separable only by its texture (low-frequency mottling) and the thin
bright polishing rim around each grain, so a model must use context, not colour alone.

Images are written in the VOC-like layout of LumenStone (``datasets/README.md``)::

    ROOT/raw/{train,val}/NNN.jpg   RGB uint8
    ROOT/seg/{train,val}/NNN.png   uint8 class index (0 background, 1 gangue, 2..8 minerals)

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_erosion

from ensemblab.io import atomic_path

MINERAL_CLASSES: tuple[str, ...] = (
    "background", "gangue", "chalcopyrite", "galena", "magnetite", "bornite", "pyrrhotite",
    "pyrite", "sphalerite",
)
"""Class names; the index in this tuple is the pixel value in the masks."""

# Mean reflectance colour (RGB) of each class. Gangue differs from background by ~3 grey levels,
# well inside the pixel noise, so colour alone cannot separate them.
_COLOURS = np.array([
    (52, 52, 58), (55, 55, 60), (205, 185, 95), (210, 210, 215), (120, 118, 128),
    (170, 120, 105), (190, 170, 140), (235, 225, 170), (100, 102, 105),
], dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly. [size, size]."""
    coarse = rng.uniform(-1, 1, (size // cell + 2, size // cell + 2)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((size + 2 * cell, size + 2 * cell),
                                                   Image.BILINEAR)
    return np.asarray(img)[cell:cell + size, cell:cell + size]


def _grain_mask(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int):
    """One irregular grain: an ellipse with a radially perturbed boundary. Returns bool [H, W]."""
    cy, cx = rng.uniform(0, size, 2)
    ry, rx = rng.uniform(0.06, 0.16, 2) * size
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    theta = np.arctan2(v, u)
    wobble = 1 + 0.15 * np.sin(3 * theta + rng.uniform(0, 6.3)) \
        + 0.08 * np.sin(5 * theta + rng.uniform(0, 6.3))
    return u * u + v * v < wobble * wobble


def make_mineral_image(rng: np.random.Generator, size: int = 128,
                       n_grains: tuple[int, int] = (6, 11)) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic polished section.

    Args:
        rng: NumPy generator (the only source of randomness).
        size: side of the square image in pixels.
        n_grains: inclusive range of the number of grains.

    Returns:
        ``(image uint8 [size, size, 3], mask uint8 [size, size])`` with values in 0..8.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = np.zeros((size, size), np.uint8)
    rim = np.zeros((size, size), bool)
    n = int(rng.integers(n_grains[0], n_grains[1] + 1))
    # Every image holds gangue, so the hard class is always represented.
    classes = np.concatenate([[1, 1], rng.integers(1, len(MINERAL_CLASSES), n - 2)])
    for cls in classes:
        grain = _grain_mask(rng, yy, xx, size)
        mask[grain] = cls
        if cls == 1:
            inner = binary_erosion(grain, iterations=2)
            rim |= grain & ~inner
    rim &= mask == 1  # later grains may cover part of a rim
    image = _COLOURS[mask].copy()
    mottling = _smooth_noise(rng, size, cell=max(4, size // 16))
    image[mask == 1] += 14 * mottling[mask == 1, None]
    image[rim] += 45
    image *= rng.uniform(0.92, 1.08)  # illumination varies between sections
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_mineral_dataset(root: str | Path, n_train: int = 16, n_val: int = 6, size: int = 128,
                          seed: int = 0) -> Path:
    """Write a synthetic mineral dataset in the LumenStone folder layout.

    Args:
        root: output folder (created).
        n_train: images in ``train``.
        n_val: images in ``val``.
        size: image side in pixels.
        seed: seed of the generator; the same seed gives byte-identical masks.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            image, mask = make_mineral_image(rng, size)
            with atomic_path(root / "raw" / split / f"{i:03d}.jpg") as tmp:
                Image.fromarray(image).save(tmp, quality=95)
            with atomic_path(root / "seg" / split / f"{i:03d}.png") as tmp:
                Image.fromarray(mask).save(tmp)
    return root
