"""The Sartorius members for ``tools/gpu_check.py``: the four networks its ``setup3_consensus``
manifest names (each trained by the project's own member code, on synthetic cells of the Kaggle
520x704 shape) and the set-up 3 ensemble of them on a dense 800-cell image."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch
from gpu_check_members import Context, Member, Schedule, lightning_member, overrides, run_until_fit
from scipy import ndimage

from ensemblab.config import load_config

KAGGLE_TRAIN_IMAGES = 485  # 606 Sartorius training images, 4 of the 5 folds

# --smoke sizes by member kind (the manifest's ``kind``).
SMOKE = {
    "maskrcnn": ["model.image_size=128", "train.batch_size=2", "train.num_workers=0",
                 "model.rpn_pre_nms_top_n_train=100", "model.rpn_post_nms_top_n_train=100",
                 "model.box_batch_size_per_image=16", "model.rpn_pre_nms_top_n_test=100",
                 "model.rpn_post_nms_top_n_test=32", "model.box_detections_per_img=16"],
    "yolox": ["train.sizes=[128,128]", "train.batch_size=2", "predict.size=128",
              "train.num_workers=0"],
    "upernet_full": ["model.size=128", "train.crop=64", "train.batch_size=2",
                     "train.num_workers=0"],
    "upernet_crop": ["model.crop=32", "train.batch_size=4", "train.num_workers=0"],
}


def cells_shape(ctx: Context) -> tuple[int, int, int]:
    """The dense test image: (height, width, cells)."""
    return (128, 128, 10) if ctx.smoke else (520, 704, 800)


def dense_cells(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """A dense shsy5y image ``uint8 [H, W]`` and the tight boxes of its cells ``float [N, 4]``."""
    from ensemblab.synthetic.cells import make_cells_image

    if "cells" not in ctx.cache:
        h, w, n = cells_shape(ctx)
        image, ids = make_cells_image(0, "shsy5y", h, w, n_cells=n)
        boxes = [(s[1].start, s[0].start, s[1].stop, s[0].stop)
                 for s in ndimage.find_objects(ids) if s is not None]
        ctx.cache["cells"] = image, np.array(boxes, np.float32)
    return ctx.cache["cells"]


def _cells_infer(kind: str, cfg: dict, module, ctx: Context) -> Callable[[torch.device], int]:
    """One prediction of a Sartorius member on the dense image, as its ``predict`` runs it."""
    from ensemblab.projects.sartorius_cells.maskrcnn import predict_images
    from ensemblab.projects.sartorius_cells.upernet_predict import predict_crops, predict_full
    from ensemblab.projects.sartorius_cells.yolox_member import predict_boxes

    image, boxes = dense_cells(ctx)
    m = cfg["model"]

    def infer(device) -> int:
        if kind == "maskrcnn":
            predict_images(module.model, [image], int(m["image_size"]), device)
        elif kind == "yolox":
            predict_boxes(module.ema_model, image, device, **cfg["predict"])
        elif kind == "upernet_full":
            predict_full(module.net, image, device, int(m["size"]))
        else:  # upernet_crop: one crop per true cell box
            return len(predict_crops(module.net, image, boxes, device, int(m["crop"]),
                                     float(m["context"]))[1])
        return 1

    return infer


def _setup3(manifest, parts: list, ctx: Context) -> Callable[[torch.device], int]:
    """Set-up 3 on the dense image: both detectors with their flips and WBF, then every mask
    model on the windows of the true cell boxes (untrained detectors find few cells), the
    consensus vote and overlap removal (``consensus.py``, as ``tools/bench_sartorius.py``)."""
    from ensemblab.ensemble.fusion import instance_windows
    from ensemblab.projects.sartorius_cells.consensus import (
        Loaded,
        RawConsensus,
        detect,
        finalize,
        fuse_sets,
        source_crops,
    )
    from ensemblab.projects.sartorius_cells.ensemble_fit import params_for

    nets = {"maskrcnn": lambda m: m.model, "yolox": lambda m: m.ema_model}
    image, boxes = dense_cells(ctx)
    h, w = image.shape
    windows = instance_windows(boxes, h, w, float(manifest.fusion.get("window_pad", 0.1)))
    ones = np.ones(len(boxes), np.float32)
    labels = ones.astype(np.int64)

    def infer(device) -> int:
        loaded = [Loaded(spec, nets.get(spec.kind, lambda m: m.net)(module), cfg, device)
                  for spec, module, cfg in parts]
        fuse_sets(loaded, detect(loaded, image), manifest, h, w)
        sources = {m.spec.name: source_crops(m, image, boxes, labels, windows)
                   for m in loaded if m.spec.mask_weight > 0 and m.spec.kind != "yolox"}
        raw = RawConsensus(boxes, ones, labels, windows, sources, h, w)
        finalize(raw, {m.spec.name: m.spec.mask_weight for m in loaded},
                 params_for(manifest.thresholds, None))
        return 1

    return infer


def sartorius(ctx: Context) -> list[Member]:
    """The four members of the ``setup3_consensus`` manifest, each with its own config, and
    the set-up 3 ensemble of them."""
    from ensemblab.ensemble.manifest import load_manifest
    from ensemblab.projects.sartorius_cells import cli, member_runs, training
    from ensemblab.projects.sartorius_cells.data import load_records, split_records
    from ensemblab.synthetic.cells import write_cells_dataset

    h, w, _ = cells_shape(ctx)
    data = write_cells_dataset(ctx.tmp / "cells", images_per_type=4, height=h, width=w)
    records = load_records(data)
    args = SimpleNamespace(data=data, device=ctx.device.type, resume=False)
    manifest = load_manifest(cli.resolve_config("setup3_consensus"))
    members, parts = [], []
    for spec in manifest.members:
        cfg = load_config(cli.resolve_config(spec.config), overrides(ctx, spec.kind, smoke=SMOKE))
        run_dir, t = ctx.tmp / f"cells_{spec.name}", cfg["train"]
        repeats = int(t.get("repeats", 1))
        per_epoch = int(t.get("samples_per_epoch") or KAGGLE_TRAIN_IMAGES * repeats)
        unit = "crops" if spec.kind == "upernet_crop" else "images"
        # Synthetic epochs as long as the timed steps: loader workers restart every epoch.
        if "repeats" in t:
            n_train = len(split_records(records, cfg["data"]["split"])[0])
            t["repeats"] = max(repeats, -(-ctx.steps * int(t["batch_size"]) // n_train))
        if spec.kind == "maskrcnn":
            cfg = training.resolve_classes(cfg, records)
            found = run_until_fit(training, lambda c=cfg, r=run_dir: training.train_maskrcnn(
                c, r, records, ctx.device.type, progress_bar=False))
        else:
            train = member_runs.train_yolox if spec.kind == "yolox" else member_runs.train_upernet
            found = run_until_fit(member_runs, lambda f=train, c=cfg, r=run_dir: f(c, r, args))
        infer = _cells_infer(spec.kind, cfg, found[0], ctx)
        members.append(lightning_member(
            f"sartorius_cells/{spec.name} ({spec.config})",
            Schedule(int(t["epochs"]), per_epoch, unit), infer, unit, found,
            channels_last=spec.kind != "maskrcnn"))
        parts.append((spec, found[0], cfg))
    members.append(Member(f"sartorius_cells set-up 3 ({manifest.name})", None,
                          _setup3(manifest, parts, ctx), "images",
                          torch.nn.ModuleList([module for _, module, _ in parts])))
    return members
