"""detectron2 config YAML (yacs style, ``_BASE_`` chains) reduced to the keys our model honours.

A detectron2 config is read the way ``CfgNode.merge_from_file`` reads it: ``_BASE_`` files
first (paths relative to the file that names them), the child's keys merged over them, all
over detectron2's defaults (``detectron2/config/defaults.py``). Only ``MODEL``, ``INPUT`` and
``TEST.DETECTIONS_PER_IMAGE`` matter to a trained model; solver, dataset and dataloader
sections are ignored. Inside ``MODEL`` and ``INPUT`` every key is one of:

- honoured (:data:`HONOURED`): carried into our run config under ``model.detectron2``;
- fixed (:data:`FIXED`): architecture choices we build one way only; another value is an error;
- ignored (:data:`IGNORED`): training losses or heads this meta-architecture does not use.

Anything else, or a fixed key with another value, is a :class:`ConfigError` naming every such
key at once: a silent partial import would produce a different model.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import yaml

from ensemblab.config import merge
from ensemblab.errors import ConfigError

RES = ["res2", "res3", "res4", "res5"]

HONOURED: dict[str, Any] = {
    "MODEL.PIXEL_MEAN": [103.53, 116.28, 123.675],
    "MODEL.PIXEL_STD": [1.0, 1.0, 1.0],
    "INPUT.FORMAT": "BGR",
    "INPUT.MIN_SIZE_TEST": 800,
    "INPUT.MAX_SIZE_TEST": 1333,
    "INPUT.MIN_SIZE_TRAIN": [800],
    "INPUT.MAX_SIZE_TRAIN": 1333,
    "MODEL.BACKBONE.FREEZE_AT": 2,
    "MODEL.RESNETS.DEPTH": 50,
    "MODEL.RESNETS.NORM": "FrozenBN",
    "MODEL.RESNETS.NUM_GROUPS": 1,
    "MODEL.RESNETS.WIDTH_PER_GROUP": 64,
    "MODEL.RESNETS.STRIDE_IN_1X1": True,
    "MODEL.FPN.OUT_CHANNELS": 256,
    "MODEL.ANCHOR_GENERATOR.SIZES": [[32, 64, 128, 256, 512]],
    "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": [[0.5, 1.0, 2.0]],
    "MODEL.ANCHOR_GENERATOR.OFFSET": 0.0,
    "MODEL.PROPOSAL_GENERATOR.MIN_SIZE": 0,
    "MODEL.RPN.IOU_THRESHOLDS": [0.3, 0.7],
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE": 256,
    "MODEL.RPN.POSITIVE_FRACTION": 0.5,
    "MODEL.RPN.BBOX_REG_WEIGHTS": [1.0, 1.0, 1.0, 1.0],
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN": 12000,
    "MODEL.RPN.PRE_NMS_TOPK_TEST": 6000,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN": 2000,
    "MODEL.RPN.POST_NMS_TOPK_TEST": 1000,
    "MODEL.RPN.NMS_THRESH": 0.7,
    "MODEL.ROI_HEADS.NUM_CLASSES": 80,
    "MODEL.ROI_HEADS.IOU_THRESHOLDS": [0.5],
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 512,
    "MODEL.ROI_HEADS.POSITIVE_FRACTION": 0.25,
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.05,
    "MODEL.ROI_HEADS.NMS_THRESH_TEST": 0.5,
    "MODEL.ROI_BOX_HEAD.FC_DIM": 1024,
    "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS": [10.0, 10.0, 5.0, 5.0],
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": 14,
    "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO": 0,
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE": "ROIAlignV2",
    "MODEL.ROI_MASK_HEAD.NUM_CONV": 0,
    "MODEL.ROI_MASK_HEAD.CONV_DIM": 256,
    "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION": 14,
    "MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO": 0,
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE": "ROIAlignV2",
    "TEST.DETECTIONS_PER_IMAGE": 100,
}
"""Keys that reach the model, with detectron2's defaults (``config/defaults.py``)."""

