"""Lightning module: SE-U-Net variants trained with cross-entropy (+ Dice), scored by mIoU.

Loss (Sec. 3/4 of the paper): ``L = CE(logits, y)``; with supervision at the encoder end,
``L = (1 - lambda) * L1 + lambda * L2`` where ``L1`` is the output's loss and ``L2`` the loss
of the upsampled 1x1-conv prediction from the deepest features. ``loss="dice_ce"`` adds the
multi-class soft Dice loss to CE (SMP ``DiceLoss``; a class absent from a batch counts 0): the
CPU schedule uses it so that synapses (under 1 % of the ssTEM pixels) are learnt in few steps.
Validation logs ``val/miou`` and per-class IoU; the run keeps the checkpoint of the best
validation mIoU (the paper evaluates at the best validation mIoU).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from ensemblab.config import check_choices
from ensemblab.engine.optim import build_optimizer
from ensemblab.metrics.semantic import ConfusionMatrixEvaluator
from ensemblab.projects.fre_unet.se_unet import SEUNet

LOSSES = ("ce", "dice_ce")
SCHEDULES = ("cosine", "constant")
OPTIMIZERS = ("adam", "adamw")
TRAIN_CHOICES = {"train.schedule": SCHEDULES, "train.loss": LOSSES,
                 "train.optimizer": OPTIMIZERS}


def build_model(model_cfg: dict[str, Any], num_classes: int, seed: int = 0) -> SEUNet:
    """An :class:`SEUNet` from the config's ``model`` section (every key of
    ``configs/baseline.yaml``; FRE seeded with ``seed``)."""
    fre = {"seed": seed, **model_cfg["fre"]} if model_cfg["fre"] else {}
    return SEUNet(in_channels=int(model_cfg["in_channels"]), num_classes=num_classes,
                  width=float(model_cfg["width"]), deep_layers=bool(model_cfg["deep_layers"]),
                  supervision=bool(model_cfg["supervision"]),
                  dropout=float(model_cfg["dropout"]), fre=fre)


class FRESegmentation(L.LightningModule):
    """Trains an SE-U-Net variant.

    Args:
        model_cfg: the ``model`` config section.
        class_names: names of the ``K`` classes.
        lr: learning rate.
        weight_decay: weight decay (Adam: L2; AdamW: decoupled).
        supervision_lambda: ``lambda`` of the supervision loss mix.
        seed: seeds FRE's channel draws.
        schedule: ``cosine`` (decay to 0 over training) or ``constant`` learning rate.
        loss: ``ce`` (the paper) or ``dice_ce`` (cross-entropy + soft Dice).
        optimizer: ``adam`` (the paper) or ``adamw``.

    Raises:
        ConfigError: ``schedule``, ``loss`` or ``optimizer`` not one of its allowed values.
    """

    def __init__(self, model_cfg: dict[str, Any], class_names: list[str], lr: float = 1e-3,
                 weight_decay: float = 0.0, supervision_lambda: float = 0.5, seed: int = 0,
                 schedule: str = "cosine", loss: str = "ce", optimizer: str = "adam"):
        super().__init__()
        check_choices({"train": {"schedule": schedule, "loss": loss, "optimizer": optimizer}},
                      TRAIN_CHOICES, "FRESegmentation")
        self.save_hyperparameters()
        self.class_names = list(class_names)
        self.model = build_model(model_cfg, len(class_names), seed)
        self.lam = float(supervision_lambda)
        self.dice = DiceLoss(mode="multiclass") if loss == "dice_ce" else None
        self.evaluator = ConfusionMatrixEvaluator(len(class_names), class_names=class_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1, H, W]`` -> logits ``[N, K, H, W]``."""
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        # FRE re-selects its channels every epoch (Sec. 3.2), reproducibly from (seed, epoch).
        if self.model.fre is not None:
            self.model.fre.set_epoch(self.current_epoch)

    def criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of logits ``[N, K, H, W]`` (computed in fp32) against labels ``[N, H, W]``."""
        logits = logits.float()
        loss = F.cross_entropy(logits, y)
        return loss + self.dice(logits, y) if self.dice is not None else loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        logits, aux = self.model(x, return_aux=True)
        loss = self.criterion(logits, y)
        if aux is not None:
            loss = (1.0 - self.lam) * loss + self.lam * self.criterion(aux, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def on_validation_epoch_start(self) -> None:
        self.evaluator.reset()

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        # ``(x, y, tile indices)``; the indices let a tile that DDP padding repeats count once
        # in the confusion matrix (a batch without them is summed as given).
        x, y, *index = batch
        logits = self.model(x)
        self.log("val/loss", self.criterion(logits, y), on_epoch=True, batch_size=len(x))
        self.evaluator.update(logits.argmax(1).cpu().numpy(), y.cpu().numpy(),
                              sample_ids=index[0].tolist() if index else None)

    def on_validation_epoch_end(self) -> None:
        scores = self.evaluator.compute()
        self.log("val/miou", float(scores["miou"]))
        for name, iou in zip(self.class_names, scores["iou"]):
            self.log(f"val/iou_{name}", float(iou))

    def configure_optimizers(self):
        opt = build_optimizer(self.hparams.optimizer, self.parameters(), lr=self.hparams.lr,
                              weight_decay=self.hparams.weight_decay)
        if self.hparams.schedule == "constant":
            return opt
        # Cosine decay to zero over all steps: the small final steps let BatchNorm's running
        # statistics catch up with the weights, so eval-mode scores track training.
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def evaluate_loader(model: torch.nn.Module, loader, class_names: list[str],
                    device: torch.device) -> dict[str, Any]:
    """Per-class IoU and mIoU of ``model`` (eval mode) over a loader of ``(x, y)`` or
    ``(x, y, tile indices)`` tiles (each index scored once)."""
    model.eval().to(device)
    evaluator = ConfusionMatrixEvaluator(len(class_names), class_names=class_names)
    for x, y, *index in loader:
        evaluator.update(model(x.to(device)).argmax(1).cpu().numpy(), y.numpy(),
                         sample_ids=index[0].tolist() if index else None)
    return evaluator.compute()
