"""The members ``tools/gpu_check.py`` measures, each built by its project's own train function.

Every project's train function runs on synthetic data of the real shapes until it calls the
engine's ``fit``: :func:`run_until_fit` stands in for ``build_trainer``/``fit`` in that project's
module and hands back the LightningModule, its loader (or data module) and the trainer keywords
the project chose, so the check trains exactly what ``ensemblab <project> train`` would.
Configs are found through each project's own ``resolve_config``; the Sartorius members are the
ones its ``setup3_consensus`` manifest names. A :class:`Schedule` sizes the paper's full run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import torch
from scipy import ndimage

from ensemblab.config import load_config

# Training samples per epoch of the paper-scale data (what the projection multiplies).
KAGGLE_TRAIN_IMAGES = 485  # 606 Sartorius training images, 4 of the 5 folds
LUMENSTONE_TILES = 665  # 19 LumenStone training images (24 minus the 20% hold-out) x 35 tiles
SSTEM_TILES = 192  # 12 training sections (split 0-11) x 16 tiles of 256 px
FLICKR8K_ITEMS = 30000  # Flickr8k training split: 6000 images x 5 captions
BATTERY_ROWS = 339  # the Materials-Project table

# --smoke: the same configs at CPU-test sizes (small images and batches, no loader workers),
# by project or Sartorius member kind.
SMOKE = {
    "mineral_ruel": ["data.tile=64", "train.batch_size=2", "train.frozen_batch_size=2"],
    "fre_unet": ["data.tile=32", "data.batch_size=2"],
    "crossattn_vl": ["data.image_size=64", "train.batch_size=2", "data.tokenizer_vocab=200",
              "eval.batch_size=2", "eval.max_length=4"],
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


@dataclass
class Context:
    """What every member is built for: device (``cuda | cpu``), test sizes, steps, scratch."""

    device: torch.device
    smoke: bool
    steps: int
    tmp: Path
    cache: dict = field(default_factory=dict)

    @property
    def cells_shape(self) -> tuple[int, int, int]:
        """Dense Sartorius test image: (height, width, cells)."""
        return (128, 128, 10) if self.smoke else (520, 704, 800)


@dataclass
class Schedule:
    """The paper's full training run: ``epochs`` x ``samples`` ``unit`` per epoch."""

    epochs: int
    samples: int
    unit: str


@dataclass
class Member:
    """One model (or ensemble) ready to measure.

    ``infer(device)`` runs one inference call on real-shaped input and returns how many
    ``infer_unit`` it processed. Lightning members carry ``module`` + ``train_loader`` or
    ``datamodule`` + the project's ``trainer_kwargs``; ``fit_steps(n)`` members train outside
    Lightning (seconds for ``n`` steps, one step = one pass over ``schedule.samples``). An
    ensemble has no ``schedule`` (inference only); its ``module`` holds all its networks.
    """

    name: str
    schedule: Schedule | None
    infer: Callable[[torch.device], int]
    infer_unit: str = "images"
    module: Any = None
    train_loader: Any = None
    datamodule: Any = None
    trainer_kwargs: dict = field(default_factory=dict)
    channels_last: bool = False
    fit_steps: Callable[[int], float] | None = None
    cfg: dict = field(default_factory=dict)


class _FitCalled(Exception):
    def __init__(self, module, train_loader, datamodule, trainer_kwargs):
        super().__init__("fit")
        self.found = module, train_loader, datamodule, trainer_kwargs


def run_until_fit(namespace, call: Callable[[], Any]) -> tuple[Any, Any, Any, dict]:
    """Run a project's train function up to its ``fit`` call.

    Returns:
        ``(LightningModule, train loader, data module, build_trainer keywords)``.
    """
    kwargs: dict = {}

    def build_trainer(run_dir, max_epochs, **kw):
        kwargs.update(kw, max_epochs=max_epochs)

    def fit(trainer, module, train_dataloaders=None, val_dataloaders=None, datamodule=None,
            resume=False):
        raise _FitCalled(module, train_dataloaders, datamodule, dict(kwargs))

    with mock.patch.object(namespace, "build_trainer", build_trainer), \
            mock.patch.object(namespace, "fit", fit):
        try:
            call()
        except _FitCalled as caught:
            return caught.found
    raise RuntimeError(f"{namespace.__name__}: the train function returned without fitting")


