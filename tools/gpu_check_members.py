"""What ``tools/gpu_check.py`` measures, each member built by its project's own train function.

Every project's train function runs on synthetic data of the real shapes until it calls the
engine's ``fit``: :func:`run_until_fit` stands in for ``build_trainer``/``fit`` in that project's
module and hands back the LightningModule, its loader (or data module) and the trainer keywords
the project chose, so the check trains exactly what ``ensemblab <project> train`` would.
Configs are found through each project's own ``resolve_config``. A :class:`Schedule` sizes the
paper's full run. Each project's check registers itself in :data:`CHECKS` under the project's
name (its ``ensemblab.projects`` entry point) and carries its own ``--smoke`` sizes. This module
holds the shared pieces and the single-model projects; the Sartorius members and their ensemble
are in ``gpu_check_sartorius.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from ensemblab.config import load_config
from ensemblab.registry import Registry

# Training samples per epoch of the paper-scale data (what the projection multiplies).
LUMENSTONE_TILES = 665  # LumenStone sample: 19 training images (24 less the hold-out) x 35 tiles
SSTEM_TILES = 192  # 12 training sections (split 0-11) x 16 tiles of 256 px
FLICKR8K_ITEMS = 30000  # Flickr8k training split: 6000 images x 5 captions
BATTERY_ROWS = 339  # the Materials-Project table

# project name -> function ``Context -> list[Member]`` that builds what to measure
CHECKS = Registry("GPU-check project")


@dataclass
class Context:
    """What every member is built for: device (``cuda | cpu``), test sizes, steps, scratch."""

    device: torch.device
    smoke: bool
    steps: int
    tmp: Path
    cache: dict = field(default_factory=dict)



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
    ``infer_unit`` it processed, with ``network`` (default: ``module``) moved to ``device``.
    Lightning members carry ``module`` + ``train_loader`` or ``datamodule`` + the project's
    ``trainer_kwargs``; ``fit_steps(n)`` members train outside Lightning (seconds for ``n``
    steps, one step = one pass over ``schedule.samples``). An ensemble has no ``schedule``
    (inference only); its ``network`` holds all its networks.
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
    network: Any = None

    def __post_init__(self) -> None:
        if self.network is None:
            self.network = self.module


class _FitCalled(Exception):
    def __init__(self, module, train_loader, datamodule, trainer_kwargs):
        super().__init__("fit")
        self.found = module, train_loader, datamodule, trainer_kwargs


def run_until_fit(call: Callable[[], Any], *namespaces) -> tuple[Any, Any, Any, dict]:
    """Run a project's train function ``call`` up to its ``fit`` call.

    Args:
        call: runs the project's train function.
        namespaces: the project modules that call the engine's ``build_trainer`` and ``fit``
            (imported by name there, so the stand-ins replace them in those modules).

    Returns:
        ``(LightningModule, train loader, data module, build_trainer keywords)``.
    """
    kwargs: dict = {}

    def build_trainer(run_dir, max_epochs, **kw):
        kwargs.update(kw, max_epochs=max_epochs)

    def fit(trainer, module, train_dataloaders=None, val_dataloaders=None, datamodule=None,
            resume=False):
        raise _FitCalled(module, train_dataloaders, datamodule, dict(kwargs))

    stand_ins = {"build_trainer": build_trainer, "fit": fit}
    with ExitStack() as stack:
        for namespace in namespaces:
            for name, stand_in in stand_ins.items():
                if hasattr(namespace, name):
                    stack.enter_context(mock.patch.object(namespace, name, stand_in))
        try:
            call()
        except _FitCalled as caught:
            return caught.found
    raise RuntimeError(f"{namespaces[0].__name__}: the train function returned without fitting")


def lightning_member(name, schedule, infer, unit, found, **extra) -> Member:
    module, loader, datamodule, kwargs = found
    return Member(name, schedule, infer, unit, module, loader, datamodule, kwargs, **extra)


def overrides(ctx: Context, always: Sequence[str] = (), smoke: Sequence[str] = ()) -> list[str]:
    """``always`` plus, with ``--smoke``, the CPU-test sizes ``smoke``."""
    return [*always, *(smoke if ctx.smoke else ())]


@CHECKS.register("mineral_ruel")
def mineral(ctx: Context) -> list[Member]:
    """Res-UNet learner of Table 2, timed in its unfrozen stage (the frozen one is cheaper),
    and RUEL-5-WV: five such learners on one tile, then the weighted vote."""
    from ensemblab.projects.mineral_ruel import commands, ruel
    from ensemblab.projects.mineral_ruel.inference import forward_logits
    from ensemblab.synthetic.minerals import write_mineral_dataset

    config = "resunet_ce_e120"
    over = overrides(ctx, ["train.frozen_epochs=0", "data.classes=minerals9"],
                     ["data.tile=64", "train.batch_size=2", "train.frozen_batch_size=2"])
    cfg = load_config(commands.resolve_config(config), over)
    tile, batch = int(cfg["data"]["tile"]), int(cfg["train"]["batch_size"])
    root = write_mineral_dataset(ctx.tmp / "mineral", n_train=6, n_val=1, size=2 * tile)
    found = run_until_fit(lambda: commands.train(
        config, str(root), str(ctx.tmp / "mineral_run"), over, ctx.device.type,
        progress_bar=False), commands)
    precision = "bf16" if ctx.device.type == "cuda" else "fp32"  # the project's fast path
    net = found[0].net

    def learner(device) -> int:
        x = torch.rand(batch, 3, tile, tile, device=device)
        forward_logits(net, x, precision).argmax(1).cpu()
        return batch

    def ruel5(device) -> int:
        x = torch.rand(1, 3, tile, tile, device=device)
        logits = [forward_logits(net, x, precision) for _ in range(5)]
        maps = np.stack([lg.argmax(1)[0].to(torch.uint8).cpu().numpy() for lg in logits])
        ruel.vote(maps, ruel.Scheme(5, "wv"), logits[0].shape[1])
        return 1

    schedule = Schedule(int(cfg["train"]["epochs"]), LUMENSTONE_TILES, "tiles")
    return [lightning_member(f"mineral_ruel ({config})", schedule, learner, "tiles", found,
                              channels_last=True),
            Member(f"mineral_ruel RUEL-5-WV ({config} x 5)", None, ruel5, "tiles",
                   network=found[0])]


@CHECKS.register("fre_unet")
def fre(ctx: Context) -> list[Member]:
    """SE-U-Net + FRE on 1024 px sections cut into 256 px tiles; inference = whole sections."""
    from ensemblab.projects.fre_unet import commands
    from ensemblab.synthetic.em import make_em_stack

    config = "fre"
    cfg = load_config(commands.resolve_config(config), overrides(
        ctx, ["data.split.train=0-3", "data.split.val=4", "data.split.test=5"],
        ["data.tile=32", "data.batch_size=2"]))
    side = 128 if ctx.smoke else 1024
    make_em_stack(ctx.tmp / "em", n_slices=6, size=side)
    found = run_until_fit(lambda: commands.train_run(
        cfg, ctx.tmp / "em", ctx.tmp / "em_run", ctx.device.type, progress_bar=False), commands)

    def infer(device) -> int:  # one pass over a whole section, as ``predict`` runs it
        found[0].model(torch.rand(1, 1, side, side, device=device)).argmax(1).cpu()
        return 1

    return [lightning_member(f"fre_unet ({config})",
                              Schedule(int(cfg["train"]["epochs"]), SSTEM_TILES, "tiles"),
                              infer, "sections", found, channels_last=True)]


@CHECKS.register("crossattn_vl")
def crossattn(ctx: Context) -> list[Member]:
    """DenseNet121 + ALBERT + cross-attention, all three tasks; inference = beam captions."""
    from ensemblab.multimodal.tokenizer import TextTokenizer
    from ensemblab.projects.crossattn_vl import commands
    from ensemblab.projects.crossattn_vl.inference import generate_captions
    from ensemblab.synthetic.shapes import write_shapes_dataset

    config = "paper"
    # random DenseNet weights: the same speed, and no local weights file needed
    cfg = load_config(commands.resolve_config(config), overrides(
        ctx, ["model.image.pretrained=false"],
        ["data.image_size=64", "train.batch_size=2", "data.tokenizer_vocab=200",
         "eval.batch_size=2", "eval.max_length=4"]))
    data = write_shapes_dataset(ctx.tmp / "vl", n_images=16 if ctx.smoke else 96, size=64)
    run_dir = ctx.tmp / "vl_run"
    found = run_until_fit(lambda: commands.train_run(
        cfg, data, run_dir, ctx.device.type, progress_bar=False), commands)
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

    return [lightning_member(f"crossattn_vl ({config})",
                              Schedule(int(cfg["train"]["epochs"]), FLICKR8K_ITEMS, "items"),
                              infer, "captioned images", found)]


@CHECKS.register("battery_crystal")
def battery(ctx: Context) -> list[Member]:
    """The DNN ensemble of ``train`` (CPU by design); one step = one full-batch epoch."""
    from ensemblab.projects.battery_crystal import commands
    from ensemblab.projects.battery_crystal.features import CLASSES, LABEL, load_table
    from ensemblab.projects.battery_crystal.models import build_model
    from ensemblab.synthetic.battery import write_battery_csv

    config = "default"
    cfg = load_config(commands.resolve_config(config))
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
    return [Member(f"battery_crystal ({config})", schedule, infer, "rows", fit_steps=fit_steps)]
