"""Train / evaluate verbs of the part-2 members (YOLOX, UPerNet) on part 1's data and splits.

Part 1's ``ensemblab sartorius_cells train|evaluate`` dispatch here when the config's
``model.kind`` is one of :data:`MEMBER_KINDS`, so every member is trained the same way::

    ensemblab sartorius_cells train --config yolox_cpu_quick --data DIR --out runs/yolox
    ensemblab sartorius_cells evaluate --run runs/yolox --data DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ensemblab.config import save_config
from ensemblab.engine import build_trainer, fit, open_run, seed_everything
from ensemblab.io import write_json
from ensemblab.metrics.instance import kaggle_score
from ensemblab.projects.sartorius_cells import data as cdata
from ensemblab.projects.sartorius_cells.box_ap import coco_box_ap
from ensemblab.projects.sartorius_cells.postprocess import (
    Instances,
    instances_to_idmap,
    remove_overlaps,
)
from ensemblab.projects.sartorius_cells.training import resolve_classes
from ensemblab.projects.sartorius_cells.upernet_data import BoxCropDataset, FullImageDataset
from ensemblab.projects.sartorius_cells.upernet_member import UperNetLitModule
from ensemblab.projects.sartorius_cells.upernet_predict import (
    load_upernet_member,
    predict_crops,
    predict_full,
    semantic_instances,
)
from ensemblab.projects.sartorius_cells.yolox_data import (
    build_train_dataset,
    masks_to_boxes,
    samples_from_records,
)
from ensemblab.projects.sartorius_cells.yolox_member import (
    YoloxLitModule,
    load_yolox_member,
    predict_boxes,
    val_collate,
)


def split_for(cfg: dict, data_dir: str | Path):
    """``(train, val, classes)`` records of a dataset folder under the config's split; the class
    list is part 1's (``training.resolve_classes``), so all members number cell types alike."""
    records = cdata.load_records(data_dir)
    train, val = cdata.split_records(records, cfg["data"]["split"])
    return train, val, list(resolve_classes(cfg, records)["model"]["classes"])