def _lightning_member(name, schedule, infer, unit, found, **extra) -> Member:
    module, loader, datamodule, kwargs = found
    return Member(name, schedule, infer, unit, module, loader, datamodule, kwargs, **extra)


def _overrides(ctx: Context, key: str, always: list[str] = ()) -> list[str]:
    return list(always) + (SMOKE[key] if ctx.smoke else [])


def mineral(ctx: Context) -> list[Member]:
    """Res-UNet learner of Table 2, timed in its unfrozen stage (the frozen one is cheaper),
    and RUEL-5-WV: five such learners on one tile, then the weighted vote."""
    from ensemblab.projects.mineral_ruel import commands, ruel
    from ensemblab.projects.mineral_ruel.inference import forward_logits
    from ensemblab.synthetic.minerals import write_mineral_dataset

    config = "resunet_ce_e120"
    over = _overrides(ctx, "mineral_ruel", ["train.frozen_epochs=0"])
    cfg = load_config(commands.resolve_config(config), over)
    tile, batch = int(cfg["data"]["tile"]), int(cfg["train"]["batch_size"])
    root = write_mineral_dataset(ctx.tmp / "mineral", n_train=6, n_val=1, size=2 * tile)
    found = run_until_fit(commands, lambda: commands.train(
        config, str(root), str(ctx.tmp / "mineral_run"), over, ctx.device.type,
        progress_bar=False))
    precision = "bf16" if ctx.device.type == "cuda" else "fp32"  # the project's fast path
    net = found[0].net

    def learner(device) -> int:
        x = torch.rand(batch, 3, tile, tile, device=device)
        forward_logits(net, x, precision).argmax(1).cpu()
        return batch

    def ruel5(device) -> int:
        x = torch.rand(1, 3, tile, tile, device=device)
        maps = [forward_logits(net, x, precision).argmax(1)[0].to(torch.uint8).cpu().numpy()
                for _ in range(5)]
        ruel.vote(np.stack(maps), ruel.Scheme(5, "wv"),
                  found[0].hparams.num_classes)
        return 1

    name = f"mineral_ruel ({config})"
    return [_lightning_member(name, Schedule(int(cfg["train"]["epochs"]), LUMENSTONE_TILES,
                                             "tiles"), learner, "tiles", found,
                              channels_last=True, cfg=cfg),
            Member(f"mineral_ruel RUEL-5-WV ({config} x 5)", None, ruel5, "tiles", found[0])]


def fre(ctx: Context) -> list[Member]:
    """SE-U-Net + FRE on 1024 px sections cut into 256 px tiles; inference = whole sections."""
    from ensemblab.projects.fre_unet import cli, runner
    from ensemblab.synthetic.em import make_em_stack

    config = "fre"
    cfg = cli.resolve_config(config, _overrides(
        ctx, "fre_unet", ["data.split.train=0-3", "data.split.val=4", "data.split.test=5"]))
    side = 128 if ctx.smoke else 1024
    make_em_stack(ctx.tmp / "em", n_slices=6, size=side)
    found = run_until_fit(runner, lambda: runner.train_run(
        cfg, ctx.tmp / "em", ctx.tmp / "em_run", ctx.device.type, progress_bar=False))

    def infer(device) -> int:  # one pass over a whole section, as ``predict`` runs it
        found[0].model(torch.rand(1, 1, side, side, device=device)).argmax(1).cpu()
        return 1

    return [_lightning_member(f"fre_unet ({config})",
                              Schedule(int(cfg["train"]["epochs"]), SSTEM_TILES, "tiles"),
                              infer, "sections", found, channels_last=True, cfg=cfg)]


