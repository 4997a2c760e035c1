"""The Mask R-CNN member: Lightning training, threshold tuning, loading and its ensemble roles.

Training fits :class:`MaskRCNNModule` with the shared engine (checkpoints, resume, AMP on GPU,
bf16 autocast on CPU when ``train.bf16``, CSV curves), then tunes the post-processing
thresholds per cell type on the validation images at full resolution and saves them as
``RUN/postprocess.json``. The validation score logged each epoch (``val/kaggle_score``) is
computed at the training resolution with the default thresholds, a cheap proxy that selects
``best.ckpt``. In an ensemble the member gives boxes (a detector) and its mask head's
probabilities on the fused boxes (a mask source); alone it is the paper's set-up 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ensemblab.config import check_choice
from ensemblab.data.rle import masks_to_instance_map
from ensemblab.engine import (
    fit,
    load_run_weights,
    seed_everything,
    select_device,
)
from ensemblab.engine.optim import build_optimizer
from ensemblab.io import write_json
from ensemblab.metrics.instance import kaggle_score
from ensemblab.projects.sartorius_cells.data import CellRecord, split_records
from ensemblab.projects.sartorius_cells.detectron2.commands import detectron2_member
from ensemblab.projects.sartorius_cells.detectron2.model import is_detectron2_model
from ensemblab.projects.sartorius_cells.evaluation import score_instances
from ensemblab.projects.sartorius_cells.members.base import (
    ImageMemo,
    LoadedMember,
    MemberKind,
    member_trainer,
    register_member,
)
from ensemblab.projects.sartorius_cells.members.maskrcnn_bf16 import check_precision, to_bf16
from ensemblab.projects.sartorius_cells.members.maskrcnn_data import CellTrainDataset, collate
from ensemblab.projects.sartorius_cells.members.maskrcnn_model import (
    INPUT_NORMS,
    MASK_LOGIT_INITS,
    build_maskrcnn,
    predict_features,
    predict_images,
    window_probs,
)
from ensemblab.projects.sartorius_cells.postprocess import (
    ParamsByType,
    PostprocessParams,
    image_cell_type,
    postprocess,
    tune_params,
)
from ensemblab.projects.sartorius_cells.structures import Instances, instances_to_idmap
from ensemblab.threads import loader_workers

PARAMS_FILE = "postprocess.json"
OPTIMIZERS = ("sgd", "adamw")
MODEL_KEYS = ("backbone", "pretrained", "trainable_stages", "v2_heads", "image_size",
              "anchor_sizes", "aspect_ratios", "mask_head_layers", "mask_head_channels",
              "mask_resolution",
              "box_head_dim", "rpn_pre_nms_top_n_train", "rpn_post_nms_top_n_train",
              "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test", "box_batch_size_per_image",
              "box_detections_per_img", "box_score_thresh", "box_nms_thresh", "weights",
              "backbone_weights", "input_norm", "mask_logit_init")


def model_from_config(model_cfg: dict, pretrained: bool = True) -> torch.nn.Module:
    """The Mask R-CNN of ``cfg["model"]`` (classes resolved); ``pretrained=False`` skips the
    encoder's weight file (a checkpoint replaces them anyway)."""
    if model_cfg.get("detectron2"):  # an imported detectron2 model (detectron2/commands.py)
        return detectron2_member(model_cfg, load_weights=pretrained)
    kwargs = {k: model_cfg[k] for k in MODEL_KEYS if k in model_cfg}
    kwargs["pretrained"] = bool(kwargs.get("pretrained")) and pretrained
    return build_maskrcnn(num_classes=len(model_cfg["classes"]) + 1, **kwargs)


