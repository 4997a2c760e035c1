"""Lightning pieces: the two-stage learner and its tile data module (paper sec. 3.1, Table 2).

Stage 1 trains the decoder with the encoder frozen (batch ``frozen_batch_size``), stage 2 trains
everything (batch ``batch_size``); Adam with a linear warm-up and a cosine decay from ``lr`` to
``min_lr`` over all steps of both stages. The data module hands out the stage's batch size by
being reloaded every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ensemblab.cli_common import HELD_OUT_SPLIT
from ensemblab.data.images import read_label_png
from ensemblab.data.label_check import check_label_values, value_counts
from ensemblab.engine.optim import build_optimizer
from ensemblab.metrics.semantic import ConfusionMatrixEvaluator
from ensemblab.projects.mineral_ruel.classes import class_pixel_counts
from ensemblab.projects.mineral_ruel.data import (
    RandomCropDataset,
    TileDataset,
    default_augment,
    holdout_split,
    load_pair,
    load_scaled,
    pad_to,
    split_pairs,
)
from ensemblab.projects.mineral_ruel.losses import build_loss
from ensemblab.projects.mineral_ruel.models import build_model
from ensemblab.threads import loader_workers


class MineralDataModule(L.LightningDataModule):
    """Training crops from ``ROOT/raw/train`` minus a ranking hold-out, validated on it.

    Args:
        root: dataset folder (``raw/``, ``seg/``).
        num_classes: classes.
        tile: tile (crop) side.
        scale: rescale factor before tiling.
        holdout: fraction of training images held out for checkpoint choice and RUEL ranking.
        holdout_max_class_share: largest share of any class's pixels the hold-out may take
            (:func:`~.data.holdout_split`); ``None``: any.
        batch_size: stage-2 batch size.
        frozen_batch_size: stage-1 batch size.
        frozen_epochs: epochs of stage 1.
        crops_per_epoch: ``None``: every fixed tile once per epoch (the paper's tiling);
            ``N``: ``N`` random crops per epoch (:class:`~.data.RandomCropDataset`).
        class_balanced: fraction of the random crops centred on a uniformly drawn class.
        seed: seed of the hold-out split and the crop positions.
        workers: DataLoader workers.
    """

    def __init__(self, root: str | Path, num_classes: int, tile: int = 512, scale: float = 1.0,
                 holdout: float = 0.2, holdout_max_class_share: float | None = None,
                 batch_size: int = 16, frozen_batch_size: int = 32,
                 frozen_epochs: int = 0, crops_per_epoch: int | None = None,
                 class_balanced: float = 0.0, seed: int = 0, workers: int = 0):
        super().__init__()
        self.root, self.num_classes, self.tile, self.scale = Path(root), num_classes, tile, scale
        self.holdout, self.seed, self.workers = holdout, seed, workers
        self.holdout_max_class_share = holdout_max_class_share
        self.batch_size, self.frozen_batch_size = batch_size, frozen_batch_size
        self.frozen_epochs, self.crops_per_epoch = frozen_epochs, crops_per_epoch
        self.class_balanced = class_balanced
        self.train_set: TileDataset | RandomCropDataset | None = None
        self.rank_set: TileDataset | None = None
        self.class_pixels: np.ndarray | None = None
        self.rank_counts: list[tuple[Path, dict[int, int]]] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, rank = holdout_split(split_pairs(self.root, "train"), self.holdout, self.seed,
                                    self.holdout_max_class_share)
        images, masks = load_scaled(train, self.num_classes, self.scale, self.tile)
        self.class_pixels = class_pixel_counts(masks, self.num_classes)
        if self.crops_per_epoch:
            self.train_set = RandomCropDataset(images, masks, self.tile, self.crops_per_epoch,
                                               default_augment(), seed=self.seed,
                                               class_balanced=self.class_balanced)
        else:
            self.train_set = TileDataset(images, masks, self.tile, default_augment())
        loaded = [load_pair(pair, self.num_classes, self.scale) for pair in rank]
        # Counted before padding: the pixels each hold-out mask has at the working scale.
        self.rank_counts = [(pair[1], value_counts(mask)) for pair, (_, mask) in zip(rank, loaded)]
        self.rank_set = TileDataset([pad_to(image, self.tile) for image, _ in loaded],
                                    [pad_to(mask, self.tile) for _, mask in loaded],
                                    self.tile, with_index=True)

    def check_labels(self, class_names: Sequence[str], allow_unseen: Sequence[int]) -> None:
        """Stop before training when a hold-out or test mask holds a value that the training
        masks cannot account for (:func:`ensemblab.data.label_check.check_label_values`).

        Hold-out masks are checked as they are scored while training, at ``scale``; test masks
        (``ROOT/seg/val``, when present) at full resolution as ``evaluate`` scores them, read
        one at a time. Call after :meth:`setup`.

        Args:
            class_names: the classes (value ``k`` is ``class_names[k]``).
            allow_unseen: class values accepted though absent from the training masks.

        Raises:
            DataError: naming the mask, the value and its pixel count.
        """
        training = np.flatnonzero(self.class_pixels).tolist()
        unit = "px" if self.scale == 1 else f"px at data.scale {self.scale}"
        check_label_values(self.rank_counts, class_names, training, allow_unseen, "hold-out",
                           unit=unit)
        if (self.root / "seg" / HELD_OUT_SPLIT).is_dir():
            test = ((mask, value_counts(read_label_png(mask)))
                    for _, mask in split_pairs(self.root, HELD_OUT_SPLIT))
            check_label_values(test, class_names, training, allow_unseen, "test")

    def batch_size_at(self, epoch: int) -> int:
        return self.frozen_batch_size if epoch < self.frozen_epochs else self.batch_size

    def _drop_last(self, epoch: int) -> bool:
        # A last batch of one item breaks BatchNorm at a 1x1 deepest map; drop partial batches
        # unless the data holds less than one batch.
        return len(self.train_set) > self.batch_size_at(epoch)

    def steps_per_epoch(self, epoch: int) -> int:
        self.setup()
        items, batch = len(self.train_set), self.batch_size_at(epoch)
        return items // batch if self._drop_last(epoch) else math.ceil(items / batch)

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        if isinstance(self.train_set, RandomCropDataset):
            self.train_set.epoch = epoch
        return DataLoader(self.train_set, batch_size=self.batch_size_at(epoch), shuffle=True,
                          num_workers=loader_workers(self.workers),
                          drop_last=self._drop_last(epoch))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.rank_set, batch_size=self.batch_size,
                          num_workers=loader_workers(self.workers))


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


OPTIMIZERS = ("adam", "adamw")


class MineralSegmenter(L.LightningModule):
    """One RUEL learner: network + loss + two-stage schedule; logs ``val/miou`` and per-class IoU.

    Args:
        num_classes: classes.
        class_names: names for the logged per-class IoU.
        model: keywords of :func:`~.models.build_model` (``arch`` ...).
        loss: keywords of :func:`~.losses.build_loss` (``name`` ...).
        optimizer: ``adam`` (paper) or ``adamw`` (:data:`OPTIMIZERS`).
        lr: peak learning rate (paper 1e-4).
        weight_decay: weight decay (paper: none).
        min_lr: final learning rate of the cosine decay (paper 1e-6).
        warmup_epochs: warm-up length in epochs (may be fractional).
        frozen_epochs: epochs of stage 1 (encoder frozen).
        epochs: total epochs (both stages).
    """

    def __init__(self, num_classes: int, class_names: Sequence[str], model: dict[str, Any],
                 loss: dict[str, Any], lr: float = 1e-4, min_lr: float = 1e-6,
                 warmup_epochs: float = 1.0, frozen_epochs: int = 0, epochs: int = 1,
                 optimizer: str = "adam", weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_model(num_classes, **model)
        self.criterion = build_loss(num_classes=num_classes, **loss)
        self.evaluator = ConfusionMatrixEvaluator(num_classes, class_names=list(class_names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> logits ``[B, C, H, W]``."""
        return self.net(x)

    def encoder_frozen(self) -> bool:
        return self.current_epoch < self.hparams.frozen_epochs

    def on_train_epoch_start(self) -> None:
        frozen = self.encoder_frozen()
        for p in self.net.encoder.parameters():
            p.requires_grad_(not frozen)
        # Frozen BatchNorm statistics too, as a frozen Keras backbone. Set the mode both ways:
        # Lightning restores the per-module modes it saw before validation.
        self.net.encoder.train(not frozen)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, masks = batch
        # float32 loss under bf16 autocast: Dice/focal sums lose precision in bf16.
        loss = self.criterion(self(images).float(), masks)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=images.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self.evaluator.reset()

    def validation_step(self, batch, batch_idx: int) -> None:
        # ``(images, masks, tile indices)``; the indices let a tile that DDP padding repeats
        # count once in the confusion matrix (a batch without them is summed as given).
        images, masks, *index = batch
        logits = self(images).float()
        self.log("val/loss", self.criterion(logits, masks), on_epoch=True,
                 batch_size=images.shape[0])
        self.evaluator.update(logits.argmax(1), masks,
                              sample_ids=index[0].tolist() if index else None)

    def on_validation_epoch_end(self) -> None:
        scores = self.evaluator.compute()
        self.log("val/miou", scores["miou"], prog_bar=True)
        for name, iou in zip(self.hparams.class_names, scores["iou"]):
            if iou == iou:  # NaN: class absent from the hold-out tiles
                self.log(f"val/iou_{name}", iou)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.hparams.optimizer, self.parameters(),
                                    lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        dm = self.trainer.datamodule
        epochs = self.hparams.epochs
        total = sum(dm.steps_per_epoch(e) for e in range(epochs))
        warmup = max(1, round(self.hparams.warmup_epochs * dm.steps_per_epoch(epochs - 1)))
        ratio = self.hparams.min_lr / self.hparams.lr
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, total, warmup, ratio))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