def crossattn(ctx: Context) -> list[Member]:
    """DenseNet121 + ALBERT + cross-attention, all three tasks; inference = beam captions."""
    from ensemblab.multimodal.tokenizer import TextTokenizer
    from ensemblab.projects.crossattn_vl import cli, runner
    from ensemblab.projects.crossattn_vl.inference import generate_captions
    from ensemblab.synthetic.shapes import write_shapes_dataset

    config = "paper"
    cfg = cli.resolve_config(config, _overrides(ctx, "crossattn_vl"))
    data = write_shapes_dataset(ctx.tmp / "vl", n_images=16 if ctx.smoke else 96, size=64)
    run_dir = ctx.tmp / "vl_run"
    found = run_until_fit(runner, lambda: runner.train_run(
        cfg, data, run_dir, ctx.device.type, progress_bar=False))
    tok = TextTokenizer.from_file(run_dir / "tokenizer.json", cfg["data"]["max_length"])
    size, e = int(cfg["data"]["image_size"]), cfg["eval"]

    def infer(device) -> int:
        net = found[0].net
        regions, gates = net.encode_image(torch.rand(e["batch_size"], 3, size, size,
                                                     device=device))
        keyed = {str(i): (r, None if gates is None else gates[i]) for i, r in enumerate(regions)}
        generate_captions(net, tok, keyed, cfg["data"]["caption_prompt"], e["beam"],
                          e["max_length"], e["length_penalty"], e["batch_size"])
        return int(e["batch_size"])

    return [_lightning_member(f"crossattn_vl ({config})",
                              Schedule(int(cfg["train"]["epochs"]), FLICKR8K_ITEMS, "items"),
                              infer, "captioned images", found, cfg=cfg)]


def dense_cells(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """A dense shsy5y image ``uint8 [H, W]`` and the tight boxes of its cells ``float [N, 4]``."""
    from ensemblab.synthetic.cells import make_cells_image

    if "cells" not in ctx.cache:
        h, w, n = ctx.cells_shape
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

    h, w, _ = ctx.cells_shape
    data = write_cells_dataset(ctx.tmp / "cells", images_per_type=4, height=h, width=w)
    records = load_records(data)
    args = SimpleNamespace(data=data, device=ctx.device.type, resume=False)
    manifest = load_manifest(cli.resolve_config("setup3_consensus"))
    members, parts = [], []
    for spec in manifest.members:
        cfg = load_config(cli.resolve_config(spec.config), _overrides(ctx, spec.kind))
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
        members.append(_lightning_member(
            f"sartorius_cells/{spec.name} ({spec.config})",
            Schedule(int(t["epochs"]), per_epoch, unit), infer, unit, found, cfg=cfg,
            channels_last=spec.kind != "maskrcnn"))
        parts.append((spec, found[0], cfg))
    members.append(Member(f"sartorius_cells set-up 3 ({manifest.name})", None,
                          _setup3(manifest, parts, ctx), "images",
                          torch.nn.ModuleList([module for _, module, _ in parts])))
    return members


def battery(ctx: Context) -> list[Member]:
    """The DNN ensemble of ``train`` (CPU by design); one step = one full-batch epoch."""
    from ensemblab.projects.battery_crystal import cli
    from ensemblab.projects.battery_crystal.features import CLASSES, LABEL, load_table
    from ensemblab.projects.battery_crystal.models import build_model
    from ensemblab.synthetic.battery import write_battery_csv

    config = "default"
    cfg = load_config(cli.resolve_config(config))
    df = load_table(write_battery_csv(ctx.tmp / "battery.csv", n_rows=BATTERY_ROWS))
    labels = np.array([CLASSES.index(v) for v in df[LABEL]], dtype=np.int64)
    groups = len({tuple(g["hidden"]) for g in cfg["dnn"]["grid"]})  # one fit per hidden size
    fitted = {}

    def fit_steps(n: int) -> float:
        cfg["dnn"].update(max_epochs=n, patience=n + 1)
        model = build_model(cfg["model"], cfg["features"], cfg, seed=cfg["seed"])
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the project's CLI: the matrices are tiny
        start = time.perf_counter()
        try:
            fitted["model"] = model.fit(df, labels)
        finally:
            torch.set_num_threads(threads)
        return (time.perf_counter() - start) / groups

    def infer(device):
        return len(fitted["model"].predict_proba(df))

    schedule = Schedule(int(cfg["dnn"]["max_epochs"]) * groups, BATTERY_ROWS, "rows")
    return [Member(f"battery_crystal ({config})", schedule, infer, "rows", fit_steps=fit_steps,
                   cfg=cfg)]


PROJECTS: dict[str, Callable[[Context], list[Member]]] = {
    "sartorius_cells": sartorius, "mineral_ruel": mineral, "fre_unet": fre,
    "crossattn_vl": crossattn, "battery_crystal": battery,
}
