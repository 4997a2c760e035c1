"""The UPerNet member (Xiao et al. 2018, "Unified Perceptual Parsing"): semantic context for cells.

UPerNet = encoder + FPN with a pyramid pooling module on the top stage, from
``segmentation_models_pytorch``; as in the paper's (mmseg) recipe an auxiliary FCN head on the
stride-16 encoder stage adds ``aux_weight`` x its loss during training. Two modes:

- ``full``: the whole image -> background / cell / border probabilities; its cell probability is
  one vote of the consensus, and connected components of "cell, not border" give instances
  when UPerNet is scored alone.
- ``crop``: a RoIAligned crop around one box -> that cell's mask probability; predicted on the
  detector's boxes and pasted back (``ensemble/crops.py``).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from ensemblab.errors import ConfigError


class UperNetWithAux(torch.nn.Module):
    """``smp.UPerNet`` plus an auxiliary FCN head on the second-deepest encoder stage.

    Args:
        encoder: smp encoder name (``resnet18``, ``resnet50``, ``resnext50_32x4d``, ...).
        classes: output channels (3 for full mode, 1 for crop mode).
        decoder_channels: FPN / PPM width.
        in_channels: image channels (1: grayscale phase contrast).
        weights: optional local checkpoint of the whole network or of its encoder.
    """

    def __init__(self, encoder: str = "resnet18", classes: int = 3, decoder_channels: int = 256,
                 in_channels: int = 1, weights: str | None = None):
        super().__init__()
        self.net = smp.UPerNet(encoder_name=encoder, encoder_weights=None,
                               in_channels=in_channels, classes=classes,
                               decoder_channels=decoder_channels)
        aux_in = self.net.encoder.out_channels[-2]
        mid = max(aux_in // 4, 32)
        self.aux_head = torch.nn.Sequential(
            torch.nn.Conv2d(aux_in, mid, 3, padding=1, bias=False), torch.nn.BatchNorm2d(mid),
            torch.nn.ReLU(inplace=True), torch.nn.Dropout2d(0.1), torch.nn.Conv2d(mid, classes, 1))
        if weights:
            self.load_local_weights(weights)

    def load_local_weights(self, path: str) -> None:
        """Load a local file into the matching parameters (whole model or encoder only)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: UPerNet weights file not found (give a local file)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        for target in (self, self.net.encoder):
            own = target.state_dict()
            match = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            if match:
                target.load_state_dict(match, strict=False)
                return
        raise ConfigError(f"{path}: no tensor matches the UPerNet or its encoder")

    def forward(self, x: torch.Tensor):
        """``x [B, 1, H, W]`` (H, W multiples of 32) -> logits ``[B, C, H, W]``; in training also
        the auxiliary logits ``[B, C, H, W]``."""
        features = self.net.encoder(x)
        main = self.net.segmentation_head(self.net.decoder(features))
        if not self.training:
            return main
        aux = F.interpolate(self.aux_head(features[-2]), size=x.shape[-2:], mode="bilinear",
                            align_corners=False)
        return main, aux


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
        model_cfg: ``encoder, decoder_channels, weights`` (+ ``border`` for full mode).
        train_cfg: ``lr, weight_decay, epochs, aux_weight`` (+ ``class_weights``).
    """

    def __init__(self, mode: str, model_cfg: dict, train_cfg: dict):
        super().__init__()
        if mode not in ("full", "crop"):
            raise ConfigError(f"model.mode must be full or crop, got {mode!r}")
        self.save_hyperparameters()
        self.mode, self.train_cfg = mode, train_cfg
        classes = (3 if model_cfg.get("border", True) else 2) if mode == "full" else 1
        self.net = UperNetWithAux(model_cfg["encoder"], classes,
                                  int(model_cfg["decoder_channels"]), 1, model_cfg.get("weights"))
        self.inter = self.union = 0.0
        self.ious: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode == "full":
            weight = self.train_cfg.get("class_weights")
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
        opt = torch.optim.AdamW(self.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(cfg["epochs"])))
        return {"optimizer": opt, "lr_scheduler": sched}
