"""The Mask R-CNN network: torchvision Mask R-CNN heads on a ResNet or an ensemblab encoder FPN.

Paper set-up 1 (Mask R-CNN + NMS) uses Mask R-CNN with a ResNet-50 FPN. Cells are small and
dense (up to ~800 per 520x704 image), so anchors, image size and the per-image detection and
proposal budgets are arguments (torchvision's defaults, 32-512 px anchors and 100 detections,
miss most cells). Backbones:

- ``resnet18 | resnet34 | resnet50``: torchvision ResNet FPN, random init unless
  ``backbone_weights`` names a local file; ``resnet50`` with ``v2_heads`` is the architecture of
  torchvision's ``maskrcnn_resnet50_fpn_v2`` (same modules and state-dict keys: He et al. 2017
  with the Li et al. 2021 "v2" recipe, BatchNorm in the FPN and heads, 2-conv RPN head, 4conv1fc
  box head); gray images are repeated to the 3 input channels.
- any :func:`ensemblab.backbones.create_encoder` name (``efficientnet_lite0/1/2`` with their
  packaged ImageNet weights): :func:`ensemblab.backbones.fpn_backbone` with ``in_chans=1``. The
  first conv is the RGB conv summed over its input channels and EfficientNet-Lite normalises
  every channel alike, so a gray image gives exactly the features of the same image repeated to
  RGB, at a third of the stem's input cost.

Prediction never pastes masks onto full-size canvases (torchvision's postprocess does, which
needs N x H x W floats): each 28x28 mask is resampled onto its own integer box only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
    TwoMLPHead,
)
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from ensemblab.backbones import fpn_backbone
from ensemblab.engine.checkpoints import load_checkpoint
from ensemblab.ensemble.crops import integer_boxes, resize_crops_to_boxes
from ensemblab.errors import ConfigError, DataError
from ensemblab.projects.sartorius_cells.detectron2.masks import paste_crops
from ensemblab.projects.sartorius_cells.detectron2.model import (
    is_detectron2_model,
    predict_detectron2,
)
from ensemblab.projects.sartorius_cells.structures import Instances

_RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
INPUT_NORMS = ("fixed", "image")
MASK_LOGIT_INITS = ("small", "kaiming")


def build_maskrcnn(num_classes: int, backbone: str = "resnet50", pretrained: bool = False,
                   trainable_stages: int | None = None, v2_heads: bool = True,
                   image_size: int = 704, anchor_sizes=(8, 16, 32, 64, 128),
                   aspect_ratios=(0.5, 1.0, 2.0), mask_head_layers: int = 4,
                   mask_head_channels: int = 256, mask_resolution: int = 28,
                   box_head_dim: int = 1024,
                   rpn_pre_nms_top_n_train: int = 2000, rpn_post_nms_top_n_train: int = 2000,
                   rpn_pre_nms_top_n_test: int = 3000, rpn_post_nms_top_n_test: int = 3000,
                   box_batch_size_per_image: int = 512, box_detections_per_img: int = 1000,
                   box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5,
                   weights: str | None = None, backbone_weights: str | None = None,
                   input_norm: str = "fixed", mask_logit_init: str = "small") -> MaskRCNN:
    """A torchvision Mask R-CNN for grayscale cell images.

    Args:
        num_classes: cell types + 1 (background).
        backbone: ``resnet18 | resnet34 | resnet50`` (torchvision ResNet FPN on C2-C5) or an
            ensemblab encoder name such as ``efficientnet_lite0`` (encoder FPN, strides 4-32).
        pretrained: load the encoder's packaged weights (ensemblab encoders only; ResNets take
            ``backbone_weights``).
        trainable_stages: train only the encoder's last N stages (ensemblab encoders; ``None``
            trains all).
        v2_heads: torchvision's v2 heads (BatchNorm, 2-conv RPN, 4conv1fc box head); with
            ``resnet50`` this is ``maskrcnn_resnet50_fpn_v2``.
        image_size: longer image side the model sees (inputs are resized to it beforehand).
        anchor_sizes: per FPN level (P2..P6) one anchor size, or a list of sizes (the same
            number at every level, e.g. two per octave), in model-input pixels.
        aspect_ratios: anchor aspect ratios, shared by all levels.
        mask_head_layers: conv layers of the mask head (torchvision: 4).
        mask_head_channels: their width (torchvision: 256); the mask head runs on every
            detection, so on CPU with 1000 detections it dominates inference.
        box_head_dim: width of the box head's fully connected layer(s) (torchvision: 1024;
            its 12544 x 1024 first layer is a third of a CPU training step).
        mask_resolution: side of the predicted masks, 28 (torchvision, detectron2: RoIAlign
            14 x 14, one 2x deconvolution) or 56 (RoIAlign 28 x 28: finer masks for thin cell
            processes at 4x the mask head's cost).
        rpn_*_top_n_*: proposal budgets before/after RPN NMS.
        box_batch_size_per_image: RoIs sampled per image for the box/mask losses.
        box_detections_per_img: detections kept per image (dense images need 1000+).
        box_score_thresh, box_nms_thresh: torchvision's own per-class filtering.
        weights: local checkpoint (torchvision state dict or Lightning ``.ckpt``) to start
            from; tensors whose shape differs (e.g. class heads) are skipped.
        backbone_weights: local weights of the backbone (ResNet body state dict, or an
            encoder file in timm layout).
        input_norm: ``fixed`` (one normalisation for every image) or ``image`` (each image
            standardised by its own mean and standard deviation first; low-contrast phase
            frames, whose cells span a few dozen grey levels, then reach the network at full
            scale); see :class:`CellImageTransform`.
        mask_logit_init: ``small`` (detectron2: normal std 0.001, zero bias; the mask loss
            starts at ~log 2) or ``kaiming`` (torchvision's own; from scratch the first mask
            losses are 5-20). Loaded ``weights`` override either.
    """
    if input_norm not in INPUT_NORMS:
        raise ConfigError(f"model.input_norm {input_norm!r}: expected one of {INPUT_NORMS}")
    if mask_logit_init not in MASK_LOGIT_INITS:
        raise ConfigError(f"model.mask_logit_init {mask_logit_init!r}: expected 'small' or "
                          "'kaiming'")
    if mask_resolution not in (28, 56):
        raise ConfigError(f"model.mask_resolution {mask_resolution!r}: expected 28 or 56")
    level_sizes = anchor_levels(anchor_sizes)
    anchors = AnchorGenerator(level_sizes,
                              (tuple(float(a) for a in aspect_ratios),) * len(level_sizes))
    norm = nn.BatchNorm2d if v2_heads else None
    if backbone in _RESNETS:
        fpn = _resnet_fpn_extractor(_RESNETS[backbone](weights=None), 5, norm_layer=norm)
        if backbone_weights:
            _load_partial(fpn.body, backbone_weights)
        # The ResNet takes 3 channels and normalisation from the transform.
        transform = CellImageTransform(image_size, channels=3, per_image=input_norm == "image",
                                       mean=0.5, std=0.25)
    else:
        fpn = fpn_backbone(backbone, pretrained=pretrained, in_chans=1, out_channels=256,
                           weights=backbone_weights, trainable_stages=trainable_stages)
        # The encoder normalises its own [0, 1] input.
        transform = CellImageTransform(image_size, channels=1, per_image=input_norm == "image",
                                       mean=0.0, std=1.0)
    extra = {}
    if v2_heads:
        extra["box_head"] = FastRCNNConvFCHead((256, 7, 7), [256] * 4, [box_head_dim],
                                               norm_layer=norm)
    else:
        extra["box_head"] = TwoMLPHead(256 * 7 * 7, box_head_dim)
    # Explicit predictors (so the mask head width can change) mean num_classes=None here.
    model = MaskRCNN(fpn, num_classes=None, min_size=image_size, max_size=image_size,
                     rpn_anchor_generator=anchors,
                     mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"],
                                                      mask_resolution // 2, 2),
                     box_predictor=FastRCNNPredictor(box_head_dim, num_classes),
                     rpn_head=RPNHead(256, len(level_sizes[0]) * len(aspect_ratios),
                                      conv_depth=2 if v2_heads else 1),
                     mask_head=MaskRCNNHeads(256, [mask_head_channels] * mask_head_layers, 1,
                                             norm_layer=norm),
                     mask_predictor=MaskRCNNPredictor(mask_head_channels, mask_head_channels,
                                                      num_classes),
                     rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
                     rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
                     rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
                     rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
                     box_batch_size_per_image=box_batch_size_per_image,
                     box_detections_per_img=box_detections_per_img,
                     box_score_thresh=box_score_thresh, box_nms_thresh=box_nms_thresh, **extra)
    model.transform = transform
    if mask_logit_init == "small":  # detectron2's init of the mask logits layer
        nn.init.normal_(model.roi_heads.mask_predictor.mask_fcn_logits.weight, std=0.001)
        nn.init.zeros_(model.roi_heads.mask_predictor.mask_fcn_logits.bias)
    if weights:
        _load_partial(model, weights)
    return model


def anchor_levels(anchor_sizes) -> tuple[tuple[int, ...], ...]:
    """``model.anchor_sizes`` as torchvision's per-level tuples of integer sizes.

    Raises:
        ConfigError: a level with no size, or levels with different numbers of sizes (the RPN
            head predicts the same anchors at every level).
    """
    levels = tuple(tuple(int(round(float(v))) for v in (s if isinstance(s, (list, tuple))
                                                        else [s])) for s in anchor_sizes)
    if not levels or any(not level for level in levels) or len({len(x) for x in levels}) > 1:
        raise ConfigError(f"model.anchor_sizes {list(anchor_sizes)!r}: one size or the same "
                          "number of sizes per FPN level")
    return levels


class CellImageTransform(GeneralizedRCNNTransform):
    """torchvision's resize/batch transform for gray cell images ``[1, H, W]`` in [0, 1].

    ``normalize`` maps each image to the backbone's input: with ``per_image`` it is first
    contrast-normalised to mean 0.5 and standard deviation 0.25 (a well-exposed photograph's
    statistics: ``0.5 + 0.25 (x - mean(x)) / max(std(x), 1/255)``), in training and inference
    alike; then ``(x - mean) / std``, repeated to ``channels``.

    Args:
        size: the longer image side (min and max size of the resize).
        channels: backbone input channels (3 for torchvision ResNets, 1 for encoders).
        per_image: standardise each image by its own statistics first.
        mean, std: the fixed normalisation (0 and 1 when the backbone normalises itself).
    """

    def __init__(self, size: int, channels: int, per_image: bool, mean: float, std: float):
        super().__init__(size, size, image_mean=[mean] * channels, image_std=[std] * channels)
        self.channels, self.per_image = channels, per_image

    def resize(self, image: torch.Tensor, target: dict | None = None):
        """No resize: images arrive at the model's scale already.

        Whole images are resized to a longer side of ``size`` before the model
        (:func:`resize_long_side`, :func:`resize_pair`), and training windows are cut from
        such images. torchvision's own resize would scale every input to ``size``, so a
        256 px training window of a 512 px image would be seen 2x enlarged (cells twice their
        inference size, and a 4x dearer step).
        """
        return image, target

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` float ``[1, H, W]`` in [0, 1] -> ``[channels, H, W]``."""
        if not image.is_floating_point():
            raise TypeError(f"expected a float image in [0, 1], got {image.dtype}")
        if self.per_image:
            image = 0.5 + 0.25 * (image - image.mean()) / image.std().clamp_min(1 / 255)
        image = (image - self.image_mean[0]) / self.image_std[0]
        return image.expand(self.channels, -1, -1)


def _load_partial(module: nn.Module, path: str) -> None:
    """Load matching tensors from a local state dict or Lightning checkpoint."""
    if not Path(path).is_file():
        raise DataError(path, "weights file not found (weights load only from a local path)")
    state = load_checkpoint(path, required=())
    state = state.get("state_dict", state.get("model", state))
    state = {k.removeprefix("model."): v for k, v in state.items()}
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise DataError(path, "no tensor in this file matches the model")
    module.load_state_dict(usable, strict=False)


def resize_long_side(image: np.ndarray, size: int) -> np.ndarray:
    """uint8[H, W] -> uint8[h, w] with ``max(h, w) == size`` (bilinear)."""
    h, w = image.shape
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(new, Image.BILINEAR))


