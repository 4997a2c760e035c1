"""Lightning module: multi-/single-task training with the paper's weighted loss (eqs. 6-9).

``L = lambda_CE L_CE + lambda_CL L_CL + lambda_SEQ L_SEQ`` over the tasks switched on in
``tasks`` and present in the batch; Adam (lr 1e-3, weight decay 1e-4 in the paper) with the
learning rate multiplied by ``beta`` when the validation loss stops improving (eq. 5,
``ReduceLROnPlateau``).
"""

from __future__ import annotations

import lightning as L
import torch

from ensemblab.multimodal.losses import (
    contrastive_loss,
    sequence_loss,
    soft_cross_entropy,
    weighted_sum,
)
from ensemblab.projects.crossattn_vl.network import VLNet


def build_net(cfg: dict, vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
              num_answers: int) -> VLNet:
    """A :class:`VLNet` from the ``model``/``tasks``/``data`` sections of a config."""
    m, tasks = cfg["model"], cfg["tasks"]
    unimodal = m["variant"] in ("visual_only", "text_only")
    return VLNet(vocab_size, pad_id, bos_id, eos_id,
                 num_answers=num_answers if tasks.get("vqa") else 0,
                 dim=m["dim"], heads=m["heads"], layers=m["layers"], variant=m["variant"],
                 image=dict(m["image"]), text=dict(m["text"]),
                 decoder_layers=m["decoder_layers"] if tasks.get("caption") else 0,
                 matching_dim=m["matching_dim"] if tasks.get("matching") and not unimodal else 0,
                 max_length=cfg["data"]["max_length"], dropout=m["dropout"])


class VLModule(L.LightningModule):
    """Wraps :class:`VLNet` with losses and optimisation.

    Args:
        cfg: the resolved run config (saved as hyper-parameters).
        vocab_size, pad_id, bos_id, eos_id: tokenizer facts.
        num_answers: answer vocabulary size (0 without VQA).
        features: batches carry cached backbone maps instead of pixels.
    """

    def __init__(self, cfg: dict, vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 num_answers: int = 0, features: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.cfg, self.features, self.pad_id = cfg, features, pad_id
        self.net = build_net(cfg, vocab_size, pad_id, bos_id, eos_id, num_answers)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The task losses present in ``batch`` (keys ``seq``, ``cl``, ``ce``)."""
        net, out = self.net, {}
        regions, _ = net.encode_image(batch["image"], features=self.features)
        if net.decoder is not None and "cap_ids" in batch:
            prompt = net.encode_text(batch["prompt_ids"], batch["prompt_pad"])
            memory, mpad, _, _ = net.fuse(regions, prompt, batch["prompt_pad"])
            ids = batch["cap_ids"]
            logits = net.decoder(ids[:, :-1], memory, mpad)
            out["seq"] = sequence_loss(logits, ids[:, 1:], self.pad_id,
                                       self.cfg["loss"].get("label_smoothing", 0.0))
        if net.matcher is not None and "cap_ids" in batch:
            tokens = net.encode_text(batch["cap_ids"], batch["cap_pad"])
            img_emb, txt_emb = net.embed_pair(regions, tokens, batch["cap_pad"])
            dist = torch.cdist(img_emb, txt_emb)
            same = batch["same"]
            margin = self.cfg["loss"]["margin"]
            # Positives and mismatched in-batch pairs are averaged separately so the B^2 - B
            # negatives do not swamp the B positives.
            loss = contrastive_loss(dist[same], torch.ones_like(dist[same]), margin)
            if (~same).any():
                loss = loss + contrastive_loss(dist[~same], torch.zeros_like(dist[~same]), margin)
            out["cl"] = loss
        if net.classifier is not None and "q_ids" in batch:
            tokens = net.encode_text(batch["q_ids"], batch["q_pad"])
            _, _, pooled, _ = net.fuse(regions, tokens, batch["q_pad"])
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

    def configure_optimizers(self):
        t = self.cfg["train"]
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=t["lr"], weight_decay=t["weight_decay"])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=t["beta"],
                                                           patience=t["patience"])
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "monitor": "val/loss", "interval": "epoch"}}
