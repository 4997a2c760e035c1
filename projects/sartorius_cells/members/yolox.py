"""The YOLOX member: anchor-free cell detector on ``pixeltable-yolox``, trained through our engine.

YOLOX (Ge et al. 2021): mosaic and mixup, multi-scale training, EMA weights, L1 loss switched
on once mosaic is closed. The package's own Trainer hard-codes CUDA, so :class:`YoloxLitModule`
re-states its recipe as a Lightning module (``ensemblab.engine``), which runs on CPU and GPU
alike. Grey levels are standardised per image (``model.input_norm: image``), as for the other
members. In an ensemble the member gives boxes only.
"""

from __future__ import annotations

import math
import random

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from yolox.utils import LRScheduler, ModelEMA

from ensemblab.config import check_choice
from ensemblab.engine import (
    fit,
    load_run_weights,
    seed_everything,
    select_device,
)
from ensemblab.engine.optim import build_optimizer
from ensemblab.projects.sartorius_cells.data import split_records
from ensemblab.projects.sartorius_cells.evaluation import coco_box_ap
from ensemblab.projects.sartorius_cells.members.base import (
    LoadedMember,
    MemberKind,
    member_trainer,
    register_member,
)
from ensemblab.projects.sartorius_cells.members.yolox_data import (
    INPUT_NORMS,
    BoxSample,
    build_train_dataset,
    samples_from_records,
)
from ensemblab.projects.sartorius_cells.members.yolox_model import (
    VARIANTS,
    build_yolox,
    predict_boxes,
    yolox_param_groups,
)
from ensemblab.threads import loader_workers

OPTIMIZERS = ("sgd", "adamw")


