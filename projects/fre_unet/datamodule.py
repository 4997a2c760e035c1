"""Tiles of the pinned slice split as a Lightning data module.

The paper crops each 1024x1024 ssTEM section into 16 tiles of 256x256 (Sec. 4). Here every
slice is first resized by ``data.scale`` (1.0 in the paper configs, 0.5 on CPU: 16 tiles of
128 covering the same fields), cropped to a multiple of ``data.tile`` and cut into a grid of
non-overlapping tiles. Training tiles are flipped / rotated by multiples of 90 degrees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ensemblab.data.tiling import extract_tiles, tile_boxes
from ensemblab.errors import DataError
from ensemblab.projects.fre_unet.data import (
    Slice,
    load_slices,
    rescale,
    resolve_label_map,
    split_slices,
)

DEFAULT_SPLIT = {"train": "0-11", "val": "12-15", "test": "16-19"}


def tile_slices(slices: list[Slice], tile: int, scale: float = 1.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Cut slices into tiles: ``(images uint8[N, t, t], labels uint8[N, t, t])``."""
    images, labels = [], []
    for s in slices:
        img, lab = rescale(s.image, s.label, scale)
        h, w = (lab.shape[0] // tile) * tile, (lab.shape[1] // tile) * tile
        if h == 0 or w == 0:
            raise DataError(s.name, f"slice {lab.shape} (after scale {scale}) smaller than "
                                    f"one {tile}x{tile} tile")
        boxes = tile_boxes(h, w, tile, 0)
        images += extract_tiles(img[:h, :w], boxes)
        labels += extract_tiles(lab[:h, :w], boxes)
    return np.stack(images), np.stack(labels)


class TileDataset(Dataset):
    """``(image float[1, t, t] in [0, 1], label int64[t, t])`` pairs, optionally augmented."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: bool = False):
        self.images = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.images[i], self.labels[i]
        if self.augment:
            k = int(torch.randint(0, 4, ()))
            x, y = torch.rot90(x, k, (1, 2)), torch.rot90(y, k, (0, 1))
            if torch.rand(()) < 0.5:
                x, y = x.flip(2), y.flip(1)
        return x.contiguous(), y.contiguous()


class EMTileData(L.LightningDataModule):
    """Loads the slices once, splits them by slice number and serves tiles.

    Args:
        root: dataset folder.
        cfg: the config's ``data`` section (see ``configs/baseline.yaml``).
    """

    def __init__(self, root: str | Path, cfg: dict[str, Any]):
        super().__init__()
        self.root = Path(root)
        self.cfg = cfg
        self.classes, _ = resolve_label_map(cfg)
        self.tiles: dict[str, TileDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.tiles:
            return
        split = self.cfg.get("split") or DEFAULT_SPLIT
        parts = split_slices(load_slices(self.root, self.cfg), split)
        tile, scale = int(self.cfg.get("tile", 256)), float(self.cfg.get("scale", 1.0))
        for name, slices in parts.items():
            images, labels = tile_slices(slices, tile, scale)
            self.tiles[name] = TileDataset(images, labels, augment=name == "train")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        if name not in self.tiles:
            raise DataError(self.root, f"data.split has no {name!r} part")
        return DataLoader(self.tiles[name], batch_size=int(self.cfg.get("batch_size", 8)),
                          shuffle=shuffle, num_workers=int(self.cfg.get("workers", 0)))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def loader(self, split: str) -> DataLoader:
        """An unshuffled loader of any split (``train``, ``val``, ``test``)."""
        return self._loader(split, shuffle=False)
