"""Training data of the Mask R-CNN member: resized images with torchvision detection targets."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ensemblab.data.rle import instance_map_to_masks
from ensemblab.projects.sartorius_cells.data import CellRecord


def resize_pair(image: np.ndarray, idmap: np.ndarray, size: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Resize so the longer side is ``size`` (bilinear image, nearest-neighbour ids)."""
    h, w = image.shape
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = np.asarray(Image.fromarray(image).resize(new, Image.BILINEAR))
    ids = np.asarray(Image.fromarray(idmap.astype(np.int32)).resize(new, Image.NEAREST))
    return img, ids.astype(np.int32)


def targets_from_idmap(idmap: np.ndarray, label: int) -> dict[str, torch.Tensor]:
    """torchvision Mask R-CNN targets from an id map.

    Returns:
        ``boxes`` float32[N, 4] (x0, y0, x1 + 1, y1 + 1), ``labels`` int64[N],
        ``masks`` uint8[N, H, W]; instances under 3 pixels are skipped.
    """
    masks, _ = instance_map_to_masks(idmap)
    masks = masks[masks.sum(axis=(1, 2)) >= 3]
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return {"boxes": torch.from_numpy(boxes),
            "labels": torch.full((len(masks),), label, dtype=torch.int64),
            "masks": torch.from_numpy(masks.astype(np.uint8))}


class CellTrainDataset(torch.utils.data.Dataset):
    """Images resized to a longer side of ``size`` with Mask R-CNN targets.

    Items: ``(image float32[1, h, w] in [0, 1], target dict)``; with ``train`` images are
    flipped at random and, with ``crop``, cut to a random ``crop x crop`` window (cheaper
    steps at the full model resolution). Resized images and id maps are cached (decoding 800
    RLEs per epoch would dominate a CPU epoch).
    """

    def __init__(self, records: list[CellRecord], classes: list[str], size: int,
                 train: bool = True, seed: int = 0, crop: int | None = None):
        self.records, self.classes, self.size, self.train = records, classes, size, train
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        if index not in self.cache:
            rec = self.records[index]
            self.cache[index] = resize_pair(rec.load_image(), rec.load_idmap(), self.size)
        image, idmap = self.cache[index]
        if self.train and self.crop and max(image.shape) > self.crop:
            y = self.rng.integers(0, max(1, image.shape[0] - self.crop + 1))
            x = self.rng.integers(0, max(1, image.shape[1] - self.crop + 1))
            image, idmap = (image[y:y + self.crop, x:x + self.crop],
                            idmap[y:y + self.crop, x:x + self.crop])
        if self.train:
            if self.rng.random() < 0.5:
                image, idmap = image[:, ::-1], idmap[:, ::-1]
            if self.rng.random() < 0.5:
                image, idmap = image[::-1], idmap[::-1]
        label = self.classes.index(self.records[index].cell_type) + 1
        tensor = torch.from_numpy(image.copy()).float().div_(255)[None]
        return tensor, targets_from_idmap(idmap.copy(), label)


def collate(batch):
    """Lists of images and targets (detection models take lists)."""
    return [b[0] for b in batch], [b[1] for b in batch]