def _paste_crops(masks: torch.Tensor, boxes: torch.Tensor, crop_boxes: np.ndarray
                 ) -> list[np.ndarray]:
    """Resample each mask [M, M] over its float box onto the pixels of its integer box.

    Pixel (x, y) of the image has centre (x + 0.5, y + 0.5); it samples the mask at the
    box-normalised position, as detectron2's ``paste_masks_in_image`` does (grid_sample,
    batched over masks of similar size: :func:`..detectron2.masks.paste_crops`; box sides under
    1e-3 px count as 1e-3). Crops are float16 probabilities (1000+ crops stay small).
    """
    crops = paste_crops(masks, boxes, torch.from_numpy(np.asarray(crop_boxes)), min_size=1e-3)
    return [crop.half().numpy() for crop in crops]


def image_features(model: MaskRCNN, images: list[np.ndarray], image_size: int,
                   device: torch.device | str = "cpu"):
    """``(ImageList, FPN features)`` of uint8 gray images: resized to ``image_size``, through
    the model's own transform (normalisation, batching) and backbone."""
    if not is_detectron2_model(model):  # detectron2's transform resizes the original itself
        images = [resize_long_side(im, image_size) for im in images]
    tensors = [torch.from_numpy(im.copy()).float().div_(255)[None].to(device) for im in images]
    batch, _ = model.transform(tensors)
    return batch, model.backbone(batch.tensors)


