"""Lightning module: multi-/single-task training with the paper's weighted loss (eqs. 6-9).

``L = lambda_CE L_CE + lambda_CL L_CL + lambda_SEQ L_SEQ`` over the tasks switched on in
``tasks`` and present in the batch; Adam (lr 1e-3, weight decay 1e-4 in the paper) with the
learning rate multiplied by ``beta`` when the validation loss stops improving (eq. 5,
``ReduceLROnPlateau``). After each validation epoch the ``val_scores`` callable that
:func:`.commands.train_run` sets measures the task metrics on the validation images (CIDEr-D of
greedy captions, image<->text R@5, VQA accuracy); their mean ``val/score`` picks the best
checkpoint and stops training early.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch

from ensemblab.engine.optim import build_optimizer
from ensemblab.multimodal.losses import (
    contrastive_loss,
    sequence_loss,
    soft_cross_entropy,
    triplet_ranking_loss,
    weighted_sum,
)
from ensemblab.projects.crossattn_vl.network import VLNet
from ensemblab.registry import Registry

OPTIMIZERS = ("adam", "adamw")
MATCHING_LOSSES = Registry("matching loss")
"""Name -> ``(img_emb [B,e], txt_emb [B,e], same [B,B], loss cfg, epoch) -> L_CL``."""


@MATCHING_LOSSES.register("contrastive")
def _paper_contrastive(img, txt, same, cfg: dict, epoch: int) -> torch.Tensor:
    """The paper's ``y D + (1 - y) max(0, m - D)``; positives and negatives averaged apart so
    the B^2 - B in-batch negatives do not swamp the B positives."""
    dist = torch.cdist(img, txt)
    loss = contrastive_loss(dist[same], torch.ones_like(dist[same]), cfg["margin"])
    if (~same).any():
        loss = loss + contrastive_loss(dist[~same], torch.zeros_like(dist[~same]), cfg["margin"])
    return loss


@MATCHING_LOSSES.register("max_violation")
def _vse_hardest(img, txt, same, cfg: dict, epoch: int) -> torch.Tensor:
    """VSE++ hardest in-batch negative, after ``warmup_epochs`` of the summed form."""
    return triplet_ranking_loss(img @ txt.T, same, cfg["ranking_margin"],
                                hardest=epoch >= cfg["warmup_epochs"])


@MATCHING_LOSSES.register("sum_violation")
def _vse_sum(img, txt, same, cfg: dict, epoch: int) -> torch.Tensor:
    """VSE (sum over all in-batch negatives)."""
    return triplet_ranking_loss(img @ txt.T, same, cfg["ranking_margin"], hardest=False)


def build_net(cfg: dict, vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
              num_answers: int, text_vocab_size: int, text_pad_id: int) -> VLNet:
    """A :class:`VLNet` from the ``model``/``tasks``/``data`` sections of a config."""
    m, tasks = cfg["model"], cfg["tasks"]
    unimodal = m["variant"] in ("visual_only", "text_only")
    return VLNet(vocab_size, pad_id, bos_id, eos_id,
                 num_answers=num_answers if tasks.get("vqa") else 0,
                 dim=m["dim"], heads=m["heads"], layers=m["layers"], variant=m["variant"],
                 image=dict(m["image"]),
                 text=dict(m["text"], vocab_size=text_vocab_size, pad_id=text_pad_id),
                 decoder_layers=m["decoder_layers"] if tasks.get("caption") else 0,
                 matching_dim=m["matching_dim"] if tasks.get("matching") and not unimodal else 0,
                 max_length=cfg["data"]["max_length"], dropout=m["dropout"])


class VLModule(L.LightningModule):
    """Wraps :class:`VLNet` with losses and optimisation.

    Args:
        cfg: the resolved run config (saved as hyper-parameters).
        vocab_size, pad_id, bos_id, eos_id: caption decoder tokenizer facts.
        num_answers: answer vocabulary size (0 without VQA).
        text_vocab_size, text_pad_id: the text encoder's tokenizer (ALBERT from config).

    Attributes:
        features: batches carry cached trunk maps instead of pixels (set by :mod:`.commands`).
        val_scores: ``(net) -> {metric: value}`` on the validation images, set by :mod:`.commands`.
    """

    def __init__(self, cfg: dict, vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 num_answers: int = 0, text_vocab_size: int = 0, text_pad_id: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.cfg, self.pad_id, self.features = cfg, pad_id, False
        self.net = build_net(cfg, vocab_size, pad_id, bos_id, eos_id, num_answers,
                             text_vocab_size or vocab_size, text_pad_id)
        self.matching_loss = MATCHING_LOSSES.get(cfg["loss"]["matching"])
        self.val_scores: Callable[[VLNet], dict[str, float]] | None = None

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The task losses present in ``batch`` (keys ``seq``, ``cl``, ``ce``)."""
        net, out = self.net, {}
        regions, _ = net.encode_image(batch["image"], features=self.features)
        if net.decoder is not None and "cap_dec" in batch:
            prompt = batch["prompt"]
            memory, mpad, _, _ = net.fuse(regions, net.encode_text(**prompt), prompt["pad"])
            ids = batch["cap_dec"]
            logits = net.decoder(ids[:, :-1], memory, mpad)
            out["seq"] = sequence_loss(logits, ids[:, 1:], self.pad_id,
                                       self.cfg["loss"]["label_smoothing"])
        if net.matcher is not None and "cap" in batch:
            cap = batch["cap"]
            out["cl"] = self.matching_loss(net.embed_image(regions),
                                           net.embed_text(net.encode_text(**cap), cap["pad"]),
                                           batch["same"], self.cfg["loss"], self.current_epoch)
        if net.classifier is not None and "q" in batch:
            q = batch["q"]
            _, _, pooled, _ = net.fuse(regions, net.encode_text(**q), q["pad"])
            out["ce"] = soft_cross_entropy(net.classifier(pooled), batch["target"])
        return out

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        parts = self.losses(batch)
        w = self.cfg["loss"]
        loss = weighted_sum(parts, {"ce": w["ce"], "cl": w["cl"], "seq": w["seq"]})
        bsz = batch["image"].shape[0]
        for name, value in parts.items():
            self.log(f"{stage}/loss_{name}", value, batch_size=bsz, on_epoch=True,
                     on_step=False)
        self.log(f"{stage}/loss", loss, batch_size=bsz, on_epoch=True, on_step=False,
                 prog_bar=True)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.val_scores is None or self.trainer.sanity_checking:
            return
        scores = self.val_scores(self.net)
        for name, value in scores.items():
            self.log(f"val/{name}", float(value), prog_bar=name == "score")

    def configure_optimizers(self):
        t = self.cfg["train"]
        params = [p for p in self.parameters() if p.requires_grad]
        opt = build_optimizer(t["optimizer"], params, lr=t["lr"], weight_decay=t["weight_decay"])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=t["beta"],
                                                           patience=t["patience"])
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "monitor": "val/loss", "interval": "epoch"}}
