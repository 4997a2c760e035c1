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

from ensemblab.cli_common import ALL_ITEMS
from ensemblab.data.images import list_pairs, read_image, read_label_png
from ensemblab.data.tiling import extract_tiles, tile_boxes
from ensemblab.errors import DataError
from ensemblab.projects.mineral_ruel.classes import class_pixel_counts

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")

Pair = tuple[Path, Path]


def split_pairs(root: str | Path, split: str) -> list[Pair]:
    """Sorted ``(image, mask)`` paths of ``ROOT/raw/<split>`` and ``ROOT/seg/<split>``;
    ``all``: those of every split folder in ``ROOT/raw``."""
    root = Path(root)
    if split == ALL_ITEMS:
        splits = sorted(p.name for p in (root / "raw").glob("*") if p.is_dir())
        if not splits:
            raise DataError(root / "raw", "no split folders (expected ROOT/raw/<split> and "
                            "ROOT/seg/<split>, see datasets/README.md)")
        return sorted(pair for name in splits for pair in split_pairs(root, name))
    image_dir, mask_dir = root / "raw" / split, root / "seg" / split
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(folder, "folder not found (expected ROOT/raw/<split> and "
                            "ROOT/seg/<split>, see datasets/README.md)")
    pairs = list_pairs(image_dir, mask_dir, IMAGE_EXTS, ".png")
    if not pairs:
        raise DataError(image_dir, "no images")
    return sorted((Path(i), Path(m)) for i, m in pairs)


def holdout_split(pairs: Sequence[Pair], fraction: float, seed: int = 0,
                  max_class_share: float | None = None) -> tuple[list[Pair], list[Pair]]:
    """Split whole images into (training, ranking) parts, deterministically.

    The ranking part selects checkpoints and ranks the RUEL learners, so the test split is never
    used for either (the authors ranked on their test set).

    With ``max_class_share``, the split must leave every class in training: the first of the
    seed's random draws that holds out at most that share of any class's pixels is taken (the
    first draw is the plain split, so a split that already qualifies is unchanged); if none of
    1000 draws qualifies, the one with the smallest largest share. On LumenStone a plain 5-image
    draw can hold out 95 % of a mineral's pixels, and no learner then learns that mineral.
    """
    if not 0 < fraction < 1 or len(pairs) < 2:
        raise DataError(None, f"cannot hold out {fraction} of {len(pairs)} images for ranking")
    if max_class_share is not None and not 0 < max_class_share <= 1:
        raise DataError(None, f"holdout_max_class_share {max_class_share} must lie in (0, 1]")
    rng = np.random.default_rng(seed)
    n_rank = min(len(pairs) - 1, max(1, round(fraction * len(pairs))))
    order = rng.permutation(len(pairs))
    if max_class_share is not None:
        counts = np.stack([class_pixel_counts([read_label_png(m)], 256) for _, m in pairs])
        total = np.maximum(counts.sum(0), 1)
        best, best_share = order, np.inf
        for _ in range(1000):
            share = float((counts[order[:n_rank]].sum(0) / total).max())
            if share < best_share:
                best, best_share = order, share
            if share <= max_class_share:
                break
            order = rng.permutation(len(pairs))
        order = best
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
    """uint8 [H, W, 3] -> float [3, H, W] in [0, 1] (each learner normalises its own input)."""
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255)


def default_augment() -> A.Compose:
    """The paper's geometric augmentation: flips and right-angle rotations (sec. 2.2)."""
    return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)])