class YoloxLitModule(L.LightningModule):
    """YOLOX training recipe as a Lightning module.

    Per step: pick an input side (multi-scale, progressively larger early in training), resize the
    batch and its boxes, compute the head's loss (IoU + objectness + class (+ L1 after mosaic is
    closed)), step the optimiser with YOLOX's warm-up cosine schedule, update the EMA copy.
    Validation and prediction use the EMA weights (box AP50 on held-out images).

    Args:
        model_cfg: ``variant, num_classes, weights, encoder, pretrained, input_norm``.
        train_cfg: ``epochs, batch_size, optimizer (OPTIMIZERS), lr, weight_decay, momentum,
            warmup_epochs, no_aug_epochs, min_lr_ratio, ema_decay, ema_ramp, sizes [min, max],
            progressive_epochs``.
        predict_cfg: ``size, conf, nms_iou, max_det`` used in validation.
        iters_per_epoch: batches per epoch (for the schedule).
    """

    def __init__(self, model_cfg: dict, train_cfg: dict, predict_cfg: dict,
                 iters_per_epoch: int = 1):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_yolox(model_cfg["variant"], model_cfg["num_classes"],
                                 model_cfg["weights"], model_cfg["encoder"],
                                 bool(model_cfg["pretrained"]))
        self.ema = ModelEMA(self.model, decay=train_cfg["ema_decay"])
        # YOLOX ramps the decay up as d * (1 - exp(-updates / 2000)): over a schedule of a
        # few thousand steps the "average" is then the last few weights. ``ema_ramp`` sets the
        # ramp's constant, so a short schedule can average over its last few hundred steps.
        decay, ramp = float(train_cfg["ema_decay"]), float(train_cfg["ema_ramp"])
        self.ema.decay = lambda updates: decay * (1 - math.exp(-updates / ramp))
        self.ema_model = self.ema.ema  # registered as a child: saved and moved with the module
        self.train_cfg, self.predict_cfg = train_cfg, predict_cfg
        self.iters_per_epoch = max(1, iters_per_epoch)
        self.val_gts: dict[str, np.ndarray] = {}
        self.val_preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def input_side(self) -> int:
        """Multi-scale side for this step: random multiple of 32 in ``[min, hi]``, where ``hi``
        grows from ``min`` to ``max`` over ``progressive_epochs`` (progressive resizing)."""
        lo, hi = (int(s) // 32 for s in self.train_cfg["sizes"])
        grow = self.train_cfg["progressive_epochs"]
        if grow > 0:
            frac = min(1.0, (self.current_epoch + 1) / grow)
            hi = lo + round((hi - lo) * frac)
        return 32 * random.randint(lo, hi)

    def training_step(self, batch, batch_idx):
        imgs, targets = batch[0].float(), batch[1].float()
        side = self.input_side()
        if side != imgs.shape[-1]:
            scale = side / imgs.shape[-1]
            imgs = F.interpolate(imgs, size=(side, side), mode="bilinear", align_corners=False)
            targets = targets.clone()
            targets[..., 1:5] *= scale
        out = self.model(imgs, targets)
        bs = imgs.shape[0]
        for key in ("iou_loss", "conf_loss", "cls_loss", "l1_loss"):
            val = torch.as_tensor(out[key]).detach()
            self.log(f"train/{key}", val, batch_size=bs, on_step=False, on_epoch=True)
        self.log("train/loss", out["total_loss"], batch_size=bs, prog_bar=True, on_step=False,
                 on_epoch=True)
        return out["total_loss"]

    def on_train_epoch_start(self):
        cfg = self.train_cfg
        closing = self.current_epoch >= cfg["epochs"] - cfg["no_aug_epochs"]
        loader = self.trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if closing and dataset is not None and getattr(dataset, "enable_mosaic", False):
            dataset.enable_mosaic = False  # YOLOX: last epochs without mosaic, with L1 loss
            self.model.head.use_l1 = True

    def on_train_batch_start(self, batch, batch_idx):
        cfg = self.train_cfg
        base_lr = cfg["lr"]
        sched = LRScheduler("yoloxwarmcos", base_lr, self.iters_per_epoch, cfg["epochs"],
                            warmup_epochs=cfg["warmup_epochs"], warmup_lr_start=0.0,
                            no_aug_epochs=cfg["no_aug_epochs"], min_lr_ratio=cfg["min_lr_ratio"])
        lr = sched.update_lr(self.global_step + 1)
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = lr
        self.log("lr", lr, on_step=False, on_epoch=True, batch_size=1)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update(self.model)

    def configure_optimizers(self):
        cfg = self.train_cfg
        groups = yolox_param_groups(self.model, cfg["weight_decay"])  # each sets its decay
        return build_optimizer(check_choice(cfg, "optimizer", OPTIMIZERS, "train"), groups,
                               lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                               momentum=cfg["momentum"], nesterov=True)

    def validation_step(self, batch, batch_idx):
        for sample in batch:
            boxes, scores, _ = predict_boxes(self.ema_model, sample.image, self.device,
                                             **self.predict_cfg,
                                             input_norm=self.hparams.model_cfg["input_norm"])
            self.val_gts[sample.image_id] = sample.boxes
            self.val_preds[sample.image_id] = (boxes, scores)

    def on_validation_epoch_end(self):
        ap = coco_box_ap(self.val_gts, self.val_preds)
        self.log("val/box_ap50", ap["AP50"], prog_bar=True, batch_size=1)
        self.log("val/box_ap", ap["AP"], batch_size=1)
        self.val_gts, self.val_preds = {}, {}

    def on_save_checkpoint(self, checkpoint):
        checkpoint["ema_updates"] = self.ema.updates

    def on_load_checkpoint(self, checkpoint):
        self.ema.updates = checkpoint.get("ema_updates", 0)


def val_collate(batch: list[BoxSample]) -> list[BoxSample]:
    """Validation batches stay lists of :class:`BoxSample` (full images of varying size)."""
    return batch


def _model_cfg(cfg: dict, weights: bool = True) -> dict:
    """The network arguments of a config; ``weights=False`` when a checkpoint replaces them."""
    m = cfg["model"]
    return {"variant": m["variant"], "num_classes": len(m["classes"]),
            "weights": m["weights"] if weights else None, "encoder": m["encoder"],
            "pretrained": bool(m["pretrained"]) and weights, "input_norm": m["input_norm"]}


class LoadedYolox(LoadedMember):
    """The EMA network of a YOLOX run."""

    def detect(self, image):
        return predict_boxes(self.net, image, self.device, **self.cfg["predict"],
                             input_norm=self.cfg["model"]["input_norm"])


@register_member("yolox")
class YoloxMember(MemberKind):
    """Boxes only; ``best.ckpt`` by validation box AP50."""

    detector = True
    smoke_overrides = ("train.sizes=[128,128]", "train.batch_size=2", "predict.size=128",
                       "train.num_workers=0")
    root_config = "paper_yolox_l.yaml"
    choices = {"train.optimizer": OPTIMIZERS, "model.input_norm": INPUT_NORMS,
               "model.variant": VARIANTS}

    def train(self, cfg, records, run_dir, device="auto", resume=False, progress_bar=True):
        seed_everything(int(cfg["seed"]))
        train, val = split_records(records, cfg["data"]["split"])
        labels = {name: i + 1 for i, name in enumerate(cfg["model"]["classes"])}
        tcfg, size = cfg["train"], int(cfg["train"]["sizes"][1])
        dataset = build_train_dataset(samples_from_records(train, labels), size, cfg["aug"],
                                      cfg["model"]["input_norm"])
        # Small cell datasets: one "epoch" draws ``repeats`` passes of random mosaics.
        sampler = torch.utils.data.RandomSampler(
            dataset, replacement=True, num_samples=len(dataset) * int(tcfg["repeats"]))
        loader = torch.utils.data.DataLoader(dataset, batch_size=int(tcfg["batch_size"]),
                                             sampler=sampler,
                                             num_workers=loader_workers(tcfg["num_workers"]))
        val_loader = torch.utils.data.DataLoader(samples_from_records(val, labels),
                                                 batch_size=4, collate_fn=val_collate)
        module = YoloxLitModule(_model_cfg(cfg), tcfg, cfg["predict"],
                                iters_per_epoch=len(loader))
        trainer = member_trainer(run_dir, cfg, device, monitor="val/box_ap50",
                                 progress_bar=progress_bar,
                                 log_every_n_steps=min(10, max(1, len(loader))))
        fit(trainer, module, loader, val_loader, resume=resume)

    def load(self, run_dir, cfg, device="auto", untrained=False):
        dev = select_device(device)
        torch.manual_seed(int(cfg["seed"]))
        if untrained:
            net = YoloxLitModule(_model_cfg(cfg), cfg["train"], cfg["predict"]).model
        else:  # the run's own weights replace any initial ``model.weights`` file
            module = YoloxLitModule(_model_cfg(cfg, weights=False), cfg["train"], cfg["predict"])
            load_run_weights(module, run_dir)
            net = module.ema_model
        return LoadedYolox(self, net.to(dev).eval(), cfg, dev)

    def evaluate(self, member, records):
        labels = {name: i + 1 for i, name in enumerate(member.classes)}
        gts, preds = {}, {}
        for sample in samples_from_records(records, labels):
            boxes, scores, _ = member.detect(sample.image)
            gts[sample.image_id], preds[sample.image_id] = sample.boxes, (boxes, scores)
        metrics = {f"box_{k}": v for k, v in coco_box_ap(gts, preds).items()}
        metrics["n_images"] = len(gts)
        return metrics
