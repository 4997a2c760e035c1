"""ONNX export of the native Mask R-CNN members and the member that runs it with onnxruntime.

What exports is the *network part*, as four graphs:

- ``model.onnx``: backbone + FPN. Input ``image`` float32 ``[1, C, H, W]``, the normalised
  image batch padded right and bottom with zeros to multiples of 32 (``H``, ``W`` dynamic);
  outputs ``fpn_<level>`` ``[1, 256, h, w]`` (levels ``0``-``3`` at strides 4-32, ``pool``).
- ``model.rpn_head.onnx``: the RPN head on the FPN levels -> ``objectness_<level>``
  ``[1, A, h, w]`` and ``deltas_<level>`` ``[1, 4A, h, w]`` (A anchors per position).
- ``model.box_head.onnx``: box head + predictor, RoIAligned ``[R, 256, 7, 7]`` ->
  ``class_logits`` ``[R, K + 1]``, ``box_deltas`` ``[R, 4 (K + 1)]``.
- ``model.mask_head.onnx``: mask head + predictor, RoIAligned ``[R, 256, M/2, M/2]`` ->
  ``mask_logits`` ``[R, K + 1, M, M]``.

Everything between them stays the torchvision code the torch path runs (the resize to
``image_size``, :class:`.maskrcnn_model.CellImageTransform`'s normalisation and padding,
anchors, proposal decoding and NMS, RoIAlign, box decoding, per-class NMS, mask pasting):
``predict --runtime onnx`` builds the member's torchvision model and swaps those four module
calls for onnxruntime sessions through thin modules (:func:`use_onnx_graphs`). That keeps
the results exact to float32 rounding, which exporting the whole ``MaskRCNN`` (data-dependent
NMS and top-k, Python loops over levels and images) would not promise. ``model.json`` beside
the graphs records the pre- and post-processing settings.

detectron2-imported runs (``model.detectron2``) do not export: their heads, RoIAlign and
mask pasting are detectron2's (:mod:`..detectron2`), not torchvision's.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from ensemblab.engine.onnx_export import (
    OnnxGraph,
    OnnxRuntimeModel,
    OnnxSpec,
    load_onnx,
    load_onnx_part,
)
from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.members.maskrcnn import (
    LoadedMaskRCNN,
    model_from_config,
    run_params,
)

PARTS = ("rpn_head", "box_head", "mask_head")
"""The graphs beside ``model.onnx`` (the backbone + FPN)."""
EXAMPLE_SIDE = 64
"""Side of the padded example image the backbone is traced on (a multiple of 32)."""


def check_exportable(run: str | Path, model_cfg: dict) -> None:
    """ConfigError for a detectron2-imported run (one line)."""
    if model_cfg.get("detectron2"):
        raise ConfigError(f"{run}: a detectron2-imported Mask R-CNN member has no ONNX export "
                          "(its heads and mask pasting are detectron2's); predict it with "
                          "--runtime torch")


class _Features(nn.Module):
    """The backbone returning its FPN levels as a tuple (ONNX outputs are positional)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.backbone(image).values())


class _RPNHead(nn.Module):
    """torchvision's RPN head on the levels as separate inputs -> objectness..., deltas..."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, *levels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        objectness, deltas = self.head(list(levels))
        return (*objectness, *deltas)


class _HeadWithPredictor(nn.Module):
    """An RoI head and its predictor as one graph: pooled RoIs -> the predictor's outputs."""

    def __init__(self, head: nn.Module, predictor: nn.Module):
        super().__init__()
        self.head, self.predictor = head, predictor

    def forward(self, rois: torch.Tensor):
        return self.predictor(self.head(rois))


