"""bf16 prediction of Mask R-CNN members (``predict --precision bf16``).

The fast path folds the backbone's frozen norms into its convolutions, runs the whole network
on channels-last tensors (float32 oneDNN kernels without layout reorders) and its RoI heads
under bfloat16 autocast: on CPUs with AVX-512 BF16 or AMX
(``lscpu``: ``avx512_bf16``, ``amx_bf16``) oneDNN's bf16 matrix products and convolutions do
the box head's 12544 x 1024 layer and the mask head; elsewhere autocast is not entered
(:func:`ensemblab.backbones.precision.autocast_context`). Each bf16 part hands float32 back,
so what decides which boxes exist and where stays float32: the backbone, the RPN head, anchor
decoding, clipping, top-k and NMS, RoIAlign (box coordinates in bf16 would move by up to 2 px
at 500 px), the box predictor, the class softmax, the mask sigmoid and pasting.

Measured on the detectron2-imported R50-FPN of ``d2_reference/`` (Usiigaci image at 800 px,
``tools/bench_predict.py``): the backbone in bf16 is 2.8x faster but keeps 7 of its 100
instances (class scores move by 0.15: rounding compounds over 50 layers); the RPN head in bf16
moves scores by 0.014; the box head 0.007, the mask head nothing (mask IoU 0.99). Hence
:data:`BF16_PARTS`.

RoIAlign, one loop on one core in torchvision, pools slices of the boxes in parallel threads
(:class:`ThreadedPooler`: the same numbers, in half the time on 2 cores). With it the imported
R50-FPN predicts the 800 px Usiigaci image 1.6x faster than the exact path.

The exact path (``fp32``) leaves the model untouched.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d, box_iou

from ensemblab.backbones.precision import autocast_context
from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.members.maskrcnn_model import image_features
from ensemblab.projects.sartorius_cells.structures import Instances

PRECISIONS = ("fp32", "bf16")

BF16_PARTS = (
    ("roi_heads.box_head", False),
    ("roi_heads.mask_head", True),
    ("roi_heads.mask_predictor", False),
)
"""``(dotted submodule, channels-last input)`` of the parts run under bf16 autocast."""


def _to_float(value):
    """Floating tensors in ``value`` (a tensor, or a list, tuple or dict of them) as float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return type(value)((k, _to_float(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    return value


class Bf16Part(nn.Module):
    """A submodule run under bf16 autocast that returns float32.

    Args:
        part: the module (its weights shared, not copied).
        channels_last: make a 4-D input channels-last first (convolutional parts).
    """

    def __init__(self, part: nn.Module, channels_last: bool):
        super().__init__()
        self.part, self.channels_last = part, channels_last

    def forward(self, x, *args):
        """``part(x, *args)`` with floating outputs as float32 (same structure)."""
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        device = next(self.part.parameters()).device
        with autocast_context(device.type, True):
            out = self.part(x, *args)
        return _to_float(out)


class ThreadedPooler(nn.Module):
    """A multi-level RoIAlign (torchvision ``MultiScaleRoIAlign`` or detectron2's
    ``LevelROIAlign``) run on slices of the boxes in parallel threads.

    torchvision's CPU ``roi_align`` is one loop on one core; it releases the GIL, so each
    thread pools its own slice of every image's boxes while the others run. The pooled features
    are the same numbers in the same order (each box is pooled alone, so slicing changes
    nothing): 1000 proposals at 800 px pool in half the time on 2 cores.

    Args:
        pooler: the pooling module (shared, not copied).
        min_boxes: boxes per slice below which the call stays in one thread.
    """

    def __init__(self, pooler: nn.Module, min_boxes: int = 32):
        super().__init__()
        self.part, self.min_boxes = pooler, int(min_boxes)

    def forward(self, features, boxes: list[torch.Tensor], image_shapes=None):
        """``pooler(features, boxes, image_shapes)``, the boxes pooled by slices in threads."""
        total = sum(len(b) for b in boxes)
        slices = min(torch.get_num_threads(), total // self.min_boxes)
        if slices < 2:
            return self.part(features, boxes, image_shapes)
        split = [b.tensor_split(slices) for b in boxes]
        parts = [[image[k] for image in split] for k in range(slices)]
        with ThreadPoolExecutor(slices) as pool:
            pooled = list(pool.map(lambda part: self.part(features, part, image_shapes), parts))
        # slice k of image i sits at rows [offset of image i in slice k, + its length)
        pieces = [p.split([len(b) for b in part]) for p, part in zip(pooled, parts)]
        return torch.cat([pieces[k][i] for i in range(len(boxes)) for k in range(slices)])


class ChannelsLastInput(nn.Module):
    """A float32 part fed channels-last input (the backbone: the padded image batch)."""

    def __init__(self, part: nn.Module):
        super().__init__()
        self.part = part

    def forward(self, x: torch.Tensor):
        """``part(x)`` on ``x`` [B, C, H, W] in channels-last memory order."""
        return self.part(x.contiguous(memory_format=torch.channels_last))


def fold_frozen_norms(module: nn.Module) -> nn.Module:
    """Fold every eval-mode batch norm that directly follows a bias-free convolution into it,
    in place (ResNet ``convK``/``bnK`` pairs, the stem, ``downsample = [conv, bn]``).

    ``bn(conv(x)) = conv'(x)`` with ``w' = w * g / sqrt(v + eps)``, ``b' = b - m * g /
    sqrt(v + eps)``: one pass over each feature map fewer; float32 rounding only.
    """
    for parent in list(module.modules()):
        children = dict(parent.named_children())
        pairs = [(c, f"bn{c[4:]}") for c in children if c.startswith("conv")]
        if isinstance(parent, nn.Sequential) and len(children) >= 2:
            pairs.append(("0", "1"))
        for conv_name, bn_name in pairs:
            conv, bn = children.get(conv_name), children.get(bn_name)
            norm = isinstance(bn, FrozenBatchNorm2d) or (type(bn) is nn.BatchNorm2d
                                                         and not bn.training)
            if not (norm and isinstance(conv, nn.Conv2d) and conv.bias is None
                    and bn.running_var.shape == (conv.out_channels,)):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                              conv.stride, conv.padding, conv.dilation, conv.groups, bias=True)
            fused.weight.data = (conv.weight * scale[:, None, None, None]).detach()
            fused.bias.data = (bn.bias - bn.running_mean * scale).detach()
            setattr(parent, conv_name, fused.to(conv.weight.device))
            setattr(parent, bn_name, nn.Identity())
    return module


def check_precision(precision: str) -> str:
    """``precision`` when it is one of :data:`PRECISIONS` (ConfigError otherwise)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def is_bf16(model: nn.Module) -> bool:
    """Whether :func:`to_bf16` converted ``model``."""
    heads = getattr(model, "roi_heads", None)
    return isinstance(getattr(heads, "mask_head", None), Bf16Part)


def to_bf16(model: nn.Module) -> nn.Module:
    """Convert a Mask R-CNN (torchvision ``GeneralizedRCNN``, native or detectron2-imported)
    to the fast path, in place: the backbone's norms folded into its convolutions
    (:func:`fold_frozen_norms`), 4-D weights channels-last, :data:`BF16_PARTS` wrapped in
    :class:`Bf16Part`. Returns ``model``; converting twice is a no-op.

    Convert a copy (``copy.deepcopy``) to keep the exact float32 model as well: channels-last
    weights alone change float32 kernels and so the last bits of the exact path.
    """
    if is_bf16(model):
        return model
    fold_frozen_norms(model.backbone)
    model.to(memory_format=torch.channels_last)
    model.backbone = ChannelsLastInput(model.backbone)
    heads = model.roi_heads
    heads.box_roi_pool = ThreadedPooler(heads.box_roi_pool)
    heads.mask_roi_pool = ThreadedPooler(heads.mask_roi_pool)
    for path, channels_last in BF16_PARTS:
        *parents, name = path.split(".")
        parent = model
        for attr in parents:
            parent = getattr(parent, attr)
        setattr(parent, name, Bf16Part(getattr(parent, name), channels_last))
    return model


@torch.no_grad()
def head_outputs(model: nn.Module, image: np.ndarray, image_size: int,
                 proposals: torch.Tensor | None = None, n_masks: int = 100
                 ) -> dict[str, torch.Tensor]:
    """The raw outputs of a Mask R-CNN on one gray image, to compare two precisions.

    Args:
        model: native or detectron2-imported Mask R-CNN in eval mode (fp32 or :func:`to_bf16`).
        image: uint8 ``[H, W]``.
        image_size: the member's ``model.image_size`` (native models resize to it).
        proposals: float ``[R, 4]`` boxes for the box and mask heads (default: the model's own
            RPN proposals); pass the fp32 model's to compare the heads on the same boxes.
        n_masks: the first proposals the mask head runs on.

    Returns:
        ``features`` (P2 ``[C, h, w]``), ``proposals`` ``[R, 4]``, ``class_probs`` ``[R, K + 1]``
        and ``mask_probs`` ``[min(R, n_masks), K + 1, 28, 28]``, all float32.
    """
    batch, features = image_features(model, [image], image_size)
    if proposals is None:
        proposals = model.rpn(batch, features)[0][0]
    heads = model.roi_heads
    pooled = heads.box_roi_pool(features, [proposals], batch.image_sizes)
    logits, _ = heads.box_predictor(heads.box_head(pooled))
    rois = proposals[:n_masks]
    masks = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, [rois],
                                                                     batch.image_sizes)))
    return {"features": next(iter(features.values()))[0].float(), "proposals": proposals,
            "class_probs": logits.float().softmax(-1), "mask_probs": masks.float().sigmoid()}


def head_agreement(exact: dict[str, torch.Tensor], fast: dict[str, torch.Tensor]
                   ) -> dict[str, float]:
    """How far the fast path's :func:`head_outputs` (run on the exact path's proposals) are
    from the exact path's: P2 max abs error / max abs value, max abs errors of the class and
    mask probabilities."""
    feature_error = (fast["features"] - exact["features"]).abs().max()
    return {"features_rel": float(feature_error / exact["features"].abs().max()),
            "class_probs": float((fast["class_probs"] - exact["class_probs"]).abs().max()),
            "mask_probs": float((fast["mask_probs"] - exact["mask_probs"]).abs().max())}


def instance_agreement(exact: Instances, fast: Instances, iou: float = 0.9) -> dict[str, float]:
    """How well the fast path's instances reproduce the exact path's on one image.

    Each exact instance, in score order, takes the unused fast instance of the same label with
    the highest box IoU above ``iou``.

    Returns:
        ``matched`` (fraction of the exact instances matched; 1.0 when both are empty),
        ``extra`` (fast instances left unmatched), ``score_error`` (max abs, matched),
        ``mask_iou`` (mean IoU of the ``>= 0.5`` masks, matched), ``n_exact``, ``n_fast``.
    """
    n, m = len(exact), len(fast)
    if n == 0 or m == 0:
        return {"matched": 1.0 if n == m else 0.0, "extra": float(m), "score_error": 0.0,
                "mask_iou": 1.0, "n_exact": float(n), "n_fast": float(m)}
    ious = box_iou(torch.from_numpy(exact.boxes), torch.from_numpy(fast.boxes)).numpy()
    ious[exact.labels[:, None] != fast.labels[None, :]] = 0
    used, pairs = np.zeros(m, bool), []
    for i in np.argsort(-exact.scores, kind="stable"):
        candidates = np.where(~used & (ious[i] > iou))[0]
        if len(candidates):
            j = candidates[np.argmax(ious[i, candidates])]
            used[j] = True
            pairs.append((i, j))
    errors = [abs(float(exact.scores[i]) - float(fast.scores[j])) for i, j in pairs]
    mask_ious = [_crop_iou(exact, i, fast, j) for i, j in pairs]
    return {"matched": len(pairs) / n, "extra": float(m - len(pairs)),
            "score_error": max(errors, default=0.0),
            "mask_iou": float(np.mean(mask_ious)) if mask_ious else 1.0,
            "n_exact": float(n), "n_fast": float(m)}


def _crop_iou(a: Instances, i: int, b: Instances, j: int) -> float:
    """IoU of mask ``i`` of ``a`` and mask ``j`` of ``b`` (``>= 0.5``), on their crops' union."""
    boxes = np.stack([a.crop_boxes[i], b.crop_boxes[j]])
    x0, y0 = boxes[:, :2].min(0)
    x1, y1 = boxes[:, 2:].max(0)
    canvases = []
    for inst, k in ((a, i), (b, j)):
        canvas = np.zeros((y1 - y0, x1 - x0), bool)
        cx0, cy0, cx1, cy1 = inst.crop_boxes[k]
        canvas[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = np.asarray(inst.masks[k]) >= 0.5
        canvases.append(canvas)
    union = (canvases[0] | canvases[1]).sum()
    return float((canvases[0] & canvases[1]).sum() / union) if union else 1.0