@torch.no_grad()
def predict_features(model: MaskRCNN, images: list[np.ndarray], image_size: int,
                     device: torch.device | str = "cpu"):
    """:func:`image_features` as :func:`predict_images` computes them (no gradients; fp16
    autocast on CUDA): what both it and :func:`window_probs` accept as ``features``, so one
    backbone pass serves an image's detections and its masks on other windows."""
    device = torch.device(device)
    model.eval().to(device)
    with torch.autocast(device.type, enabled=device.type == "cuda"):
        return image_features(model, images, image_size, device)


@torch.no_grad()
def mask_probabilities(model: MaskRCNN, features: dict[str, torch.Tensor], boxes: torch.Tensor,
                       labels: torch.Tensor, image_size: tuple[int, int], chunk: int = 200
                       ) -> torch.Tensor:
    """Mask-head probabilities float[N, M, M] of each box's class, ``chunk`` boxes at a time.

    The same computation as torchvision's mask branch at inference (RoIAlign -> mask head ->
    predictor -> sigmoid of the labelled class); only the activations of one chunk are alive
    at once, so 1000+ detections do not hold 1000 x 4 x 256 x 14 x 14 floats.
    """
    heads = model.roi_heads
    parts = []
    for start in range(0, len(boxes), max(1, chunk)) or [0]:  # [0]: empty -> [0, M, M]
        rois = boxes[start:start + chunk]
        x = heads.mask_roi_pool(features, [rois], [image_size])
        logits = heads.mask_predictor(heads.mask_head(x))
        idx = torch.arange(len(rois), device=logits.device)
        parts.append(logits[idx, labels[start:start + chunk]].float().sigmoid())
    return torch.cat(parts)