def load_scaled(pairs: Sequence[Pair], num_classes: int, scale: float, tile: int
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validated, rescaled images and masks, each padded to at least ``tile`` on both sides."""
    images, masks = [], []
    for pair in pairs:
        image, mask = load_pair(pair, num_classes, scale)
        images.append(pad_to(image, tile))
        masks.append(pad_to(mask, tile))
    return images, masks


class TileDataset(Dataset):
    """Non-overlapping ``tile`` x ``tile`` tiles of rescaled images, held in memory (sec. 2.2).

    Args:
        images: rescaled RGB uint8 images ``[H, W, 3]`` (from :func:`load_scaled`).
        masks: their class-index masks ``[H, W]``.
        tile: tile side (multiple of 32).
        augment: albumentations transform for training, None for evaluation.
        with_index: append the tile's index to each item (the sample id that lets a
            DDP-padded duplicate tile be scored once).

    Item: ``(image float [3, tile, tile] in [0, 1], mask int64 [tile, tile])``, then the tile
    index ``int`` with ``with_index``.
    """

    def __init__(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], tile: int,
                 augment: A.Compose | None = None, with_index: bool = False):
        if tile % 32:
            raise DataError(None, f"tile {tile} must be a multiple of 32")
        self.augment = augment
        self.with_index = with_index
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        for image, mask in zip(images, masks):
            boxes = tile_boxes(image.shape[0], image.shape[1], tile, 0)
            self.images += extract_tiles(image, boxes)
            self.masks += extract_tiles(mask, boxes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple:
        item = _item(self.images[index], self.masks[index], self.augment)
        return (*item, index) if self.with_index else item


class RandomCropDataset(Dataset):
    """``length`` random ``tile`` x ``tile`` crops of rescaled images, drawn afresh per item.

    Each item picks an image with probability proportional to its area and a crop centre
    uniformly in it (the crop is then shifted inside the image, so borders are seen as often as
    the middle); an epoch of ``length`` crops never repeats the same tile grid (more variety
    than fixed tiles on a small dataset).

    With ``class_balanced = f > 0``, a fraction ``f`` of the crops is instead centred on a pixel
    of a class drawn uniformly from the classes present in the masks (nnU-Net-style foreground
    oversampling): a mineral covering 0.6 % of the pixels is then in about ``f / classes`` of the
    crops instead of a few, so rare classes get gradient at all. Candidate centres are a fixed
    random sample of at most ``centres_per_class`` pixels per class.

    Args:
        images: rescaled RGB uint8 images ``[H, W, 3]``, each at least ``tile`` per side.
        masks: their class-index masks ``[H, W]``.
        tile: crop side (multiple of 32).
        length: crops per epoch.
        augment: albumentations transform applied to each crop.
        seed: seed of the crop positions (item ``i`` of epoch ``e`` is reproducible).
        class_balanced: fraction of crops centred on a uniformly drawn class (0: off).
        centres_per_class: candidate centres kept per class.

    Item: ``(image float [3, tile, tile] in [0, 1], mask int64 [tile, tile])``.
    """

    def __init__(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], tile: int,
                 length: int, augment: A.Compose | None = None, seed: int = 0,
                 class_balanced: float = 0.0, centres_per_class: int = 20000):
        if tile % 32:
            raise DataError(None, f"tile {tile} must be a multiple of 32")
        if not 0.0 <= class_balanced <= 1.0:
            raise DataError(None, f"class_balanced {class_balanced} must lie in [0, 1]")
        self.images, self.masks, self.tile = list(images), list(masks), tile
        self.length, self.augment, self.seed = int(length), augment, seed
        self.class_balanced = float(class_balanced)
        self.epoch = 0
        areas = np.array([m.shape[0] * m.shape[1] for m in self.masks], np.float64)
        self.image_p = areas / areas.sum()
        self.centres = (self._class_centres(centres_per_class) if self.class_balanced > 0
                        else {})

    def _class_centres(self, per_class: int) -> dict[int, np.ndarray]:
        """Per present class: ``[n, 3]`` rows ``(image, y, x)`` of up to ``per_class`` pixels."""
        rng = np.random.default_rng((self.seed, 7919))
        found: dict[int, list[np.ndarray]] = {}
        for k, mask in enumerate(self.masks):
            flat = mask.ravel()
            order = np.argsort(flat, kind="stable")
            values, starts = np.unique(flat[order], return_index=True)
            ends = np.append(starts[1:], flat.size)
            for value, a, b in zip(values.tolist(), starts, ends):
                pick = order[a:b]
                if pick.size > per_class:
                    pick = rng.choice(pick, per_class, replace=False)
                y, x = np.divmod(pick, mask.shape[1])
                found.setdefault(value, []).append(
                    np.stack([np.full_like(y, k), y, x], axis=1))
        out = {}
        for value, rows in sorted(found.items()):
            rows = np.concatenate(rows)
            if len(rows) > per_class:
                rows = rows[rng.choice(len(rows), per_class, replace=False)]
            out[value] = rows
        return out

    def __len__(self) -> int:
        return self.length

    def crop_box(self, index: int) -> tuple[int, int, int]:
        """``(image index, y0, x0)`` of item ``index`` in the current ``epoch``."""
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if self.centres and rng.random() < self.class_balanced:
            rows = self.centres[list(self.centres)[int(rng.integers(len(self.centres)))]]
            k, cy, cx = (int(v) for v in rows[int(rng.integers(len(rows)))])
        else:
            k = int(rng.choice(len(self.images), p=self.image_p))
            cy = int(rng.integers(0, self.masks[k].shape[0]))
            cx = int(rng.integers(0, self.masks[k].shape[1]))
        h, w = self.masks[k].shape
        y = min(max(cy - self.tile // 2, 0), h - self.tile)
        x = min(max(cx - self.tile // 2, 0), w - self.tile)
        return k, y, x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, y, x = self.crop_box(index)
        window = (slice(y, y + self.tile), slice(x, x + self.tile))
        return _item(self.images[k][window], self.masks[k][window], self.augment)


def _item(image: np.ndarray, mask: np.ndarray, augment: A.Compose | None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    if augment is not None:
        out = augment(image=image, mask=mask)
        image, mask = out["image"], out["mask"]
    return to_tensor(np.ascontiguousarray(image)), torch.from_numpy(mask.astype(np.int64))
