"""Reading detectron2 checkpoints and mapping their tensors to our Mask R-CNN and back.

Two files hold a detectron2 model (``detectron2/checkpoint/detection_checkpoint.py``): a
``.pth`` written by ``DetectionCheckpointer.save`` (``torch.save({"model": state_dict, ...})``)
and a model-zoo ``.pkl`` (``{"model": {name: numpy array}, "__author__": ...}``). A ``.pkl``
without ``__author__`` uses Caffe2 names that detectron2 matches heuristically; it is refused.
Pickles are read with an unpickler that builds only numpy arrays and plain containers.

Names map one to one (:func:`torchvision_name`); the class-specific layers are re-laid out:
detectron2's ``cls_score`` rows are ``[class 0..K-1, background]``, ours
``[background, class 0..K-1]``; detectron2's ``bbox_pred`` and mask ``predictor`` have no
background slot, ours have one (zeros on import, dropped on export).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from ensemblab.errors import DataError

_RULES = [  # (detectron2 pattern, torchvision replacement), first match wins
    (r"backbone\.bottom_up\.stem\.conv1\.norm\.(\w+)", r"backbone.body.bn1.\1"),
    (r"backbone\.bottom_up\.stem\.conv1\.weight", r"backbone.body.conv1.weight"),
    (r"backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.norm\.(\w+)", "block_bn"),
    (r"backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.weight", "block_conv"),
    (r"backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.norm\.(\w+)", "shortcut_bn"),
    (r"backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.weight", "shortcut_conv"),
    (r"backbone\.fpn_lateral(\d)\.(weight|bias)", "fpn_inner"),
    (r"backbone\.fpn_output(\d)\.(weight|bias)", "fpn_layer"),
    (r"proposal_generator\.rpn_head\.conv\.(weight|bias)", r"rpn.head.conv.0.0.\1"),
    (r"proposal_generator\.rpn_head\.objectness_logits\.(weight|bias)", r"rpn.head.cls_logits.\1"),
    (r"proposal_generator\.rpn_head\.anchor_deltas\.(weight|bias)", r"rpn.head.bbox_pred.\1"),
    (r"roi_heads\.box_head\.fc1\.(weight|bias)", r"roi_heads.box_head.fc6.\1"),
    (r"roi_heads\.box_head\.fc2\.(weight|bias)", r"roi_heads.box_head.fc7.\1"),
    (r"roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(weight|bias)",
     r"roi_heads.box_predictor.\1.\2"),
    (r"roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)", "mask_fcn"),
    (r"roi_heads\.mask_head\.deconv\.(weight|bias)", r"roi_heads.mask_predictor.conv5_mask.\1"),
    (r"roi_heads\.mask_head\.predictor\.(weight|bias)",
     r"roi_heads.mask_predictor.mask_fcn_logits.\1"),
]
_KINDS = {"block_bn", "block_conv", "shortcut_bn", "shortcut_conv", "fpn_inner", "fpn_layer",
          "mask_fcn"}
IGNORED = re.compile(r"(pixel_mean|pixel_std|.*\.num_batches_tracked"
                     r"|proposal_generator\.anchor_generator\..*)$")
"""Entries some detectron2 versions save that carry no weights: input statistics (the config's
``MODEL.PIXEL_MEAN/STD`` are used, as current detectron2 does), BN step counters, anchors."""


def _special(kind: str, groups: tuple[str, ...]) -> str:
    if kind in ("block_bn", "block_conv"):
        stage, block, conv = groups[:3]
        leaf = f"bn{conv}.{groups[3]}" if kind == "block_bn" else f"conv{conv}.weight"
        return f"backbone.body.layer{int(stage) - 1}.{block}.{leaf}"
    if kind in ("shortcut_bn", "shortcut_conv"):
        stage, block = groups[:2]
        leaf = f"1.{groups[2]}" if kind == "shortcut_bn" else "0.weight"
        return f"backbone.body.layer{int(stage) - 1}.{block}.downsample.{leaf}"
    if kind in ("fpn_inner", "fpn_layer"):
        blocks = "inner_blocks" if kind == "fpn_inner" else "layer_blocks"
        return f"backbone.fpn.{blocks}.{int(groups[0]) - 2}.0.{groups[1]}"
    return f"roi_heads.mask_head.{int(groups[0]) - 1}.0.{groups[1]}"  # mask_fcn


def torchvision_name(name: str) -> str | None:
    """Our (torchvision) state-dict name of a detectron2 name; None if it has none."""
    for pattern, target in _RULES:
        match = re.fullmatch(pattern, name)
        if match:
            if target in _KINDS:
                return _special(target, match.groups())
            return match.expand(target)
    return None


def detectron2_name(name: str) -> str | None:
    """Inverse of :func:`torchvision_name` over the names our model has."""
    return _INVERSE.get(name)


def _inverse_table() -> dict[str, str]:
    stages = {2: 3, 3: 8, 4: 36, 5: 3}  # the most blocks any supported depth has
    names = ["backbone.bottom_up.stem.conv1.weight"]
    names += [f"backbone.bottom_up.stem.conv1.norm.{p}" for p in _BN]
    for stage, blocks in stages.items():
        for block in range(blocks):
            prefix = f"backbone.bottom_up.res{stage}.{block}"
            for conv in ("conv1", "conv2", "conv3", "shortcut"):
                names += [f"{prefix}.{conv}.weight"] + [f"{prefix}.{conv}.norm.{p}" for p in _BN]
    for level in range(2, 6):
        names += [f"backbone.fpn_{kind}{level}.{p}" for kind in ("lateral", "output")
                  for p in ("weight", "bias")]
    heads = ["proposal_generator.rpn_head.conv", "proposal_generator.rpn_head.objectness_logits",
             "proposal_generator.rpn_head.anchor_deltas", "roi_heads.box_head.fc1",
             "roi_heads.box_head.fc2", "roi_heads.box_predictor.cls_score",
             "roi_heads.box_predictor.bbox_pred", "roi_heads.mask_head.deconv",
             "roi_heads.mask_head.predictor"]
    heads += [f"roi_heads.mask_head.mask_fcn{i}" for i in range(1, 33)]
    names += [f"{h}.{p}" for h in heads for p in ("weight", "bias")]
    return {torchvision_name(n): n for n in names}


_BN = ("weight", "bias", "running_mean", "running_var")
_INVERSE = _inverse_table()


class _NumpyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers only (no arbitrary code from the file)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
               "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("collections", "OrderedDict"), ("builtins", "set")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to build {module}.{name}")
        return super().find_class(module, name)


def read_detectron2_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a detectron2 ``.pth`` or model-zoo ``.pkl``, float32 on the CPU.

    Raises:
        DataError: missing, truncated or foreign file, a Caffe2-named ``.pkl``, or a ``model``
            entry that is not a mapping of arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "detectron2 checkpoint not found")
    try:
        if path.suffix == ".pkl":
            with path.open("rb") as f:
                data = _NumpyUnpickler(f, encoding="latin1").load()
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/EOF errors of a truncated or foreign file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:100]
        raise DataError(path, f"not a readable detectron2 checkpoint, truncated or another "
                              f"format ({reason})") from None
    if not isinstance(data, dict) or "model" not in data:
        keys = ", ".join(sorted(map(str, data))[:6]) if isinstance(data, dict) else ""
        raise DataError(path, f"not a detectron2 checkpoint: no 'model' entry "
                              f"({type(data).__name__}{': ' + keys if keys else ''})")
    if path.suffix == ".pkl" and "__author__" not in data:
        raise DataError(path, "Caffe2-format pickle (no '__author__'): its names need "
                              "detectron2's matching heuristics; convert it with detectron2")
    state = {}
    for name, value in data["model"].items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise DataError(path, f"entry {name!r} is a {type(value).__name__}, not a tensor")
        state[name] = value.float() if value.is_floating_point() else value
    return state


def to_torchvision_state(d2_state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                         path: str | Path) -> dict[str, torch.Tensor]:
    """Our model's state dict from a detectron2 one, every tensor accounted for.

    Args:
        d2_state: detectron2 names -> tensors.
        own: our model's ``state_dict()`` (names and shapes to fill).
        path: the checkpoint, for messages.

    Raises:
        DataError: one line naming the missing (ours without a source), unexpected (theirs
            without a place, except :data:`IGNORED`) and mis-shaped tensors.
    """
    out, unexpected, misshaped, placed = {}, [], [], set()
    for name, tensor in d2_state.items():
        ours = torchvision_name(name)
        if ours is None or ours not in own:
            if not IGNORED.fullmatch(name):
                unexpected.append(name)
            continue
        value = _to_ours(ours, tensor)
        placed.add(ours)
        if tuple(value.shape) != tuple(own[ours].shape):
            misshaped.append(f"{name} {list(tensor.shape)}")
            continue
        out[ours] = value.to(own[ours].dtype)
    missing = [detectron2_name(k) or k for k in own if k not in placed]
    if missing or unexpected or misshaped:
        parts = [f"{len(v)} {kind} ({', '.join(v[:8])}{', ...' if len(v) > 8 else ''})"
                 for kind, v in (("missing", missing), ("unexpected", unexpected),
                                 ("mis-shaped", misshaped)) if v]
        raise DataError(path, f"checkpoint does not fit the configured model: {'; '.join(parts)}")
    return out


def _to_ours(name: str, tensor: torch.Tensor) -> torch.Tensor:
    if name.startswith("roi_heads.box_predictor.cls_score"):
        return torch.cat([tensor[-1:], tensor[:-1]])
    if name.startswith("roi_heads.box_predictor.bbox_pred"):
        return torch.cat([tensor.new_zeros((4, *tensor.shape[1:])), tensor])
    if name.startswith("roi_heads.mask_predictor.mask_fcn_logits"):
        return torch.cat([tensor.new_zeros((1, *tensor.shape[1:])), tensor])
    return tensor


def to_detectron2_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """detectron2's state dict (its names and class layout) of our model's state dict."""
    out = {}
    for name, tensor in state.items():
        d2 = detectron2_name(name)
        if d2 is None:
            raise DataError(None, f"tensor {name!r} has no detectron2 counterpart")
        if name.startswith("roi_heads.box_predictor.cls_score"):
            tensor = torch.cat([tensor[1:], tensor[:1]])
        elif name.startswith("roi_heads.box_predictor.bbox_pred"):
            tensor = tensor[4:]
        elif name.startswith("roi_heads.mask_predictor.mask_fcn_logits"):
            tensor = tensor[1:]
        out[d2] = tensor.detach().clone().contiguous()
    return out