def train_yolox(cfg: dict, run_dir: Path, args: argparse.Namespace) -> int:
    """Fit YOLOX on the training split; ``best.ckpt`` by validation box AP50.

    Args:
        cfg: resolved config (``configs/yolox.yaml``); ``model.classes`` is filled in here.
        run_dir: prepared run folder.
        args: ``data``, ``device``, ``resume``.
    """
    seed_everything(int(cfg["seed"]))
    train, val, classes = split_for(cfg, args.data)
    cfg["model"]["classes"] = classes
    save_config(cfg, run_dir)  # the class order is part of the run (the ensemble needs it)
    labels = {name: i + 1 for i, name in enumerate(classes)}
    tcfg, size = cfg["train"], int(cfg["train"]["sizes"][1])
    dataset = build_train_dataset(samples_from_records(train, labels), size, cfg["aug"])
    # Small cell datasets: one "epoch" draws ``repeats`` passes of random mosaics.
    sampler = torch.utils.data.RandomSampler(
        dataset, replacement=True, num_samples=len(dataset) * int(tcfg.get("repeats", 1)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=int(tcfg["batch_size"]),
                                         sampler=sampler, num_workers=int(tcfg["num_workers"]))
    val_loader = torch.utils.data.DataLoader(samples_from_records(val, labels), batch_size=4,
                                             collate_fn=val_collate)
    model_cfg = {"variant": cfg["model"]["variant"], "num_classes": len(classes),
                 "weights": cfg["model"].get("weights")}
    module = YoloxLitModule(model_cfg, tcfg, cfg["predict"], iters_per_epoch=len(loader))
    trainer = build_trainer(run_dir, int(tcfg["epochs"]), device=args.device,
                            monitor="val/box_ap50", mode="max",
                            check_val_every_n_epoch=int(tcfg.get("val_every", 1)),
                            num_sanity_val_steps=0)
    fit(trainer, module, loader, val_loader, resume=getattr(args, "resume", False))
    return 0


def evaluate_yolox(run_dir: str | Path, args: argparse.Namespace) -> dict:
    """Box AP of the EMA detector on the validation split; writes ``RUN/metrics.json``."""
    model, cfg, dev = load_yolox_member(run_dir, args.device)
    _, val, _ = split_for(cfg, args.data)
    labels = {name: i + 1 for i, name in enumerate(cfg["model"]["classes"])}
    gts, preds = {}, {}
    start = time.perf_counter()
    for sample in samples_from_records(val, labels):
        boxes, scores, _ = predict_boxes(model, sample.image, dev, **cfg["predict"])
        gts[sample.image_id], preds[sample.image_id] = sample.boxes, (boxes, scores)
    metrics = {f"box_{k}": v for k, v in coco_box_ap(gts, preds).items()}
    metrics.update(n_images=len(gts), seconds_per_image=(time.perf_counter() - start)
                   / max(len(gts), 1))
    write_json(Path(run_dir) / "metrics.json", metrics)
    return metrics


def run_dir_config(run_dir: str | Path) -> dict:
    """The saved config of a run folder."""
    return open_run(run_dir)[1]


def train_upernet(cfg: dict, run_dir: Path, args: argparse.Namespace) -> int:
    """Fit UPerNet in ``model.mode`` full or crop; ``best.ckpt`` by validation IoU."""
    seed_everything(int(cfg["seed"]))
    train, val, classes = split_for(cfg, args.data)
    cfg["model"]["classes"] = classes
    save_config(cfg, run_dir)
    mcfg, tcfg = cfg["model"], cfg["train"]
    if mcfg["mode"] == "full":
        size, side = int(mcfg["size"]), int(tcfg["crop"])
        train_ds = FullImageDataset(train, size, side, True, mcfg.get("border", True))
        val_ds = FullImageDataset(val, size, side, False, mcfg.get("border", True))
        val_bs = 1
    else:
        crop, context = int(mcfg["crop"]), float(mcfg["context"])
        train_ds = BoxCropDataset(train, crop, context, float(tcfg["jitter"]), True)
        val_ds = BoxCropDataset(val, crop, context, 0.0, False)
        val_bs = 64
    sampler = torch.utils.data.RandomSampler(
        train_ds, replacement=True,
        num_samples=int(tcfg.get("samples_per_epoch") or len(train_ds)))
    loader = torch.utils.data.DataLoader(train_ds, batch_size=int(tcfg["batch_size"]),
                                         sampler=sampler, num_workers=int(tcfg["num_workers"]))
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=val_bs)
    module = UperNetLitModule(mcfg["mode"], mcfg, tcfg)
    trainer = build_trainer(run_dir, int(tcfg["epochs"]), device=args.device,
                            monitor="val/iou", mode="max", num_sanity_val_steps=0,
                            check_val_every_n_epoch=int(tcfg.get("val_every", 1)))
    fit(trainer, module, loader, val_loader, resume=getattr(args, "resume", False))
    return 0


def evaluate_upernet(run_dir: str | Path, args: argparse.Namespace) -> dict:
    """Kaggle score on the validation split; writes ``RUN/metrics.json``.

    Full mode is scored alone (instances from its cell/border map); crop mode is scored on the
    ground-truth boxes (an upper bound of what it adds given perfect boxes).
    """
    net, cfg, dev = load_upernet_member(run_dir, args.device)
    _, val, _ = split_for(cfg, args.data)
    mcfg = cfg["model"]
    scores, start = [], time.perf_counter()
    for rec in val:
        image, idmap = rec.load_image(), rec.load_idmap()
        if mcfg["mode"] == "full":
            inst = semantic_instances(predict_full(net, image, dev, int(mcfg["size"])))
        else:
            gt_boxes = masks_to_boxes(rec.load_masks())
            windows, probs = predict_crops(net, image, gt_boxes, dev, int(mcfg["crop"]),
                                           float(mcfg["context"]))
            inst = Instances(gt_boxes, np.ones(len(probs), np.float32),
                             np.ones(len(probs), np.int64), [p >= 0.5 for p in probs], windows,
                             *image.shape)
            inst = remove_overlaps(inst, drop_frac=0.9)
        scores.append(kaggle_score(instances_to_idmap(inst), idmap))
    metrics = {"kaggle_score": float(np.mean(scores)), "n_images": len(scores),
               "mode": mcfg["mode"],
               "seconds_per_image": (time.perf_counter() - start) / max(len(scores), 1)}
    write_json(Path(run_dir) / "metrics.json", metrics)
    return metrics
