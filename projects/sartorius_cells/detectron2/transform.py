"""detectron2's input pipeline as a torchvision ``GeneralizedRCNN`` transform.

``DefaultPredictor`` + ``GeneralizedRCNN.preprocess_image``: the uint8 image is resized with
``ResizeShortestEdge`` (PIL bilinear, antialiased when shrinking), turned into 0..255 floats in
the checkpoint's channel order (``INPUT.FORMAT``), normalised by ``(x - PIXEL_MEAN) /
PIXEL_STD`` and zero-padded at the bottom/right to a multiple of 32. Outputs are mapped back
to the original image by ``detector_postprocess`` (scale, clip, drop empty boxes, paste masks).
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models.detection.image_list import ImageList

from ensemblab.projects.sartorius_cells.detectron2.masks import paste_masks

SIZE_DIVISIBILITY = 32


def resized_shape(height: int, width: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """``ResizeShortestEdge.get_output_shape``: ``(new_h, new_w)`` of an image."""
    scale = short_edge / min(height, width)
    new_h, new_w = (short_edge, scale * width) if height < width else (scale * height, short_edge)
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [height, width, C] with PIL bilinear (detectron2's
    ``ResizeTransform`` on uint8 images)."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


class Detectron2Transform(nn.Module):
    """Resize, normalise and pad images the way detectron2 does; map outputs back.

    Args:
        pixel_mean, pixel_std: ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` (0..255 scale, in the
            checkpoint's channel order).
        input_format: ``INPUT.FORMAT``, ``BGR`` (most detectron2 checkpoints) or ``RGB``.
        min_size_test, max_size_test: ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``.
        min_size_train, max_size_train: ``INPUT.MIN_SIZE_TRAIN`` (one is drawn per image, as
            ``MIN_SIZE_TRAIN_SAMPLING: choice``) / ``MAX_SIZE_TRAIN``.
    """

    def __init__(self, pixel_mean: list[float], pixel_std: list[float], input_format: str,
                 min_size_test: int, max_size_test: int, min_size_train: list[int],
                 max_size_train: int):
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.input_format = input_format
        self.min_size_test, self.max_size_test = int(min_size_test), int(max_size_test)
        self.min_size_train = [int(s) for s in min_size_train]
        self.max_size_train = int(max_size_train)

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        """Batch images for the backbone.

        Args:
            images: float [3, H_i, W_i] RGB or [1, H_i, W_i] gray (read as 3 equal channels,
                as detectron2 reads a gray file) in [0, 1]; values are rounded to uint8.
            targets: training targets (``boxes [N, 4]``, ``masks [N, H, W]``), resized alike.

        Returns:
            ``(ImageList, targets)``: tensors [B, 3, Hp, Wp] normalised and zero-padded,
            ``image_sizes`` the resized (unpadded) sizes.
        """
        tensors, sizes, out_targets = [], [], []
        for i, image in enumerate(images):
            image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
            array = (image.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
            array = array.cpu().numpy()
            if self.input_format == "BGR":
                array = array[:, :, ::-1]
            short, longest = ((random.choice(self.min_size_train), self.max_size_train)
                              if self.training else (self.min_size_test, self.max_size_test))
            h, w = array.shape[:2]
            new_h, new_w = resized_shape(h, w, short, longest)
            resized = resize_uint8(np.ascontiguousarray(array), new_h, new_w)
            x = torch.from_numpy(resized.astype(np.float32).transpose(2, 0, 1).copy())
            x = x.to(image.device)
            tensors.append((x - self.pixel_mean) / self.pixel_std)
            sizes.append((new_h, new_w))
            if targets is not None:
                out_targets.append(_resize_target(targets[i], (h, w), (new_h, new_w)))
        return ImageList(_pad(tensors), sizes), (out_targets if targets is not None else None)

    def postprocess(self, result: list[dict], image_shapes: list[tuple[int, int]],
                    original_image_sizes: list[tuple[int, int]]) -> list[dict]:
        """detectron2's ``detector_postprocess`` on torchvision's detection dicts.

        Boxes are scaled to the original image and clipped; empty boxes are dropped; masks
        ``[N, 1, M, M]`` are pasted into ``[N, 1, H, W]`` probabilities (threshold 0.5 gives
        detectron2's binary masks).
        """
        out = []
        for det, (h, w), (oh, ow) in zip(result, image_shapes, original_image_sizes):
            boxes, keep = scale_boxes(det["boxes"], (h, w), (oh, ow))
            det = {k: v[keep] for k, v in det.items()}
            det["boxes"] = boxes[keep]
            if "masks" in det:
                det["masks"] = paste_masks(det["masks"][:, 0], det["boxes"], oh, ow)[:, None]
            out.append(det)
        return out


def scale_boxes(boxes: torch.Tensor, resized: tuple[int, int], original: tuple[int, int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes [N, 4] of the resized image -> (original-image boxes, clipped; bool [N] non-empty)."""
    (h, w), (oh, ow) = resized, original
    boxes = boxes.clone()
    boxes[:, 0::2] *= ow / w
    boxes[:, 1::2] *= oh / h
    boxes[:, 0::2] = boxes[:, 0::2].clamp(min=0, max=ow)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(min=0, max=oh)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, keep


def _pad(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Zero-pad [3, h_i, w_i] tensors to one [B, 3, Hp, Wp], Hp, Wp multiples of 32."""
    hp = -(-max(t.shape[1] for t in tensors) // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    wp = -(-max(t.shape[2] for t in tensors) // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    return torch.stack([F.pad(t, (0, wp - t.shape[2], 0, hp - t.shape[1]), value=0.0)
                        for t in tensors])


def _resize_target(target: dict, size: tuple[int, int], new_size: tuple[int, int]) -> dict:
    """Scale ``boxes`` and resize ``masks`` (nearest) of one training target."""
    target = dict(target)
    ratio_h, ratio_w = new_size[0] / size[0], new_size[1] / size[1]
    boxes = target["boxes"].clone()
    boxes[:, 0::2] *= ratio_w
    boxes[:, 1::2] *= ratio_h
    target["boxes"] = boxes
    if "masks" in target:
        masks = target["masks"]
        target["masks"] = (F.interpolate(masks[:, None].float(), size=new_size)[:, 0].byte()
                           if len(masks) else masks.new_zeros((0, *new_size)))
    return target
