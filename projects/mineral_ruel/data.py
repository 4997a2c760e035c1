"""Mineral data: VOC-like folders, validated loading, rescaling, tiles, the ranking hold-out.

Layout (LumenStone and :mod:`ensemblab.synthetic.minerals`)::

    ROOT/raw/{train,val}/NAME.jpg    RGB image
    ROOT/seg/{train,val}/NAME.png    uint8 class index, same size

The paper tiles its images to 512x512 (sec. 2.2). Here images are first rescaled by ``scale``
(bilinear for images, nearest-neighbour for masks, so no invented labels) and then cut into
``tile`` x ``tile`` tiles; ``scale < 1`` is how the CPU schedules stay small.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ensemblab.data.images import list_pairs, read_image, read_label_png
from ensemblab.data.tiling import extract_tiles, tile_boxes
from ensemblab.errors import ConfigError, DataError
from ensemblab.synthetic.minerals import MINERAL_CLASSES

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

Pair = tuple[Path, Path]

LUMENSTONE_CLASSES = (
    "background", "chalcopyrite", "galena", "magnetite", "bornite", "pyrrhotite",
    "pyrite-marcasite", "pentlandite", "sphalerite", "arsenopyrite", "hematite",
    "tennantite-tetrahedrite", "covellite",
)
CLASS_SETS = {"minerals9": MINERAL_CLASSES, "lumenstone": LUMENSTONE_CLASSES}


def resolve_classes(value: str | Sequence[str]) -> list[str]:
    """Class names from a set name (``minerals9``, ``lumenstone``) or an explicit list."""
    if isinstance(value, str):
        if value not in CLASS_SETS:
            raise ConfigError(f"data.classes {value!r}: use {sorted(CLASS_SETS)} or a list")
        return list(CLASS_SETS[value])
    if not value or len(value) < 2:
        raise ConfigError("data.classes needs at least two class names")
    return [str(v) for v in value]


def split_pairs(root: str | Path, split: str) -> list[Pair]:
    """Sorted ``(image, mask)`` paths of ``ROOT/raw/<split>`` and ``ROOT/seg/<split>``."""
    root = Path(root)
    image_dir, mask_dir = root / "raw" / split, root / "seg" / split
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(folder, "folder not found (expected ROOT/raw/<split> and "
                            "ROOT/seg/<split>, see datasets/README.md)")
    pairs = list_pairs(image_dir, mask_dir, IMAGE_EXTS, ".png")
    if not pairs:
        raise DataError(image_dir, "no images")
    return sorted((Path(i), Path(m)) for i, m in pairs)


def holdout_split(pairs: Sequence[Pair], fraction: float, seed: int = 0
                  ) -> tuple[list[Pair], list[Pair]]:
    """Split whole images into (training, ranking) parts, deterministically.

    The ranking part selects checkpoints and ranks the RUEL learners, so the test split is never
    used for either (the authors ranked on their test set).
    """
    if not 0 < fraction < 1 or len(pairs) < 2:
        raise DataError(None, f"cannot hold out {fraction} of {len(pairs)} images for ranking")
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_rank = min(len(pairs) - 1, max(1, round(fraction * len(pairs))))
    rank = sorted(pairs[i] for i in order[:n_rank])
    train = sorted(pairs[i] for i in order[n_rank:])
    return train, rank


def rescale(array: np.ndarray, scale: float, nearest: bool) -> np.ndarray:
    """Resize an image [H, W, 3] (bilinear) or mask [H, W] (nearest) by ``scale``."""
    if scale == 1:
        return array
    h, w = array.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(array).resize(size, resample))


def load_image(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3] (DataError naming the file when missing or corrupt)."""
    image = read_image(path, mode="rgb")
    if image.dtype != np.uint8:
        raise DataError(path, f"expected an 8-bit RGB image, got {image.dtype}")
    return image


def load_pair(pair: Pair, num_classes: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one sample, then rescale it.

    Raises:
        DataError: corrupt image, mask of another size, or a label outside ``0..num_classes-1``.
    """
    image = load_image(pair[0])
    mask = read_label_png(pair[1], allowed_values=range(num_classes), shape=image.shape[:2])
    return rescale(image, scale, nearest=False), rescale(mask.astype(np.uint8), scale, True)


def pad_to(array: np.ndarray, tile: int) -> np.ndarray:
    """Reflect-pad the first two axes up to at least ``tile`` (small images still give a tile)."""
    ph, pw = max(0, tile - array.shape[0]), max(0, tile - array.shape[1])
    if ph == 0 and pw == 0:
        return array
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, mode="symmetric")


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> normalised float [3, H, W] (ImageNet statistics)."""
    return torch.from_numpy(((image.astype(np.float32) / 255 - MEAN) / STD).transpose(2, 0, 1))


def default_augment() -> A.Compose:
    """The paper's geometric augmentation: flips and right-angle rotations (sec. 2.2)."""
    return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)])


class TileDataset(Dataset):
    """Non-overlapping ``tile`` x ``tile`` tiles of rescaled images, held in memory.

    Args:
        pairs: ``(image, mask)`` paths.
        num_classes: classes (labels are validated against it).
        tile: tile side (multiple of 32).
        scale: rescale factor applied before tiling.
        augment: albumentations transform for training, None for evaluation.

    Item: ``(image float [3, tile, tile], mask int64 [tile, tile])``.
    """

    def __init__(self, pairs: Sequence[Pair], num_classes: int, tile: int, scale: float = 1.0,
                 augment: A.Compose | None = None):
        if tile % 32:
            raise DataError(None, f"tile {tile} must be a multiple of 32")
        self.augment = augment
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        for pair in pairs:
            image, mask = load_pair(pair, num_classes, scale)
            image, mask = pad_to(image, tile), pad_to(mask, tile)
            boxes = tile_boxes(image.shape[0], image.shape[1], tile, 0)
            self.images += extract_tiles(image, boxes)
            self.masks += extract_tiles(mask, boxes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[index], self.masks[index]
        if self.augment is not None:
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return to_tensor(np.ascontiguousarray(image)), torch.from_numpy(mask.astype(np.int64))