CHOICES: dict[str, list] = {
    "INPUT.FORMAT": ["BGR", "RGB"],
    "MODEL.RESNETS.DEPTH": [50, 101, 152],
    "MODEL.RESNETS.NORM": ["FrozenBN", "BN", "SyncBN"],  # the same function at inference
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE": ["ROIAlignV2", "ROIAlign"],
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE": ["ROIAlignV2", "ROIAlign"],
}
"""Honoured keys whose value must be one of a few."""

FIXED: dict[str, tuple[Any, Any]] = {
    "MODEL.META_ARCHITECTURE": ("GeneralizedRCNN", "GeneralizedRCNN"),
    "MODEL.MASK_ON": (False, True),
    "MODEL.KEYPOINT_ON": (False, False),
    "MODEL.LOAD_PROPOSALS": (False, False),
    "MODEL.BACKBONE.NAME": ("build_resnet_backbone", "build_resnet_fpn_backbone"),
    "MODEL.RESNETS.OUT_FEATURES": (["res4"], RES),
    "MODEL.RESNETS.RES5_DILATION": (1, 1),
    "MODEL.RESNETS.RES2_OUT_CHANNELS": (256, 256),
    "MODEL.RESNETS.STEM_OUT_CHANNELS": (64, 64),
    "MODEL.RESNETS.DEFORM_ON_PER_STAGE": ([False] * 4, [False] * 4),
    "MODEL.FPN.IN_FEATURES": ([], RES),
    "MODEL.FPN.NORM": ("", ""),
    "MODEL.FPN.FUSE_TYPE": ("sum", "sum"),
    "MODEL.PROPOSAL_GENERATOR.NAME": ("RPN", "RPN"),
    "MODEL.ANCHOR_GENERATOR.NAME": ("DefaultAnchorGenerator", "DefaultAnchorGenerator"),
    "MODEL.RPN.HEAD_NAME": ("StandardRPNHead", "StandardRPNHead"),
    "MODEL.RPN.IN_FEATURES": (["res4"], ["p2", "p3", "p4", "p5", "p6"]),
    "MODEL.RPN.CONV_DIMS": ([-1], [-1]),
    "MODEL.ROI_HEADS.NAME": ("Res5ROIHeads", "StandardROIHeads"),
    "MODEL.ROI_HEADS.IN_FEATURES": (["res4"], ["p2", "p3", "p4", "p5"]),
    "MODEL.ROI_BOX_HEAD.NAME": ("", "FastRCNNConvFCHead"),
    "MODEL.ROI_BOX_HEAD.NUM_FC": (0, 2),
    "MODEL.ROI_BOX_HEAD.NUM_CONV": (0, 0),
    "MODEL.ROI_BOX_HEAD.NORM": ("", ""),
    "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": (False, False),
    "MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE": (False, False),
    "MODEL.ROI_MASK_HEAD.NAME": ("MaskRCNNConvUpsampleHead", "MaskRCNNConvUpsampleHead"),
    "MODEL.ROI_MASK_HEAD.NORM": ("", ""),
    "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK": (False, False),
}
"""``key: (detectron2 default, the one value we build)``: R-50/101/152-FPN Mask R-CNN."""

IGNORED = (
    "MODEL.DEVICE", "MODEL.WEIGHTS", "MODEL.ANCHOR_GENERATOR.ANGLES",
    "MODEL.RESNETS.DEFORM_MODULATED", "MODEL.RESNETS.DEFORM_NUM_GROUPS",
    "MODEL.RPN.BOUNDARY_THRESH", "MODEL.RPN.IOU_LABELS", "MODEL.RPN.BBOX_REG_LOSS_TYPE",
    "MODEL.RPN.BBOX_REG_LOSS_WEIGHT", "MODEL.RPN.SMOOTH_L1_BETA", "MODEL.RPN.LOSS_WEIGHT",
    "MODEL.ROI_HEADS.IOU_LABELS", "MODEL.ROI_HEADS.PROPOSAL_APPEND_GT",
    "MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE", "MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT",
    "MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA", "MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES",
    "MODEL.ROI_BOX_HEAD.USE_FED_LOSS", "MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER",
    "MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES", "MODEL.ROI_BOX_HEAD.CONV_DIM",
    "INPUT.MIN_SIZE_TRAIN_SAMPLING", "INPUT.RANDOM_FLIP", "INPUT.MASK_FORMAT", "INPUT.CROP.",
    "MODEL.ROI_KEYPOINT_HEAD.", "MODEL.SEM_SEG_HEAD.", "MODEL.PANOPTIC_FPN.",
    "MODEL.RETINANET.", "MODEL.ROI_BOX_CASCADE_HEAD.",
)
"""Keys (or prefixes ending in ``.``) without effect on this model's outputs: training losses
and sampling, data augmentation, and heads of other meta-architectures."""


