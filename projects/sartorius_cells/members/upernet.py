"""The UPerNet members: ``upernet_full`` (semantic context) and ``upernet_crop`` (one cell's mask).

- ``upernet_full``: the whole image -> background / cell / border probabilities; its cell
  probability is one vote of the consensus, and connected components of "cell, not border"
  give instances when it segments an image alone.
- ``upernet_crop``: a RoIAlign crop around one box -> that cell's mask probability; predicted
  on the fused boxes and pasted back (``ensemblab.ensemble.crops``).

Both train through the shared engine; ``best.ckpt`` by validation IoU.
"""

from __future__ import annotations

from abc import abstractmethod

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from ensemblab.config import check_choice
from ensemblab.engine import (
    fit,
    load_run_weights,
    seed_everything,
    select_device,
)
from ensemblab.engine.optim import build_optimizer
from ensemblab.ensemble.crops import window_of
from ensemblab.projects.sartorius_cells.data import split_records
from ensemblab.projects.sartorius_cells.evaluation import score_instances
from ensemblab.projects.sartorius_cells.members.base import (
    ImageMemo,
    LoadedMember,
    MemberKind,
    member_trainer,
    register_member,
)
from ensemblab.projects.sartorius_cells.members.upernet_data import (
    BoxCropDataset,
    FullImageDataset,
)
from ensemblab.projects.sartorius_cells.members.upernet_model import (
    UperNetWithAux,
    predict_crops,
    predict_full,
    semantic_instances,
)
from ensemblab.projects.sartorius_cells.postprocess import remove_overlaps
from ensemblab.projects.sartorius_cells.structures import Instances, masks_to_boxes
from ensemblab.threads import loader_workers

