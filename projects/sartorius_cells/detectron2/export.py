"""Our Mask R-CNN runs as detectron2 checkpoints + configs.

A run in detectron2 compatibility mode (imported, or fine-tuned from an import) exports
exactly: its ``model.detectron2`` keys become the config and every tensor maps back, so
importing the export gives the same tensors bit for bit. A torchvision-recipe run
(``backbone: resnet50``, ``v2_heads: false``, ``input_norm: fixed``) exports with the same
tensors and the config that describes it in detectron2's terms (stride on the 3x3 conv,
batch-norm statistics, RGB input scaled as ``(x - 127.5) / 63.75``, ``ROIAlign`` with 2
samples); detectron2 then computes nearly but not exactly what torchvision did, since
torchvision rounds its cell anchors and detectron2 does not.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import yaml

from ensemblab.errors import ConfigError
from ensemblab.io import atomic_write_text
from ensemblab.projects.sartorius_cells.detectron2.checkpoint import to_detectron2_state
from ensemblab.projects.sartorius_cells.detectron2.config import (
    FIXED,
    HONOURED,
    flatten,
    nest,
    value,
)

AUTHOR = "ensemblab sartorius_cells export-detectron2"


def torchvision_recipe_config(model_cfg: dict) -> dict:
    """Honoured detectron2 keys describing a torchvision-recipe Mask R-CNN member.

    Args:
        model_cfg: a run's ``model`` section (``build_maskrcnn`` arguments).

    Raises:
        ConfigError: a variant detectron2's standard heads cannot express.
    """
    need = {"backbone": "resnet50", "v2_heads": False, "input_norm": "fixed"}
    wrong = [f"model.{k}={model_cfg.get(k)!r} (needs {v!r})" for k, v in need.items()
             if model_cfg.get(k, "fixed" if k == "input_norm" else None) != v]
    if wrong:
        raise ConfigError("export-detectron2: this member has no detectron2 equivalent: "
                          + "; ".join(wrong))
    from ensemblab.projects.sartorius_cells.members.maskrcnn_model import anchor_levels

    levels = anchor_levels(model_cfg["anchor_sizes"])
    if len(levels[0]) > 1:  # torchvision orders a level's anchors ratio-major, detectron2 not
        raise ConfigError("export-detectron2: model.anchor_sizes has several sizes per level; "
                          "the export supports one")
    size = int(model_cfg["image_size"])
    flat = {
        "MODEL.PIXEL_MEAN": [127.5] * 3, "MODEL.PIXEL_STD": [63.75] * 3, "INPUT.FORMAT": "RGB",
        "INPUT.MIN_SIZE_TEST": size, "INPUT.MAX_SIZE_TEST": size,
        "INPUT.MIN_SIZE_TRAIN": [size], "INPUT.MAX_SIZE_TRAIN": size,
        "MODEL.BACKBONE.FREEZE_AT": 0, "MODEL.RESNETS.NORM": "BN",
        "MODEL.RESNETS.STRIDE_IN_1X1": False,
        "MODEL.ANCHOR_GENERATOR.SIZES": [[float(s[0])] for s in levels],
        "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": [[float(a) for a in
                                                  model_cfg["aspect_ratios"]]],
        "MODEL.RPN.PRE_NMS_TOPK_TRAIN": int(model_cfg["rpn_pre_nms_top_n_train"]),
        "MODEL.RPN.POST_NMS_TOPK_TRAIN": int(model_cfg["rpn_post_nms_top_n_train"]),
        "MODEL.RPN.PRE_NMS_TOPK_TEST": int(model_cfg["rpn_pre_nms_top_n_test"]),
        "MODEL.RPN.POST_NMS_TOPK_TEST": int(model_cfg["rpn_post_nms_top_n_test"]),
        "MODEL.ROI_HEADS.NUM_CLASSES": len(model_cfg["classes"]),
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": int(model_cfg["box_batch_size_per_image"]),
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST": float(model_cfg["box_score_thresh"]),
        "MODEL.ROI_HEADS.NMS_THRESH_TEST": float(model_cfg["box_nms_thresh"]),
        "TEST.DETECTIONS_PER_IMAGE": int(model_cfg["box_detections_per_img"]),
        "MODEL.ROI_BOX_HEAD.FC_DIM": int(model_cfg["box_head_dim"]),
        "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": 7,
        "MODEL.ROI_MASK_HEAD.NUM_CONV": int(model_cfg["mask_head_layers"]),
        "MODEL.ROI_MASK_HEAD.CONV_DIM": int(model_cfg["mask_head_channels"]),
    }
    for head in ("ROI_BOX_HEAD", "ROI_MASK_HEAD"):
        flat[f"MODEL.{head}.POOLER_TYPE"] = "ROIAlign"
        flat[f"MODEL.{head}.POOLER_SAMPLING_RATIO"] = 2
    return nest({**HONOURED, **flat})


def detectron2_config_yaml(d2cfg: dict, weights_name: str) -> str:
    """A complete detectron2 config (no ``_BASE_``) that ``merge_from_file`` accepts."""
    flat = {key: _typed(value(d2cfg, key), HONOURED[key]) for key in HONOURED}
    flat.update({key: built for key, (_, built) in FIXED.items()})
    flat["MODEL.WEIGHTS"] = weights_name
    cfg = nest(dict(sorted(flat.items())))
    cfg["VERSION"] = 2
    return yaml.safe_dump(cfg, sort_keys=True)


def _typed(val, default):
    """``val`` with the scalar type of detectron2's default (yacs refuses 1 for 1.0)."""
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return val
    return type(default)(val)


def run_detectron2_config(model_cfg: dict) -> dict:
    """The honoured detectron2 keys of a run: its own (compatibility mode) or derived."""
    if model_cfg.get("detectron2"):
        d2cfg = nest(flatten(model_cfg["detectron2"]))
        d2cfg.setdefault("MODEL", {}).setdefault("ROI_HEADS", {})["NUM_CLASSES"] = len(
            model_cfg["classes"])
        return d2cfg
    return torchvision_recipe_config(model_cfg)


def write_detectron2_checkpoint(state: dict[str, torch.Tensor], d2cfg: dict,
                                out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (``.pth``: ``{"model": state_dict}``; ``.pkl``: model-zoo numpy pickle)
    and the config next to it as ``<out stem>.yaml``.

    Args:
        state: our model's state dict (names without a ``model.`` prefix).
        d2cfg: honoured detectron2 keys (:func:`run_detectron2_config`).
        out: checkpoint path ending in ``.pth`` or ``.pkl``.

    Returns:
        ``(checkpoint path, config path)``.
    """
    out = Path(out)
    if out.suffix not in (".pth", ".pkl"):
        raise ConfigError(f"{out}: the detectron2 checkpoint must end in .pth or .pkl")
    d2_state = to_detectron2_state({k: v for k, v in state.items()
                                    if not k.endswith("num_batches_tracked")})
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".pkl":
        data = {"model": {k: v.numpy() for k, v in d2_state.items()}, "__author__": AUTHOR}
        with out.open("wb") as f:
            pickle.dump(data, f, protocol=4)
    else:
        torch.save({"model": d2_state}, out)
    config = out.with_suffix(".yaml")
    atomic_write_text(config, detectron2_config_yaml(d2cfg, out.name))
    return out, config
