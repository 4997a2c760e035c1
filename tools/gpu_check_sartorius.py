"""The Sartorius members for ``tools/gpu_check.py``, from the ``paper_ensemble`` manifest.

Every distinct member config of the manifest (a seed variant costs what its config costs) is
trained by its member kind's own ``train`` on synthetic cells of the Kaggle 520x704 shape and
predicts through the kind's ``load(..., untrained=True)`` network (the same cost as the trained
one): instances, boxes, or mask probabilities on the windows of the cells. Set-up 3 runs all
the manifest's members on a dense 800-cell image.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable

import numpy as np
import torch
from gpu_check_members import (
    CHECKS,
    Context,
    Member,
    Schedule,
    lightning_member,
    overrides,
    run_until_fit,
)
from scipy import ndimage

from ensemblab.config import load_config

MANIFEST = "paper_ensemble"
KAGGLE_TRAIN_IMAGES = 485  # 606 Sartorius training images, 4 of the 5 folds


def dense_cells(ctx: Context) -> dict[str, np.ndarray]:
    """A dense shsy5y image ``uint8 [H, W]``, its cells' boxes ``float [N, 4]``, their windows
    ``int64 [N, 4]`` and labels ``int64 [N]`` (the mask stage's input)."""
    from ensemblab.ensemble.fusion import instance_windows
    from ensemblab.synthetic.cells import make_cells_image

    if "cells" not in ctx.cache:
        h, w, n = (128, 128, 10) if ctx.smoke else (520, 704, 800)
        image, ids = make_cells_image(0, "shsy5y", h, w, n_cells=n)
        boxes = np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop)
                          for s in ndimage.find_objects(ids) if s is not None], np.float32)
        ctx.cache["cells"] = {"image": image, "boxes": boxes, "labels": np.ones(len(boxes), int),
                              "windows": instance_windows(boxes, h, w, 0.1)}
    return ctx.cache["cells"]


def _member_infer(loaded, ctx: Context) -> tuple[Callable[[torch.device], int], str]:
    """The member's prediction on the dense image: an instance model's post-processed
    instances, a detector's boxes, or a mask source's probabilities on every cell's window."""
    cells = dense_cells(ctx)

    def infer(device) -> int:
        loaded.device = device
        if loaded.kind.instance_model:
            loaded.instances(cells["image"])
        elif loaded.kind.detector:
            loaded.detect(cells["image"])
        else:
            return len(loaded.window_probs(cells["image"], cells["boxes"], cells["labels"],
                                           cells["windows"]))
        return 1

    return infer, "images" if loaded.kind.detector else "cells"


def _setup3(manifest, entries: list, ctx: Context) -> Callable[[torch.device], int]:
    """Set-up 3 on the dense image: every detector with its flips and the box fusion, then
    every mask source on the windows of the true cells (untrained detectors find few cells),
    the consensus vote and overlap removal (``ensemble/consensus.py``)."""
    from ensemblab.projects.sartorius_cells.ensemble.consensus import (
        RawConsensus,
        detect,
        finalize,
        fuse_sets,
        window_probs,
    )
    from ensemblab.projects.sartorius_cells.ensemble.fitting import params_for

    c = dense_cells(ctx)
    h, w = c["image"].shape

    def infer(device) -> int:
        for entry in entries:
            entry.member.device = device
        fuse_sets(entries, detect(entries, c["image"]), manifest, h, w)
        sources = {e.spec.name: window_probs(e, c["image"], c["boxes"], c["labels"],
                                             c["windows"]) for e in entries if e.votes}
        raw = RawConsensus(c["boxes"], np.ones(len(c["boxes"]), np.float32), c["labels"],
                           c["windows"], sources, h, w)
        finalize(raw, {e.spec.name: e.spec.mask_weight for e in entries},
                 params_for(manifest.thresholds, None))
        return 1

    return infer


def _member(spec, config: str, over: list[str], records, ctx: Context):
    """``(Member, loaded untrained member)`` of one manifest entry's config (``--smoke``: with
    its member kind's ``smoke_overrides``)."""
    from ensemblab.projects.sartorius_cells import commands
    from ensemblab.projects.sartorius_cells.data import split_records
    from ensemblab.projects.sartorius_cells.members import base, member_kind, resolve_classes

    kind = member_kind(spec.kind)
    cfg = load_config(commands.resolve_config(config),
                      overrides(ctx, over, kind.smoke_overrides))
    cfg, t = resolve_classes(cfg, records), cfg["train"]
    repeats = int(t.get("repeats", 1))
    per_epoch = int(t.get("samples_per_epoch") or KAGGLE_TRAIN_IMAGES * repeats)
    schedule = Schedule(int(t["epochs"]), per_epoch, kind.sample_unit)
    if "repeats" in t:  # synthetic epochs outlast the timed steps (workers restart per epoch)
        n_train = len(split_records(records, cfg["data"]["split"])[0])
        t["repeats"] = max(repeats, -(-ctx.steps * int(t["batch_size"]) // n_train))
    run_dir = ctx.tmp / f"cells_{spec.name}"
    # progress_bar=True keeps the kind's progress-line callback out (the bar itself is not built)
    found = run_until_fit(lambda: kind.train(cfg, records, run_dir, ctx.device.type,
                                             progress_bar=True),
                          base, sys.modules[type(kind).__module__])
    loaded = kind.load(run_dir, cfg, "cpu", untrained=True)
    infer, unit = _member_infer(loaded, ctx)
    name = f"sartorius_cells/{spec.name} ({' '.join([config, *over])})"
    return lightning_member(name, schedule, infer, unit, found, network=loaded.net,
                            channels_last=kind.channels_last), loaded


@CHECKS.register("sartorius_cells")
def sartorius(ctx: Context) -> list[Member]:
    """One member per distinct config of the manifest, then set-up 3 of all its members."""
    from ensemblab.ensemble.manifest import load_manifest
    from ensemblab.projects.sartorius_cells import commands
    from ensemblab.projects.sartorius_cells.data import load_records
    from ensemblab.projects.sartorius_cells.ensemble.consensus import EnsembleMember
    from ensemblab.synthetic.cells import write_cells_dataset

    manifest = load_manifest(commands.resolve_manifest(MANIFEST))
    h, w = (128, 128) if ctx.smoke else (520, 704)
    records = load_records(write_cells_dataset(ctx.tmp / "cells", images_per_type=4,
                                               height=h, width=w))
    members, loaded, entries = [], {}, []
    for spec in manifest.members:
        config, *over = shlex.split(spec.config)
        over = [o for o in over if not o.startswith("seed=")]  # same cost
        key = " ".join([config, *over])
        if key not in loaded:
            member, loaded[key] = _member(spec, config, over, records, ctx)
            members.append(member)
        entries.append(EnsembleMember(spec, loaded[key]))
    nets = torch.nn.ModuleList([m.net for m in loaded.values()])
    members.append(Member(f"sartorius_cells set-up 3 ({manifest.name})", None,
                          _setup3(manifest, entries, ctx), "images", network=nets))
    return members
