"""The YOLOX member: anchor-free cell detector on ``pixeltable-yolox``, trained through our engine.

YOLOX (Ge et al. 2021): CSPDarknet + PAFPN, decoupled head, SiLU, SimOTA assignment, mosaic
and mixup, multi-scale training, EMA weights, L1 loss switched on once mosaic is closed. The
package's own Trainer hard-codes CUDA, so :class:`YoloxLitModule` re-states its recipe as a
Lightning module (``ensemblab.engine``), which runs on CPU and GPU alike. The paper uses YOLOX
only for boxes; masks come from Mask R-CNN / UPerNet in the ensemble (``ensemble/fusion.py``).
"""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from yolox.config import YoloxConfig
from yolox.utils import LRScheduler, ModelEMA

from ensemblab.engine import best_checkpoint, open_run, select_device
from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.box_ap import coco_box_ap
from ensemblab.projects.sartorius_cells.yolox_data import BoxSample, letterbox_scale


def build_yolox(variant: str = "yolox_nano", num_classes: int = 3,
                weights: str | None = None) -> torch.nn.Module:
    """A YOLOX network from the package's named configs (``yolox_nano .. yolox_x``).

    Args:
        variant: ``yolox_nano | yolox_tiny | yolox_s | yolox_m | yolox_l | yolox_x``.
        num_classes: detection classes (cell types).
        weights: optional local ``.pth`` (YOLOX release format ``{"model": state_dict}`` or a
            plain state dict); tensors whose shape differs (the 80-class COCO head) are skipped.

    Returns:
        ``yolox.models.YoloxModule``: ``model(x[B,3,S,S], targets)`` -> loss dict in train mode,
        ``[B, A, 5 + C]`` (cx, cy, w, h, obj, cls...) in eval mode.
    """
    cfg = YoloxConfig.get_named_config(variant)
    if cfg is None:
        raise ConfigError(f"unknown YOLOX variant {variant!r} (yolox_nano .. yolox_x)")
    cfg.num_classes = num_classes
    model = cfg.get_model()
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"{path}: YOLOX weights file not found (give a local .pth)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in state.items()
                               if k in own and own[k].shape == v.shape}, strict=False)
    return model


def yolox_param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """YOLOX's three groups: BN weights (no decay), other weights (decay), biases (no decay)."""
    no_decay, decay, biases = [], [], []
    for name, mod in model.named_modules():
        if isinstance(getattr(mod, "bias", None), torch.nn.Parameter):
            biases.append(mod.bias)
        if isinstance(mod, torch.nn.BatchNorm2d) or "bn" in name:
            no_decay.append(mod.weight)
        elif isinstance(getattr(mod, "weight", None), torch.nn.Parameter):
            decay.append(mod.weight)
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay},
            {"params": biases, "weight_decay": 0.0}]


class YoloxLitModule(L.LightningModule):
    """YOLOX training recipe as a Lightning module.

    Per step: pick an input side (multi-scale, progressively larger early in training), resize the
    batch and its boxes, compute the head's loss (IoU + objectness + class (+ L1 after mosaic is
    closed)), step the optimiser with YOLOX's warm-up cosine schedule, update the EMA copy.
    Validation and prediction use the EMA weights (box AP50 on held-out images).

    Args:
        model_cfg: ``variant, num_classes, weights``.
        train_cfg: ``epochs, batch_size, optimizer (sgd|adamw), lr, weight_decay, momentum,
            warmup_epochs, no_aug_epochs, min_lr_ratio, ema_decay, sizes [min, max],
            progressive_epochs``.
        predict_cfg: ``size, conf, nms_iou, max_det`` used in validation.
        iters_per_epoch: batches per epoch (for the schedule).
    """

    def __init__(self, model_cfg: dict, train_cfg: dict, predict_cfg: dict,
                 iters_per_epoch: int = 1):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_yolox(model_cfg["variant"], model_cfg["num_classes"],
                                 model_cfg.get("weights"))
        self.ema = ModelEMA(self.model, decay=train_cfg["ema_decay"])
        self.ema_model = self.ema.ema  # registered as a child: saved and moved with the module
        self.train_cfg, self.predict_cfg = train_cfg, predict_cfg
        self.iters_per_epoch = max(1, iters_per_epoch)
        self.val_gts: dict[str, np.ndarray] = {}
        self.val_preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def input_side(self) -> int:
        """Multi-scale side for this step: random multiple of 32 in ``[min, hi]``, where ``hi``
        grows from ``min`` to ``max`` over ``progressive_epochs`` (progressive resizing)."""
        lo, hi = (int(s) // 32 for s in self.train_cfg["sizes"])
        grow = self.train_cfg.get("progressive_epochs", 0)
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
        groups = yolox_param_groups(self.model, cfg["weight_decay"])
        if cfg["optimizer"] == "sgd":
            return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True)
        if cfg["optimizer"] == "adamw":
            return torch.optim.AdamW(groups, lr=cfg["lr"])
        raise ConfigError(f"train.optimizer must be sgd or adamw, got {cfg['optimizer']!r}")

    def validation_step(self, batch, batch_idx):
        for sample in batch:
            boxes, scores, _ = predict_boxes(self.ema_model, sample.image, self.device,
                                             **self.predict_cfg)
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