OPTIMIZERS = ("adamw", "adam")


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss of binary logits ``[B, 1, H, W]`` against ``{0, 1}`` targets."""
    prob = logits.sigmoid().flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    return (1 - (2 * inter + 1) / (prob.sum(1) + target.sum(1) + 1)).mean()


class UperNetLitModule(L.LightningModule):
    """Training of both UPerNet modes.

    ``full``: cross-entropy over background / cell / border (class weights ``class_weights``).
    ``crop``: BCE + Dice on the cell mask. Both add ``aux_weight`` x the auxiliary head's loss.
    Validation logs ``val/iou``: cell-vs-background IoU (full) or mean per-crop mask IoU (crop).

    Args:
        mode: ``full`` or ``crop``.
        model_cfg: ``encoder, decoder_channels, pretrained, weights`` (+ ``border`` for full
            mode).
        train_cfg: ``optimizer`` (:data:`OPTIMIZERS`), ``lr, weight_decay, epochs, aux_weight``
            (+ ``class_weights``).
        pretrained: load the encoder's weights (False when a checkpoint will be loaded).
    """

    def __init__(self, mode: str, model_cfg: dict, train_cfg: dict, pretrained: bool = True):
        super().__init__()
        self.save_hyperparameters()
        self.mode, self.train_cfg = mode, train_cfg
        classes = (3 if model_cfg["border"] else 2) if mode == "full" else 1
        self.net = UperNetWithAux(model_cfg["encoder"], classes,
                                  int(model_cfg["decoder_channels"]),
                                  bool(model_cfg["pretrained"]) and pretrained,
                                  model_cfg["weights"] if pretrained else None)
        self.inter = self.union = 0.0
        self.ious: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode == "full":
            weight = self.train_cfg["class_weights"]
            weight = torch.as_tensor(weight, dtype=logits.dtype, device=logits.device) \
                if weight else None
            return F.cross_entropy(logits, target, weight=weight)
        return F.binary_cross_entropy_with_logits(logits, target) + dice_loss(logits, target)

    def training_step(self, batch, batch_idx):
        x, target = batch
        main, aux = self.net(x)
        loss = self._loss(main, target) + self.train_cfg["aux_weight"] * self._loss(aux, target)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=x.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        x, target = batch
        logits = self.net(x)
        if self.mode == "full":
            pred, truth = logits.argmax(1) > 0, target > 0
            self.inter += float((pred & truth).sum())
            self.union += float((pred | truth).sum())
        else:
            pred, truth = logits[:, 0] > 0, target[:, 0] > 0.5
            inter = (pred & truth).flatten(1).sum(1).float()
            union = (pred | truth).flatten(1).sum(1).clamp(min=1).float()
            self.ious.extend((inter / union).tolist())

    def on_validation_epoch_end(self):
        iou = (self.inter / max(self.union, 1.0)) if self.mode == "full" \
            else float(np.mean(self.ious)) if self.ious else 0.0
        self.log("val/iou", iou, prog_bar=True, batch_size=1)
        self.inter = self.union = 0.0
        self.ious = []

    def configure_optimizers(self):
        cfg = self.train_cfg
        opt = build_optimizer(check_choice(cfg, "optimizer", OPTIMIZERS, "train"),
                              self.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(cfg["epochs"])))
        return {"optimizer": opt, "lr_scheduler": sched}


class UperNetMember(MemberKind):
    """What both modes share: training loop, loading; ``mode`` picks data and head."""

    mode = ""
    mask_source = True
    root_config = "paper_upernet_full_rx50.yaml"
    choices = {"train.optimizer": OPTIMIZERS}

    @abstractmethod
    def datasets(self, cfg: dict, train, val):
        """``(train dataset, validation dataset, validation batch size)``."""

    def train(self, cfg, records, run_dir, device="auto", resume=False, progress_bar=True):
        seed_everything(int(cfg["seed"]))
        train, val = split_records(records, cfg["data"]["split"])
        tcfg = cfg["train"]
        train_ds, val_ds, val_bs = self.datasets(cfg, train, val)
        sampler = torch.utils.data.RandomSampler(
            train_ds, replacement=True,
            num_samples=int(tcfg["samples_per_epoch"] or len(train_ds)))
        loader = torch.utils.data.DataLoader(train_ds, batch_size=int(tcfg["batch_size"]),
                                             sampler=sampler,
                                             num_workers=loader_workers(tcfg["num_workers"]))
        val_loader = torch.utils.data.DataLoader(val_ds, batch_size=val_bs)
        module = UperNetLitModule(self.mode, cfg["model"], tcfg)
        trainer = member_trainer(run_dir, cfg, device, monitor="val/iou",
                                 progress_bar=progress_bar,
                                 log_every_n_steps=min(10, max(1, len(loader))))
        fit(trainer, module, loader, val_loader, resume=resume)

    def load(self, run_dir, cfg, device="auto", untrained=False):
        dev = select_device(device)
        torch.manual_seed(int(cfg["seed"]))
        if untrained:
            module = UperNetLitModule(self.mode, cfg["model"], cfg["train"])
        else:  # the run's own weights replace the encoder's initial ones
            module = UperNetLitModule(self.mode, cfg["model"], cfg["train"], pretrained=False)
            load_run_weights(module, run_dir)
        return self.loaded(module.net.to(dev).eval(), cfg, dev)

    @abstractmethod
    def loaded(self, net, cfg, device) -> LoadedMember:
        """Wrap a network of this mode."""


class LoadedUperNetFull(LoadedMember):
    """Full-image mode: class probabilities of the whole image."""

    def __init__(self, kind, net, cfg, device):
        super().__init__(kind, net, cfg, device)
        self._probabilities = ImageMemo(2)  # one pass per image and flip (see ImageMemo)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """float32 ``[C, H, W]`` (0 background, 1 cell, 2 border), memoised."""
        return self._probabilities.get(image, lambda: predict_full(
            self.net, image, self.device, int(self.cfg["model"]["size"])))

    def window_probs(self, image, boxes, labels, windows):
        cell = 1.0 - self.probabilities(image)[0]
        return [cell[y0:y1, x0:x1].copy() for x0, y0, x1, y1 in windows]

    def instances(self, image):
        return semantic_instances(self.probabilities(image))


@register_member("upernet_full")
class UperNetFullMember(UperNetMember):
    """Semantic map of the whole image; segments alone by connected components."""

    mode = "full"
    standalone = True
    smoke_overrides = ("model.size=128", "train.crop=64", "train.batch_size=2",
                       "train.num_workers=0")

    def datasets(self, cfg, train, val):
        mcfg, tcfg = cfg["model"], cfg["train"]
        size, side, border = int(mcfg["size"]), int(tcfg["crop"]), mcfg["border"]
        return (FullImageDataset(train, size, side, True, border),
                FullImageDataset(val, size, side, False, border), 1)

    def loaded(self, net, cfg, device):
        return LoadedUperNetFull(self, net, cfg, device)

    def evaluate(self, member, records):
        return score_instances(records, lambda rec: member.instances(rec.load_image()))


class LoadedUperNetCrop(LoadedMember):
    """Box-crop mode: one cell's mask per box."""

    def crops(self, image: np.ndarray, boxes: np.ndarray):
        """``(windows int64[N, 4], float32 crops)`` around ``boxes`` (box + context)."""
        mcfg = self.cfg["model"]
        return predict_crops(self.net, image, boxes, self.device, int(mcfg["crop"]),
                             float(mcfg["context"]))

    def window_probs(self, image, boxes, labels, windows):
        own, probs = self.crops(image, boxes)
        return [window_of(p, b, win) for p, b, win in zip(probs, own, windows)]


@register_member("upernet_crop")
class UperNetCropMember(UperNetMember):
    """Masks of given boxes; scored alone on the ground-truth boxes (an upper bound of what
    it adds given perfect boxes)."""

    mode = "crop"
    sample_unit = "crops"
    smoke_overrides = ("model.crop=32", "train.batch_size=4", "train.num_workers=0")

    def datasets(self, cfg, train, val):
        mcfg, tcfg = cfg["model"], cfg["train"]
        crop, context = int(mcfg["crop"]), float(mcfg["context"])
        return (BoxCropDataset(train, crop, context, float(tcfg["jitter"]), True),
                BoxCropDataset(val, crop, context, 0.0, False), 64)

    def loaded(self, net, cfg, device):
        return LoadedUperNetCrop(self, net, cfg, device)

    def evaluate(self, member, records):
        def on_true_boxes(rec) -> Instances:
            image = rec.load_image()
            boxes = masks_to_boxes(rec.load_masks())
            windows, probs = member.crops(image, boxes)
            inst = Instances(boxes, np.ones(len(probs), np.float32),
                             np.ones(len(probs), np.int64), [p >= 0.5 for p in probs], windows,
                             *image.shape)
            return remove_overlaps(inst, drop_frac=0.9)

        metrics = score_instances(records, on_true_boxes)
        metrics["boxes"] = "ground truth"
        return metrics
