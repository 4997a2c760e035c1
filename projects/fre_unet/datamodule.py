"""Tiles of the pinned slice split as a Lightning data module.

The paper crops each 1024x1024 ssTEM section into 16 tiles of 256x256 (Sec. 4). Here every
slice is first resized by ``data.scale`` (1.0 in the paper configs and ``sstem_cpu``, 0.5 in
``search_proxy``: 16 tiles of 128 covering the same fields), cropped to a multiple of
``data.tile`` and cut into a grid of non-overlapping tiles. Validation and test always use
that grid. Training tiles are flipped / rotated by multiples of 90 degrees; with
``data.random_crops`` each training tile is instead cut at a random position of a random
training section (as many tiles per epoch as the grid holds), and ``data.intensity_jitter``
scales contrast and shifts brightness by up to that fraction (EM sections differ in contrast).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ensemblab.cli_common import ALL_ITEMS
from ensemblab.data.label_check import check_label_values, value_counts
from ensemblab.data.tiling import extract_tiles, tile_boxes
from ensemblab.errors import DataError
from ensemblab.projects.fre_unet.data import (
    Slice,
    load_slices,
    rescale,
    resolve_label_map,
    split_slices,
)
from ensemblab.threads import loader_workers

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


def augment_pair(x: torch.Tensor, y: torch.Tensor, jitter: float = 0.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rotation by k * 90 degrees, flip, and contrast/brightness jitter.

    Args:
        x: image ``[1, t, t]`` in [0, 1].
        y: labels ``[t, t]``.
        jitter: contrast factor in ``[1 - j, 1 + j]`` about 0.5, brightness shift in ``[-j, j]``.
    """
    k = int(torch.randint(0, 4, ()))
    x, y = torch.rot90(x, k, (1, 2)), torch.rot90(y, k, (0, 1))
    if torch.rand(()) < 0.5:
        x, y = x.flip(2), y.flip(1)
    if jitter > 0:
        contrast, shift = (jitter * (2 * torch.rand(2) - 1)).tolist()
        x = ((x - 0.5) * (1.0 + contrast) + 0.5 + shift).clamp(0.0, 1.0)
    return x.contiguous(), y.contiguous()


class TileDataset(Dataset):
    """``(image float[1, t, t] in [0, 1], label int64[t, t])`` pairs, optionally augmented.

    With ``with_index`` each item also carries the tile's index, ``(image, label, index)``:
    the sample id that lets a tile repeated by DDP padding be scored once.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: bool = False,
                 jitter: float = 0.0, with_index: bool = False):
        self.images = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.augment = augment
        self.jitter = jitter
        self.with_index = with_index

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple:
        x, y = self.images[i], self.labels[i]
        x, y = augment_pair(x, y, self.jitter) if self.augment else (x, y)
        return (x, y, i) if self.with_index else (x, y)


class RandomCropDataset(Dataset):
    """Augmented ``tile x tile`` crops at random positions of whole sections.

    Args:
        slices: the training sections (already rescaled), each at least ``tile`` on a side.
        tile: crop side.
        length: crops per epoch.
        jitter: see :func:`augment_pair`.
    """

    def __init__(self, slices: list[Slice], tile: int, length: int, jitter: float = 0.0):
        self.images = [torch.from_numpy(s.image).float().div_(255.0)[None] for s in slices]
        self.labels = [torch.from_numpy(s.label.astype(np.int64)) for s in slices]
        self.tile, self.length, self.jitter = tile, length, jitter

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = int(torch.randint(0, len(self.images), ()))
        h, w = self.labels[k].shape
        top = int(torch.randint(0, h - self.tile + 1, ()))
        left = int(torch.randint(0, w - self.tile + 1, ()))
        window = (slice(top, top + self.tile), slice(left, left + self.tile))
        return augment_pair(self.images[k][(slice(None), *window)], self.labels[k][window],
                            self.jitter)


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
        self.tiles: dict[str, Dataset] = {}
        self.label_counts: dict[str, list[tuple[str, dict[int, int]]]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.tiles:
            return
        split = self.cfg["split"] or DEFAULT_SPLIT
        parts = split_slices(load_slices(self.root, self.cfg), split)
        tile, scale = int(self.cfg["tile"]), float(self.cfg["scale"])
        jitter = float(self.cfg["intensity_jitter"])
        for name, slices in parts.items():
            self.label_counts[name] = [(s.source, value_counts(s.label)) for s in slices]
            images, labels = tile_slices(slices, tile, scale)
            if name == "train" and self.cfg["random_crops"]:
                sections = [Slice(s.name, *rescale(s.image, s.label, scale)) for s in slices]
                self.tiles[name] = RandomCropDataset(sections, tile, len(images), jitter)
            else:
                self.tiles[name] = TileDataset(images, labels, augment=name == "train",
                                               jitter=jitter, with_index=name != "train")

    def check_labels(self, allow_unseen: Sequence[int]) -> None:
        """Stop before training when a slice of a split other than ``train`` holds a class that
        no training slice holds (:func:`ensemblab.data.label_check.check_label_values`; grey
        values outside ``data.label_map`` already stopped the reading). Call after
        :meth:`setup`.

        Args:
            allow_unseen: class indices accepted though absent from the training slices.

        Raises:
            DataError: naming the label file, the class and its pixel count.
        """
        if "train" not in self.label_counts:
            raise DataError(self.root, "data.split has no 'train' part")
        training = set().union(*(counts for _, counts in self.label_counts["train"]))
        for name, counts in self.label_counts.items():
            if name != "train":
                check_label_values(counts, self.classes, training, allow_unseen, name,
                                   what="class", training_what="training slices")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        if name == ALL_ITEMS:
            dataset = self._every_tile()
        else:
            self.setup()
            if name not in self.tiles:
                raise DataError(self.root, f"data.split has no {name!r} part")
            dataset = self.tiles[name]
        return DataLoader(dataset, batch_size=int(self.cfg["batch_size"]),
                          shuffle=shuffle, num_workers=loader_workers(self.cfg["workers"]))

    def _every_tile(self) -> TileDataset:
        """The grid tiles of every slice, whatever ``data.split`` says: a folder the run was not
        trained on need not hold the split's slice numbers."""
        tile, scale = int(self.cfg["tile"]), float(self.cfg["scale"])
        images, labels = tile_slices(load_slices(self.root, self.cfg), tile, scale)
        return TileDataset(images, labels, with_index=True)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def loader(self, split: str) -> DataLoader:
        """An unshuffled loader of any split (``train``, ``val``, ``test``), or of ``all``: the
        grid tiles of every slice in the folder."""
        return self._loader(split, shuffle=False)
