"""Training the Mask R-CNN member through the shared Lightning engine.

``train_maskrcnn`` is the body of ``ensemblab sartorius_cells train``: it splits the data
(``data.split``), builds :class:`MaskRCNNModule`, fits it with :func:`ensemblab.engine.fit`
(checkpoints, resume, AMP on GPU, CSV curves), then tunes the post-processing thresholds on
the validation images at full resolution and saves them as ``RUN/postprocess.json``.
The validation score logged each epoch (``val/kaggle_score``) is computed at the training
resolution with the default thresholds, a cheap proxy that selects ``best.ckpt``.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ensemblab.data.rle import masks_to_instance_map
from ensemblab.engine import build_trainer, fit, seed_everything
from ensemblab.metrics.instance import kaggle_score
from ensemblab.projects.sartorius_cells.data import (
    CellRecord,
    CellTrainDataset,
    collate,
    split_records,
)
from ensemblab.projects.sartorius_cells.maskrcnn import (
    build_maskrcnn,
    predict_images,
    to_model_input,
)
from ensemblab.projects.sartorius_cells.postprocess import (
    PostprocessParams,
    instances_to_idmap,
    postprocess,
)

MODEL_KEYS = ("backbone", "v2_heads", "image_size", "anchor_sizes", "aspect_ratios",
              "mask_head_layers", "mask_head_channels", "box_head_dim", "rpn_pre_nms_top_n_train",
              "rpn_post_nms_top_n_train",
              "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test", "box_batch_size_per_image",
              "box_detections_per_img", "box_score_thresh", "box_nms_thresh", "weights",
              "backbone_weights", "input_norm", "mask_logit_init")


def model_from_config(model_cfg: dict) -> torch.nn.Module:
    """Build the torchvision Mask R-CNN described by ``cfg["model"]`` (classes resolved)."""
    kwargs = {k: model_cfg[k] for k in MODEL_KEYS if k in model_cfg}
    return build_maskrcnn(num_classes=len(model_cfg["classes"]) + 1, **kwargs)


class MaskRCNNModule(L.LightningModule):
    """Lightning wrapper: summed torchvision losses, AdamW/SGD, warm-up + cosine schedule.

    Args:
        model_cfg: ``cfg["model"]`` with ``classes`` resolved.
        train_cfg: ``cfg["train"]`` (``optimizer``, ``lr``, ``weight_decay``, ``warmup_steps``).
    """

    def __init__(self, model_cfg: dict, train_cfg: dict):
        super().__init__()
        self.save_hyperparameters()
        self.model = model_from_config(model_cfg)
        self.image_size = int(model_cfg["image_size"])
        self.train_cfg = train_cfg

    def training_step(self, batch, batch_idx):
        images, targets = batch
        losses = self.model([to_model_input(im) for im in images], targets)
        loss = sum(losses.values())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
        for name, value in losses.items():
            self.log(f"train/{name}", value, batch_size=len(images))
        return loss

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        uint8 = [(im[0] * 255).round().byte().cpu().numpy() for im in images]
        preds = predict_images(self.model, uint8, self.image_size, self.device)
        scores = []
        for pred, target in zip(preds, targets):
            idmap = masks_to_instance_map(target["masks"].bool().cpu().numpy())
            scores.append(kaggle_score(instances_to_idmap(postprocess(pred, PostprocessParams())),
                                       idmap))
        self.log("val/kaggle_score", float(np.mean(scores)), prog_bar=True,
                 batch_size=len(images))

    def configure_optimizers(self):
        cfg = self.train_cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.get("optimizer", "adamw") == "sgd":
            opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=0.9,
                                  weight_decay=cfg.get("weight_decay", 1e-4))
        else:
            opt = torch.optim.AdamW(params, lr=cfg["lr"],
                                    weight_decay=cfg.get("weight_decay", 1e-4))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(int(cfg.get("warmup_steps", 0)), total // 2)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def resolve_classes(cfg: dict, records: list[CellRecord]) -> dict:
    """Fill ``cfg["model"]["classes"]`` from the data when the config leaves it empty."""
    if not cfg["model"].get("classes"):
        cfg["model"]["classes"] = sorted({r.cell_type for r in records})
    return cfg


def _loader(records, cfg, train: bool) -> torch.utils.data.DataLoader:
    tcfg = cfg["train"]
    ds = CellTrainDataset(records, cfg["model"]["classes"], int(cfg["model"]["image_size"]),
                          train=train, seed=int(cfg.get("seed", 0)), crop=tcfg.get("crop"))
    if train and int(tcfg.get("repeats", 1)) > 1:
        ds = torch.utils.data.ConcatDataset([ds] * int(tcfg["repeats"]))
    return torch.utils.data.DataLoader(ds, batch_size=int(tcfg["batch_size"]) if train else 1,
                                       shuffle=train, collate_fn=collate,
                                       num_workers=int(tcfg.get("num_workers", 0)))


def train_maskrcnn(cfg: dict, run_dir: Path, records: list[CellRecord], device: str = "auto",
                   resume: bool = False, progress_bar: bool = True) -> MaskRCNNModule:
    """Fit the member on the training split; returns the module with the best weights loaded.

    Args:
        cfg: resolved config (``model.classes`` filled, see :func:`resolve_classes`).
        run_dir: the prepared run folder.
        records: the whole dataset; ``cfg["data"]["split"]`` picks the validation part.
        device: ``auto | cpu | cuda``.
        resume: continue from ``RUN/checkpoints/last.ckpt``.
        progress_bar: show Lightning's progress bar.
    """
    seed_everything(int(cfg.get("seed", 0)))
    train_recs, val_recs = split_records(records, cfg["data"]["split"])
    tcfg = cfg["train"]
    module = MaskRCNNModule(cfg["model"], tcfg)
    trainer = build_trainer(run_dir, int(tcfg["epochs"]), device=device,
                            monitor="val/kaggle_score" if val_recs else None, mode="max",
                            log_every_n_steps=int(tcfg.get("log_every_n_steps", 5)),
                            gradient_clip_val=tcfg.get("gradient_clip"),
                            progress_bar=progress_bar,
                            check_val_every_n_epoch=int(tcfg.get("val_every", 1)),
                            num_sanity_val_steps=0)
    fit(trainer, module, _loader(train_recs, cfg, True),
        _loader(val_recs, cfg, False) if val_recs else None, resume=resume)
    best = Path(run_dir) / "checkpoints" / "best.ckpt"
    if best.is_file():
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    return module