@torch.no_grad()
def predict_images(model: MaskRCNN, images: list[np.ndarray], image_size: int,
                   device: torch.device | str = "cpu", chunk: int = 200,
                   features=None) -> list[Instances]:
    """Raw detections (before post-processing) of grayscale images, in their own pixels.

    Args:
        model: a Mask R-CNN from :func:`build_maskrcnn`.
        images: uint8[H_i, W_i] grayscale images of any size (a detectron2-imported model
            also takes [H_i, W_i, 3] RGB, as :func:`..data.image_reader` reads for it).
        image_size: the longer side the model was trained at.
        device: where to run; AMP (fp16 autocast) is used on CUDA.
        chunk: detections per mask-head call (bounds the activations on dense images).
        features: :func:`predict_features` of ``images`` when the caller has them (not for
            a detectron2-imported model).

    Returns:
        One :class:`Instances` per image with float16 probability crops on integer boxes.
    """
    if is_detectron2_model(model):  # detectron2's resize, detection rule and mask pasting
        return predict_detectron2(model, images, device, chunk)
    device = torch.device(device)
    model.eval().to(device)
    with torch.autocast(device.type, enabled=device.type == "cuda"):
        batch, features = features or image_features(model, images, image_size, device)
        proposals, _ = model.rpn(batch, features)
        heads = model.roi_heads
        pool, heads.mask_roi_pool = heads.mask_roi_pool, None  # boxes only; masks below
        try:
            detections, _ = heads(features, proposals, batch.image_sizes)
        finally:
            heads.mask_roi_pool = pool
    out = []
    for index, (image, det, (th, tw)) in enumerate(zip(images, detections, batch.image_sizes)):
        h, w = image.shape
        masks = mask_probabilities(model, {k: v[index:index + 1] for k, v in features.items()},
                                   det["boxes"], det["labels"], (th, tw), chunk)
        scale = torch.tensor([w / tw, h / th, w / tw, h / th], device=det["boxes"].device)
        boxes = (det["boxes"].float() * scale).cpu()
        crop_boxes = integer_boxes(boxes.numpy(), h, w)
        crops = _paste_crops(masks, boxes, crop_boxes)
        out.append(Instances(boxes.numpy().astype(np.float32),
                             det["scores"].float().cpu().numpy(),
                             det["labels"].cpu().numpy().astype(np.int64), crops, crop_boxes,
                             h, w))
    return out


