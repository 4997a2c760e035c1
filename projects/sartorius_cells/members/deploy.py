"""The ONNX export of the UPerNet and Mask R-CNN members and the members that run it with
onnxruntime.

``upernet_full``: ``[N, 1, H, W]`` gray standardised per image (zero mean, unit variance) ->
logits over background / cell (/ border); ``H`` and ``W`` dynamic multiples of 32. The settings
file holds what :func:`.upernet_model.predict_full` does around it: letterbox the longer side to
``size`` (area resize), pad right and bottom with zeros to a multiple of 32, softmax, crop,
bilinear resize back. ``upernet_crop``: RoIAlign crops ``crop x crop`` of the standardised
image around boxes grown by ``context`` -> one cell-mask logit map each (sigmoid).

The pyramid pooling module's adaptive pools export as matrix products
(:func:`ensemblab.engine.onnx_export.exportable`), so the graph keeps dynamic sizes.

``maskrcnn``: the backbone + FPN, the RPN head and the box and mask heads as four graphs, with
torchvision's anchors, NMS, RoIAlign and pasting between them (:mod:`.maskrcnn_onnx`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ensemblab.engine import check_run, open_run
from ensemblab.engine.onnx_export import OnnxSpec, load_onnx
from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.members import maskrcnn_onnx
from ensemblab.projects.sartorius_cells.members.base import (
    MEMBER_CONFIGS,
    LoadedMember,
    load_member,
    member_kind,
)

ONNX_KINDS = ("upernet_full", "upernet_crop", "maskrcnn")
"""The member kinds with an ONNX export."""


def _check_kind(run: str | Path, kind: str) -> None:
    if kind not in ONNX_KINDS:
        raise ConfigError(f"{run}: a {kind} member has no ONNX export (members with one: "
                          f"{', '.join(ONNX_KINDS)})")


def onnx_spec(run: str | Path) -> OnnxSpec:
    """The best weights of a UPerNet or Mask R-CNN member run and its pre/post-processing
    settings."""
    check_run(run, PROJECT, (MEMBER,), "export")
    _, cfg = open_run(run)
    kind = str(cfg["model"]["kind"])
    _check_kind(run, kind)
    if kind == "maskrcnn":
        maskrcnn_onnx.check_exportable(run, cfg["model"])  # before its weights load
    member = load_member(run, "cpu", verb="export")
    if kind == "maskrcnn":
        return maskrcnn_onnx.onnx_spec(member.net, {"project": PROJECT, "member": kind,
                                                    "cell_types": member.classes})
    mcfg = member.cfg["model"]
    common = {"color": "gray", "normalisation": "per image: (x - mean) / max(std, 1)"}
    if member.kind.name == "upernet_full":
        classes = ["background", "cell", "border"] if mcfg["border"] else ["background", "cell"]
        side = 32 * -(-int(mcfg["size"]) // 32)
        settings = {
            "input": {**common, "size": int(mcfg["size"]), "multiple_of": 32,
                      "resize": "letterbox: longer side to size (area), pad right and bottom "
                                "with zeros to multiple_of"},
            "tiling": None,
            "output": {"activation": "softmax", "resize": "crop the padding, bilinear to the "
                                                          "image size"}}
        example = torch.randn(1, 1, min(side, 64), min(side, 64))
    else:
        classes = ["cell"]
        crop = int(mcfg["crop"])
        settings = {
            "input": {**common, "crop": crop, "context": float(mcfg["context"]),
                      "resize": "RoIAlign crop x crop of the box grown by context per side"},
            "tiling": None,
            "output": {"activation": "sigmoid", "resize": "bilinear to the grown box"}}
        example = torch.randn(1, 1, crop, crop)
    settings = {"project": PROJECT, "member": member.kind.name, "classes": classes,
                "cell_types": member.classes, **settings}
    return OnnxSpec(member.net, example, settings, dynamic_hw=True)


def onnx_member(run: str | Path, verb: str = "predict") -> LoadedMember:
    """A member run whose network is its exported ``model.onnx`` (onnxruntime, CPU); a Mask
    R-CNN's torchvision model with its exported graphs in place of its networks."""
    check_run(run, PROJECT, (MEMBER,), verb)
    run_dir, cfg = open_run(run)
    kind = str(cfg["model"]["kind"])
    _check_kind(run, kind)
    member = member_kind(kind)
    _, cfg = open_run(run_dir, base=MEMBER_CONFIGS / member.root_config)
    if kind == "maskrcnn":
        return maskrcnn_onnx.onnx_member(member, run_dir, cfg)
    net, _ = load_onnx(run_dir)
    return member.loaded(net, cfg, torch.device("cpu"))