def onnx_spec(net: nn.Module, settings: dict) -> OnnxSpec:
    """The four graphs of a native Mask R-CNN (:func:`.maskrcnn_model.build_maskrcnn`) and
    its pre/post-processing settings.

    Args:
        net: the member's model in eval mode, on the CPU.
        settings: the project's keys (``project``, ``member``, ``cell_types``, ...); this adds
            ``classes``, ``input``, ``output``, ``anchors``, ``rpn``, ``roi_heads`` and
            ``runtime``.
    """
    transform, rpn, heads = net.transform, net.rpn, net.roi_heads
    image = torch.rand(1, transform.channels, EXAMPLE_SIDE, EXAMPLE_SIDE,
                       generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = net.backbone(image)
    names = list(features)
    levels = {f"fpn_{k}": {0: "batch", 2: f"h{k}", 3: f"w{k}"} for k in names}
    rpn_out = {f"{kind}_{k}": {0: "batch", 2: f"h{k}", 3: f"w{k}"}
               for kind in ("objectness", "deltas") for k in names}
    box_side = _pair(heads.box_roi_pool.output_size)
    mask_side = _pair(heads.mask_roi_pool.output_size)
    channels = net.backbone.out_channels
    rois = {0: "rois"}
    parts = {
        "rpn_head": OnnxGraph(_RPNHead(rpn.head), dict(zip(levels, features.values())),
                              tuple(rpn_out), {**levels, **rpn_out}),
        "box_head": OnnxGraph(_HeadWithPredictor(heads.box_head, heads.box_predictor),
                              {"rois": torch.rand(3, channels, *box_side)},
                              ("class_logits", "box_deltas"),
                              {"rois": rois, "class_logits": rois, "box_deltas": rois}),
        "mask_head": OnnxGraph(_HeadWithPredictor(heads.mask_head, heads.mask_predictor),
                               {"rois": torch.rand(3, channels, *mask_side)},
                               ("mask_logits",), {"rois": rois, "mask_logits": rois}),
    }
    mask_resolution = 2 * mask_side[0]
    per_image = ("0.5 + 0.25 (x - mean(x)) / max(std(x), 1/255), then " if transform.per_image
                 else "")
    settings = {
        **settings,
        "classes": ["background", *settings["cell_types"]],
        "input": {"color": "gray", "range": "[0, 1] (uint8 / 255)",
                  "size": int(transform.min_size[0]),
                  "resize": "longer side to size (bilinear) before the network",
                  "normalisation": f"{per_image}(x - {transform.image_mean[0]}) / "
                                   f"{transform.image_std[0]}, repeated to the channels",
                  "multiple_of": 32, "pad": "right and bottom with zeros, after normalising"},
        "output": {"feature_names": names, "channels": int(channels)},
        "anchors": {"sizes": [list(s) for s in rpn.anchor_generator.sizes],
                    "aspect_ratios": [list(r) for r in rpn.anchor_generator.aspect_ratios]},
        "rpn": {"pre_nms_top_n": int(rpn._pre_nms_top_n["testing"]),
                "post_nms_top_n": int(rpn._post_nms_top_n["testing"]),
                "nms_thresh": float(rpn.nms_thresh), "score_thresh": float(rpn.score_thresh),
                "box_weights": list(rpn.box_coder.weights)},
        "roi_heads": {"box_roi_align": list(box_side), "mask_roi_align": list(mask_side),
                      "sampling_ratio": int(heads.box_roi_pool.sampling_ratio),
                      "box_weights": list(heads.box_coder.weights),
                      "score_thresh": float(heads.score_thresh),
                      "nms_thresh": float(heads.nms_thresh),
                      "detections_per_img": int(heads.detections_per_img),
                      "mask_resolution": mask_resolution, "mask_activation": "sigmoid"},
        "runtime": "the graphs replace the backbone, RPN head and RoI heads of the member's "
                   "torchvision MaskRCNN; anchors, NMS, RoIAlign, box decoding and mask "
                   "pasting run in torch (predict --runtime onnx)",
    }
    return OnnxSpec(_Features(net.backbone), image, settings, dynamic_hw=True,
                    outputs=levels, parts=parts)


class OnnxBackbone(nn.Module):
    """The backbone graph called like the backbone: ``[B, C, H, W]`` -> ``{level: map}``."""

    def __init__(self, graph: OnnxRuntimeModel, names: list[str], out_channels: int):
        super().__init__()
        self.graph, self.names, self.out_channels = graph, list(names), out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict(zip(self.names, self.graph.run(x), strict=True))


class OnnxRPNHead(nn.Module):
    """The RPN head graph called like the RPN head: levels -> (objectness, deltas) lists."""

    def __init__(self, graph: OnnxRuntimeModel):
        super().__init__()
        self.graph = graph

    def forward(self, levels: list[torch.Tensor]):
        out = self.graph.run(*levels)
        return out[:len(levels)], out[len(levels):]


class OnnxRoIHead(nn.Module):
    """A head + predictor graph in the head's place: pooled RoIs ``[R, 256, s, s]`` -> the
    predictor's outputs (box: ``(class_logits, box_deltas)``, mask: ``mask_logits``). No RoIs
    give empty outputs without calling onnxruntime."""

    def __init__(self, graph: OnnxRuntimeModel):
        super().__init__()
        self.graph = graph
        self.shapes = [node.shape[1:] for node in graph.session.get_outputs()]

    def forward(self, rois: torch.Tensor):
        if len(rois) == 0:
            out = [rois.new_zeros((0, *shape)) for shape in self.shapes]
        else:
            out = self.graph.run(rois)
        return tuple(out) if len(out) > 1 else out[0]


class Predicted(nn.Module):
    """In a predictor's place: the head's graph ran the predictor already; pass through."""

    def forward(self, x):
        return x


def use_onnx_graphs(net: nn.Module, run_dir: str | Path) -> nn.Module:
    """Swap the backbone, RPN head and RoI heads of ``net`` for a run's exported graphs, in
    place (their torch weights are dropped); returns ``net``."""
    backbone, settings = load_onnx(run_dir)
    graphs = {part: load_onnx_part(run_dir, part) for part in PARTS}
    net.backbone = OnnxBackbone(backbone, settings["output"]["feature_names"],
                                int(settings["output"]["channels"]))
    net.rpn.head = OnnxRPNHead(graphs["rpn_head"])
    heads = net.roi_heads
    heads.box_head, heads.box_predictor = OnnxRoIHead(graphs["box_head"]), Predicted()
    heads.mask_head, heads.mask_predictor = OnnxRoIHead(graphs["mask_head"]), Predicted()
    return net.eval()


def onnx_member(kind, run_dir: str | Path, cfg: dict) -> LoadedMaskRCNN:
    """A Mask R-CNN member run predicting through its exported graphs (onnxruntime, CPU) and
    its tuned thresholds.

    Args:
        kind: the ``maskrcnn`` :class:`.base.MemberKind`.
        run_dir: the run folder (``model.onnx`` and its parts from ``export --format onnx``).
        cfg: the run's resolved config.
    """
    check_exportable(run_dir, cfg["model"])
    # The torchvision shell: its initial weights are replaced (no weights file is read).
    net = model_from_config({**cfg["model"], "weights": None, "backbone_weights": None},
                            pretrained=False)
    return LoadedMaskRCNN(kind, use_onnx_graphs(net, run_dir), cfg, torch.device("cpu"),
                          run_params(run_dir, cfg))