@torch.no_grad()
def window_probs(model: MaskRCNN, image: np.ndarray, windows: np.ndarray, labels: np.ndarray,
                 image_size: int, device: torch.device | str = "cpu", chunk: int = 256,
                 features=None) -> list[np.ndarray]:
    """The mask head run on given windows (not on the model's own detections).

    The image goes through the model's own resize and transform; the windows are scaled into
    that frame, RoIAligned from the FPN (``roi_heads.mask_roi_pool``), and the mask head's
    probability of each window's class is resampled back onto the window's pixels.

    Args:
        model: a Mask R-CNN from :func:`build_maskrcnn` in eval mode.
        image: uint8 ``[H, W]``.
        windows: int64 ``[N, 4]`` (x0, y0, x1, y1) image pixels.
        labels: int ``[N]`` 1-based classes (clamped to the model's classes).
        image_size: the longer side the model was trained at.
        device: where the model lives.
        chunk: windows per mask-head call.
        features: :func:`predict_features` of ``[image]`` when the caller has them.

    Returns:
        float32 crops ``[y1 - y0, x1 - x0]``, one per window.
    """
    if len(windows) == 0:
        return []
    h, w = image.shape
    batch, features = features or image_features(model, [image], image_size, device)
    th, tw = batch.image_sizes[0]
    rois = torch.as_tensor(windows, dtype=torch.float32, device=device) * torch.tensor(
        [tw / w, th / h, tw / w, th / h], device=device)
    n_classes = model.roi_heads.mask_predictor.mask_fcn_logits.out_channels
    cls = torch.as_tensor(labels, device=device).clamp(max=n_classes - 1)
    probs = mask_probabilities(model, features, rois, cls, (th, tw), chunk)
    return resize_crops_to_boxes(probs.cpu(), windows)
