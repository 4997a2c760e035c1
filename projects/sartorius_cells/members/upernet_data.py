"""Training data of the UPerNet member: full-image semantic maps and per-cell box crops.

- Full-image mode: image resized so its longer side is ``size``; target per pixel
  0 = background, 1 = cell, 2 = border (a cell pixel touching another cell), the extra class that
  lets connected components split touching cells.
- Box-crop mode: every ground-truth cell gives one sample: its box, randomly jittered (to look like
  a detector's box), grown by ``context`` and RoIAligned to ``crop x crop`` for the image and for
  that cell's mask (the target). Only a window around each cell is kept in memory.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy import ndimage

from ensemblab.ensemble.crops import crop_boxes, expand_boxes, integer_boxes
from ensemblab.projects.sartorius_cells.data import letterbox_scale, standardize
from ensemblab.projects.sartorius_cells.structures import masks_to_boxes


def semantic_target(idmap: np.ndarray, border: bool = True) -> np.ndarray:
    """0 background, 1 cell, 2 border (cell pixels with a different cell in their 3x3 window).

    Args:
        idmap: int ``[H, W]`` instance ids (0 = background).
        border: add class 2; without it the target is binary.

    Returns:
        int64 ``[H, W]``.
    """
    target = (idmap > 0).astype(np.int64)
    if border:
        idmap = idmap.astype(np.int64)
        hi = ndimage.maximum_filter(idmap, size=3, mode="nearest")
        # Background becomes larger than every id for the minimum: only other *cells* count.
        lo = ndimage.minimum_filter(np.where(idmap > 0, idmap, idmap.max() + 1), size=3,
                                    mode="nearest")
        target[(idmap > 0) & ((hi > idmap) | (lo < idmap))] = 2
    return target


def to_input(image: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W]`` (or an already standardised float image) -> float ``[1, H, W]``."""
    x = image if image.dtype == np.float32 else standardize(image)
    return torch.from_numpy(np.ascontiguousarray(x))[None]


class FullImageDataset(torch.utils.data.Dataset):
    """Resized images + semantic targets; training adds flips and a random ``crop`` window.

    Items: ``(image float[1, S, S], target int64[S, S])`` (``S = crop`` in training, the padded
    resized image in validation).
    """

    def __init__(self, records, size: int, crop: int, train: bool, border: bool = True):
        self.items, self.crop, self.train = [], crop, train
        for rec in records:
            image, idmap = rec.load_image(), rec.load_idmap()
            r = letterbox_scale(*image.shape, size)
            h, w = round(image.shape[0] * r), round(image.shape[1] * r)
            image = standardize(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
            idmap = cv2.resize(idmap.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
            self.items.append((image, semantic_target(idmap, border)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image, target = self.items[index]
        side = self.crop if self.train else 32 * -(-max(image.shape) // 32)
        pad_h, pad_w = max(side - image.shape[0], 0), max(side - image.shape[1], 0)
        image = np.pad(image, ((0, pad_h), (0, pad_w)), constant_values=0)
        target = np.pad(target, ((0, pad_h), (0, pad_w)), constant_values=0)
        if self.train:
            y = np.random.randint(0, image.shape[0] - side + 1)
            x = np.random.randint(0, image.shape[1] - side + 1)
            image, target = image[y:y + side, x:x + side], target[y:y + side, x:x + side]
            if np.random.rand() < 0.5:
                image, target = image[:, ::-1], target[:, ::-1]
            if np.random.rand() < 0.5:
                image, target = image[::-1], target[::-1]
        else:
            image, target = image[:side, :side], target[:side, :side]
        return to_input(np.ascontiguousarray(image)), torch.from_numpy(target.copy())


class BoxCropDataset(torch.utils.data.Dataset):
    """One sample per ground-truth cell: jittered box + context, RoIAligned to ``crop``.

    Items: ``(image float[1, crop, crop], mask float[1, crop, crop] in {0, 1})``; images are
    standardised over the whole frame (as in prediction), then cut.

    Args:
        records: ``CellRecord`` list.
        crop: output side.
        context: margin added around the box per side, as a fraction of its size.
        jitter: training box noise (fraction of the box size for shifts and scale).
        train: jitter boxes (validation uses the exact ground-truth boxes).
    """

    def __init__(self, records, crop: int, context: float, jitter: float, train: bool):
        self.crop, self.context, self.jitter, self.train = crop, context, jitter, train
        self.cells = []  # (image window uint8, mask window bool, box relative to window)
        margin = context + 2 * jitter + 0.05
        for rec in records:
            image, masks = standardize(rec.load_image()), rec.load_masks()
            boxes = masks_to_boxes(masks)
            windows = integer_boxes(expand_boxes(boxes, margin, 4.0), *image.shape)
            for mask, box, (x0, y0, x1, y1) in zip(masks, boxes, windows):
                if box[2] <= box[0]:
                    continue
                self.cells.append((image[y0:y1, x0:x1].copy(), mask[y0:y1, x0:x1].copy(),
                                   box - np.array([x0, y0, x0, y0], np.float32)))

    def __len__(self) -> int:
        return len(self.cells)

    def __getitem__(self, index: int):
        image, mask, box = self.cells[index]
        box = box.copy()
        if self.train:
            wh = np.array([box[2] - box[0], box[3] - box[1]] * 2, np.float32)
            box = box + np.random.uniform(-self.jitter, self.jitter, 4).astype(np.float32) * wh
        window = expand_boxes(box[None], self.context, 2.0)
        stack = torch.stack([to_input(image)[0], torch.from_numpy(mask.astype(np.float32))])
        out = crop_boxes(stack, window, self.crop)[0]
        img, target = out[:1], (out[1:] >= 0.5).float()
        if self.train and np.random.rand() < 0.5:
            img, target = img.flip(-1), target.flip(-1)
        return img, target