@torch.no_grad()
def predict_boxes(model: torch.nn.Module, image: np.ndarray, device: torch.device | str,
                  size: int = 416, conf: float = 0.05, nms_iou: float = 0.65,
                  max_det: int = 3000, hflip: bool = False):
    """Detect cells in one image.

    Args:
        model: a YOLOX network (EMA weights).
        image: uint8 ``[H, W]`` grayscale.
        device: torch device.
        size: square letterbox input side (multiple of 32).
        conf: minimum obj x class score.
        nms_iou: class-agnostic NMS IoU.
        max_det: detections kept (well above 1000: dense images hold ~800 cells).
        hflip: predict on the mirrored image (test-time augmentation); boxes are mapped back.

    Returns:
        ``(boxes float32[N, 4] xyxy in image pixels, scores float32[N], labels int64[N]
        1-based)``, sorted by score.
    """
    model.eval()
    h, w = image.shape[:2]
    img = image[:, ::-1] if hflip else image
    r = letterbox_scale(h, w, size)
    nh, nw = round(h * r), round(w * r)
    canvas = np.full((size, size), 114, dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(np.ascontiguousarray(img), (nw, nh),
                                  interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(canvas).float().to(device)[None, None].expand(1, 3, size, size)
    out = model(x)[0]
    cls_conf, cls_idx = out[:, 5:].max(dim=1)
    score = out[:, 4] * cls_conf
    keep = score >= conf
    out, score, cls_idx = out[keep], score[keep], cls_idx[keep]
    boxes = torch.cat([out[:, :2] - out[:, 2:4] / 2, out[:, :2] + out[:, 2:4] / 2], dim=1) / r
    order = torchvision.ops.nms(boxes, score, nms_iou)[:max_det]
    boxes, score, cls_idx = boxes[order].cpu().numpy(), score[order].cpu().numpy(), cls_idx[order]
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    if hflip:
        boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    return boxes.astype(np.float32), score.astype(np.float32), cls_idx.cpu().numpy() + 1


def load_yolox_member(run_dir: str | Path, device: str = "auto"):
    """The EMA network of a trained YOLOX run, its config and device.

    Returns:
        ``(model in eval mode, cfg, torch.device)``.
    """
    run_dir, cfg = open_run(run_dir)
    dev = select_device(device)
    # The run's own weights replace any initial ``model.weights`` file: do not read it again.
    model_cfg = {"variant": cfg["model"]["variant"], "num_classes": len(cfg["model"]["classes"]),
                 "weights": None}
    module = YoloxLitModule.load_from_checkpoint(best_checkpoint(run_dir), map_location=dev,
                                                 weights_only=True, model_cfg=model_cfg)
    return module.ema_model.to(dev).eval(), cfg, dev


def val_collate(batch: list[BoxSample]) -> list[BoxSample]:
    """Validation batches stay lists of :class:`BoxSample` (full images of varying size)."""
    return batch