class _Loader(yaml.SafeLoader):
    """Safe YAML plus ``!!python/tuple`` (old yacs dumps write tuples that way)."""


_Loader.add_constructor("tag:yaml.org,2002:python/tuple",
                        lambda loader, node: loader.construct_sequence(node))


def read_yaml_chain(path: str | Path) -> dict[str, Any]:
    """The nested config of ``path`` with its ``_BASE_`` chain merged in (child wins)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: detectron2 config file not found")
    try:
        cfg = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = cfg.pop("_BASE_", None)
    if base is None:
        return cfg
    if str(base).startswith(("http://", "https://")):
        raise ConfigError(f"{path}: _BASE_ {base!r} is a URL; download it and name the file")
    return merge(read_yaml_chain(path.parent / Path(str(base)).expanduser()), cfg)


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """``{"MODEL": {"RPN": {"NMS_THRESH": 0.7}}}`` -> ``{"MODEL.RPN.NMS_THRESH": 0.7}``."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _plain(value: Any) -> Any:
    """A value as yacs decodes it: strings that are Python literals (``"(640, 672)"``, which
    detectron2's configs use for tuples) are evaluated; tuples become lists."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def model_config(path: str | Path) -> dict[str, Any]:
    """The honoured keys of a detectron2 config file, nested, detectron2's defaults filled in.

    Args:
        path: detectron2 YAML (a ``cfg.dump()`` of a training run, or a model-zoo file with
            its ``_BASE_`` files next to it).

    Returns:
        ``{"MODEL": {...}, "INPUT": {...}, "TEST": {"DETECTIONS_PER_IMAGE": n}}`` holding every
        key of :data:`HONOURED`.

    Raises:
        ConfigError: unreadable file, missing ``_BASE_``, or (one message listing all of them)
            unknown ``MODEL``/``INPUT`` keys and values the importer cannot build.
    """
    flat = {k: _plain(v) for k, v in flatten(read_yaml_chain(path)).items()}
    problems = []
    for key in flat:
        if not key.startswith(("MODEL.", "INPUT.")) or key in HONOURED or key in FIXED:
            continue
        if not any(key == ig or (ig.endswith(".") and key.startswith(ig)) for ig in IGNORED):
            problems.append(f"{key} (unknown key)")
    for key, (default, built) in FIXED.items():
        value = flat.get(key, default)
        if value != built:
            problems.append(f"{key}={value!r} (supported: {built!r})")
    for key, allowed in CHOICES.items():
        value = flat.get(key, HONOURED[key])
        if value not in allowed:
            problems.append(f"{key}={value!r} (supported: {', '.join(map(repr, allowed))})")
    if problems:
        raise ConfigError(f"{path}: cannot import this detectron2 model: {'; '.join(problems)}")
    return nest({key: flat.get(key, default) for key, default in HONOURED.items()})


def value(d2cfg: dict[str, Any], key: str) -> Any:
    """One dotted key of a nested honoured config (detectron2's default when absent)."""
    node: Any = d2cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return copy.deepcopy(HONOURED[key])
        node = node[part]
    return node


def broadcast_levels(values: list, levels: int, key: str) -> list[list[float]]:
    """detectron2's per-level anchor parameters: one list for all levels, or one per level."""
    if not isinstance(values[0], (list, tuple)):
        values = [values]
    if len(values) == 1:
        values = values * levels
    if len(values) != levels:
        raise ConfigError(f"{key}: {len(values)} lists for {levels} feature levels")
    return [[float(v) for v in level] for level in values]