class MaskRCNNModule(L.LightningModule):
    """Lightning wrapper: summed torchvision losses, AdamW/SGD, warm-up + cosine schedule.

    Args:
        model_cfg: ``cfg["model"]`` with ``classes`` resolved.
        train_cfg: ``cfg["train"]`` (``optimizer`` (:data:`OPTIMIZERS`), ``lr``,
            ``weight_decay``, ``warmup_steps``).
        pretrained: load the encoder's weights (False when a checkpoint will be loaded).
    """

    def __init__(self, model_cfg: dict, train_cfg: dict, pretrained: bool = True):
        super().__init__()
        self.save_hyperparameters()
        self.model = model_from_config(model_cfg, pretrained)
        self.image_size = int(model_cfg["image_size"])
        self.train_cfg = train_cfg

    def training_step(self, batch, batch_idx):
        images, targets = batch
        losses = self.model(images, targets)
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
        # SGD momentum 0.9: the torchvision detection reference recipe.
        opt = build_optimizer(check_choice(cfg, "optimizer", OPTIMIZERS, "train"), params,
                              lr=cfg["lr"], weight_decay=cfg["weight_decay"], momentum=0.9)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(int(cfg["warmup_steps"]), total // 2)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _loader(records, cfg, train: bool) -> torch.utils.data.DataLoader:
    tcfg = cfg["train"]
    ds = CellTrainDataset(records, cfg["model"]["classes"], int(cfg["model"]["image_size"]),
                          train=train, seed=int(cfg["seed"]), crop=tcfg["crop"])
    if train and int(tcfg["repeats"]) > 1:
        ds = torch.utils.data.ConcatDataset([ds] * int(tcfg["repeats"]))
    return torch.utils.data.DataLoader(ds, batch_size=int(tcfg["batch_size"]) if train else 1,
                                       shuffle=train, collate_fn=collate,
                                       num_workers=loader_workers(tcfg["num_workers"]))


class LoadedMaskRCNN(LoadedMember):
    """A Mask R-CNN with its tuned per-cell-type thresholds (``params``)."""

    def __init__(self, kind, net, cfg, device, params: ParamsByType):
        super().__init__(kind, net, cfg, device)
        self.params = params
        self.image_size = int(cfg["model"]["image_size"])
        # one backbone pass per image and flip serves raw() and window_probs() (see ImageMemo)
        self._features = ImageMemo(2)
        self._raw = ImageMemo(2)

    def features(self, image: np.ndarray):
        """The backbone's ``(ImageList, FPN features)`` of uint8 ``[H, W]`` (memoised);
        ``None`` for a detectron2-imported model, which predicts through its own resize."""
        if is_detectron2_model(self.net):
            return None
        return self._features.get(image, lambda: predict_features(
            self.net, [image], self.image_size, self.device))

    def raw(self, image: np.ndarray) -> Instances:
        """Detections before post-processing (probability crops on integer boxes)."""
        return self._raw.get(image, lambda: predict_images(
            self.net, [image], self.image_size, self.device, features=self.features(image))[0])

    def finalize(self, raw: Instances, params: ParamsByType | None = None) -> Instances:
        """Post-process with the thresholds of the image's (predicted) cell type."""
        params = params or self.params
        return postprocess(raw, params.get(image_cell_type(raw, self.classes)))

    def instances(self, image: np.ndarray) -> Instances:
        return self.finalize(self.raw(image))

    def detect(self, image: np.ndarray):
        raw = self.raw(image)
        return raw.boxes, raw.scores, raw.labels

    def window_probs(self, image, boxes, labels, windows):
        if len(windows) == 0:
            return []
        return window_probs(self.net, image, windows, labels, self.image_size, self.device,
                            features=self.features(image))

    def use_precision(self, precision: str) -> None:
        """``bf16``: convert the network to the fast path in place
        (:func:`.maskrcnn_bf16.to_bf16`: box and mask heads under bf16 autocast; backbone, RPN,
        RoIAlign, NMS and mask pasting in float32)."""
        if check_precision(precision) == "bf16":
            self.net = to_bf16(self.net)
            self.forget()


@register_member("maskrcnn")
class MaskRCNNMember(MemberKind):
    """Boxes and masks from one network; segments alone with its tuned thresholds."""

    detector = True
    mask_source = True
    standalone = True
    channels_last = False
    smoke_overrides = (
        "model.image_size=128", "train.batch_size=2", "train.num_workers=0",
        "model.rpn_pre_nms_top_n_train=100", "model.rpn_post_nms_top_n_train=100",
        "model.box_batch_size_per_image=16", "model.rpn_pre_nms_top_n_test=100",
        "model.rpn_post_nms_top_n_test=32", "model.box_detections_per_img=16")
    root_config = "paper_maskrcnn_r50.yaml"
    choices = {"train.optimizer": OPTIMIZERS, "model.input_norm": INPUT_NORMS,
               "model.mask_logit_init": MASK_LOGIT_INITS}

    def train(self, cfg, records, run_dir, device="auto", resume=False, progress_bar=True):
        seed_everything(int(cfg["seed"]))
        train_recs, val_recs = split_records(records, cfg["data"]["split"])
        module = MaskRCNNModule(cfg["model"], cfg["train"])
        trainer = member_trainer(run_dir, cfg, device,
                                 monitor="val/kaggle_score" if val_recs else None,
                                 progress_bar=progress_bar,
                                 log_every_n_steps=int(cfg["train"]["log_every_n_steps"]),
                                 gradient_clip_val=cfg["train"]["gradient_clip"])
        fit(trainer, module, _loader(train_recs, cfg, True),
            _loader(val_recs, cfg, False) if val_recs else None, resume=resume)
        if val_recs:
            member = self.load(Path(run_dir), cfg, device)
            params = tune_and_save(member, val_recs, cfg["postprocess"], Path(run_dir))
            print(f"thresholds tuned on {len(val_recs)} validation images: "
                  f"{Path(run_dir) / PARAMS_FILE}")
            for cell_type, p in params.per_type.items():
                print(f"  {cell_type}: {p.to_dict()}")

    def load(self, run_dir, cfg, device="auto", untrained=False):
        torch.manual_seed(int(cfg["seed"]))  # untrained: the run's exact initialisation
        model = model_from_config(cfg["model"], pretrained=untrained)
        if not untrained:
            load_run_weights(model, run_dir, prefix="model.")
        dev = select_device(device)
        return LoadedMaskRCNN(self, model.to(dev).eval(), cfg, dev,
                              run_params(run_dir, cfg, untrained))

    def evaluate(self, member, records):
        metrics = score_instances(records, lambda rec: member.instances(rec.load_image()))
        metrics["postprocess"] = member.params.to_dict()
        return metrics

    def summary(self, metrics):
        per_type = ", ".join(f"{k} {v:.3f}" for k, v in metrics["per_cell_type"].items())
        return (f"kaggle_score {metrics['kaggle_score']:.4f} ({per_type}); "
                f"COCO mask AP {metrics['coco_mask_ap']:.4f}")


def run_params(run_dir: str | Path, cfg: dict, untrained: bool = False) -> ParamsByType:
    """The run's tuned thresholds (``RUN/postprocess.json``), else (or ``untrained``) those
    of ``cfg["postprocess"]``."""
    path = Path(run_dir) / PARAMS_FILE
    if path.is_file() and not untrained:
        return ParamsByType.from_dict(json.loads(path.read_text()))
    return ParamsByType(PostprocessParams.from_config(cfg["postprocess"]))


def tune_and_save(member: LoadedMaskRCNN, records: list[CellRecord], pcfg: dict,
                  run_dir: Path) -> ParamsByType:
    """Tune thresholds on ``records`` (the validation split), write ``RUN/postprocess.json``
    and use them in ``member``."""
    raws = [member.raw(r.load_image()) for r in records]
    params = tune_params(raws, [r.load_idmap() for r in records],
                         [r.cell_type for r in records], pcfg["search"],
                         PostprocessParams.from_config(pcfg))
    write_json(run_dir / PARAMS_FILE, params.to_dict())
    member.params = params
    return params
