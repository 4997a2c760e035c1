"""The bodies of ``import-detectron2``, ``export-detectron2`` and fine-tuning from a run.

An imported run is a normal Mask R-CNN member run folder: ``config.yaml`` (the member's
config with ``model.detectron2`` holding the honoured detectron2 keys), the weights as
``checkpoints/best.ckpt`` (``{"state_dict": {"model.<name>": tensor}}``, what training
writes) and ``import.json`` (source files, sha256, what was mapped and ignored).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import torch

from ensemblab.config import save_config
from ensemblab.engine import (
    best_checkpoint,
    check_run,
    open_run,
    run_state_dict,
    write_run_record,
)
from ensemblab.engine.checkpoints import load_checkpoint
from ensemblab.errors import ConfigError, DataError
from ensemblab.io import write_json
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.detectron2.checkpoint import (
    IGNORED,
    read_detectron2_weights,
    to_torchvision_state,
)
from ensemblab.projects.sartorius_cells.detectron2.config import model_config, value
from ensemblab.projects.sartorius_cells.detectron2.export import (
    run_detectron2_config,
    write_detectron2_checkpoint,
)
from ensemblab.projects.sartorius_cells.detectron2.model import build_detectron2_maskrcnn

IMPORT_REPORT = "import.json"


def import_detectron2(weights: str | Path, d2_config: str | Path, out: str | Path,
                      base_cfg: dict, classes: list[str] | None = None) -> Path:
    """Make a Mask R-CNN member run folder from a detectron2 checkpoint and its config.

    Args:
        weights: detectron2 ``.pth`` (``DetectionCheckpointer``) or model-zoo ``.pkl``.
        d2_config: the detectron2 YAML the checkpoint was trained with.
        out: run folder to create (must not hold a run yet).
        base_cfg: the member's resolved config (data split, post-processing, training
            defaults); its ``model`` section is replaced.
        classes: names of the checkpoint's classes in its order (default ``class_0..``).

    Returns:
        The run folder.

    Raises:
        ConfigError: an unsupported detectron2 config, wrong class count, existing run.
        DataError: an unreadable checkpoint or one that does not fit the config.
    """
    out = Path(out)
    if (out / "config.yaml").exists():
        raise ConfigError(f"{out}: run folder exists; choose a new --out")
    d2cfg = model_config(d2_config)
    k = int(value(d2cfg, "MODEL.ROI_HEADS.NUM_CLASSES"))
    classes = list(classes) if classes else [f"class_{i}" for i in range(k)]
    if len(classes) != k:
        raise ConfigError(f"{d2_config}: MODEL.ROI_HEADS.NUM_CLASSES is {k} but {len(classes)} "
                          f"class names were given")
    d2_state = read_detectron2_weights(weights)
    model = build_detectron2_maskrcnn(d2cfg)
    state = to_torchvision_state(d2_state, model.state_dict(), weights)
    cfg = copy.deepcopy(base_cfg)
    cfg["model"] = {"kind": "maskrcnn", "classes": classes,
                    "image_size": int(base_cfg["model"]["image_size"]),
                    "detectron2": d2cfg}
    write_run_record(out, PROJECT, MEMBER)
    save_config(cfg, out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}},
               out / "checkpoints" / "best.ckpt")
    write_json(out / IMPORT_REPORT, {
        "weights": str(weights), "weights_sha256": _sha256(weights),
        "d2_config": str(d2_config), "tensors_mapped": len(state),
        "tensors_ignored": sorted(n for n in d2_state if IGNORED.fullmatch(n)),
        "classes": classes})
    return out


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_state(run: str | Path, verb: str | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(config, model state dict without the "model." prefix)`` of a run's best weights;
    ``verb`` is named in the message about a run of another project."""
    check_run(run, PROJECT, (MEMBER,), verb)
    run_dir, cfg = open_run(run)
    return cfg, run_state_dict(run_dir, prefix="model.")[1]


def export_detectron2(run: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write a Mask R-CNN run as a detectron2 checkpoint (``out``) and config (``.yaml``).

    Returns:
        ``(checkpoint, config)`` paths; see :mod:`.export` for what is exact.
    """
    cfg, state = run_state(run, "export-detectron2")
    if cfg["model"]["kind"] != "maskrcnn":
        raise ConfigError(f"{run}: export-detectron2 needs a Mask R-CNN run, this is "
                          f"model.kind={cfg['model']['kind']!r}")
    return write_detectron2_checkpoint(state, run_detectron2_config(cfg["model"]), out)


def detectron2_member(model_cfg: dict, load_weights: bool = True) -> torch.nn.Module:
    """The compatibility-mode model of a run's ``model`` section (``detectron2`` present).

    With ``load_weights``, ``model.weights`` (a run checkpoint, set by :func:`init_from_run`)
    loads every tensor whose name and shape fit; the class-specific layers are skipped when
    the class count changed (fine-tuning on other cell types), and the skipped names are
    printed. Without it (a run's own checkpoint follows) the model stays randomly initialised.
    """
    model = build_detectron2_maskrcnn(model_cfg["detectron2"],
                                      num_classes=len(model_cfg["classes"]))
    if load_weights and model_cfg.get("weights"):
        path = Path(model_cfg["weights"])
        state = {k.removeprefix("model."): v
                 for k, v in load_checkpoint(path)["state_dict"].items()}
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = sorted(set(own) - set(usable))
        if len(usable) < len(own) // 2:
            raise DataError(path, f"only {len(usable)} of {len(own)} tensors fit this model")
        model.load_state_dict(usable, strict=False)
        if missing:
            print(f"{path}: {len(usable)} tensors loaded; initialised afresh: "
                  f"{', '.join(missing)}")
    return model


def init_from_run(cfg: dict, init_run: str | Path) -> dict:
    """A training config that starts from another run's model and weights.

    The model section (architecture, detectron2 conventions) comes from ``init_run``;
    ``classes`` is cleared so that the training data names them; ``weights`` points at the
    run's best checkpoint.
    """
    check_run(init_run, PROJECT, (MEMBER,), "train --init")
    run_dir, init_cfg = open_run(init_run)
    cfg = copy.deepcopy(cfg)
    cfg["model"] = {**copy.deepcopy(init_cfg["model"]), "classes": None,
                    "weights": str(best_checkpoint(run_dir))}
    return cfg
