"""Box crops: RoIAlign a box to a fixed size and paste a crop back exactly where it came from.

The ensemble keeps every instance as a probability crop on an *integer* box (``x0, y0, x1, y1``,
exclusive ends) instead of a full-size map, so an image with ~800 cells never holds 800
full-size arrays. The crop of a box and its paste-back are inverse samplings of the same grid:
:func:`crop_boxes` samples pixel centres with ``roi_align(aligned=True)`` and
:func:`resize_crops_to_boxes` samples the crop back with half-pixel-centred bilinear
interpolation, so a box whose size equals the crop size comes back bit-exact (the winning
Sartorius solutions' "RoIAlign crop, paste back" step).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


def integer_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Round float boxes outwards to integer pixel boxes inside the image.

    Args:
        boxes: float ``[N, 4]`` (x0, y0, x1, y1) in pixels.
        height: image height H.
        width: image width W.

    Returns:
        int64 ``[N, 4]`` with ``0 <= x0 < x1 <= W`` and ``0 <= y0 < y1 <= H`` (at least 1 px).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0 = np.clip(np.floor(b[:, 0]), 0, width - 1)
    y0 = np.clip(np.floor(b[:, 1]), 0, height - 1)
    x1 = np.clip(np.ceil(b[:, 2]), x0 + 1, width)
    y1 = np.clip(np.ceil(b[:, 3]), y0 + 1, height)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def expand_boxes(boxes: np.ndarray, ratio: float = 0.15, min_pad: float = 2.0) -> np.ndarray:
    """Grow boxes by ``ratio`` of their size (at least ``min_pad`` px) on every side.

    Used for the UPerNet box-crop mode, which needs context around a cell.

    Args:
        boxes: float ``[N, 4]`` (x0, y0, x1, y1).
        ratio: margin per side as a fraction of the box width / height.
        min_pad: minimum margin in pixels.

    Returns:
        float32 ``[N, 4]`` (not clipped; use :func:`integer_boxes`).
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    pad_x = np.maximum((b[:, 2] - b[:, 0]) * ratio, min_pad)
    pad_y = np.maximum((b[:, 3] - b[:, 1]) * ratio, min_pad)
    return np.stack([b[:, 0] - pad_x, b[:, 1] - pad_y, b[:, 2] + pad_x, b[:, 3] + pad_y], 1)


def crop_boxes(image: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """RoIAlign every box of one image to ``size x size``.

    Args:
        image: float ``[C, H, W]``.
        boxes: ``[N, 4]`` integer or float boxes (x0, y0, x1, y1), exclusive ends.
        size: output side S.

    Returns:
        ``[N, C, S, S]``; for a box of exactly ``S x S`` pixels, the pixels themselves.
    """
    rois = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                           device=image.device)
    if rois.shape[0] == 0:
        return image.new_zeros((0, image.shape[0], size, size))
    rois = torch.cat([rois.new_zeros((rois.shape[0], 1)), rois], dim=1)
    # aligned=True: box edges at pixel borders; sampling_ratio=1 puts one sample at each bin
    # centre, which for a box of S pixels is exactly each pixel centre.
    return roi_align(image[None], rois, output_size=(size, size), spatial_scale=1.0,
                     sampling_ratio=1, aligned=True)


def resize_crops_to_boxes(crops: torch.Tensor | np.ndarray,
                          int_boxes: np.ndarray) -> list[np.ndarray]:
    """Resample ``[N, S, S]`` crops onto their integer boxes (the inverse of :func:`crop_boxes`).

    Args:
        crops: float ``[N, S, S]`` (e.g. mask probabilities of each box).
        int_boxes: int ``[N, 4]`` boxes from :func:`integer_boxes`.

    Returns:
        List of N float32 arrays of shape ``[y1 - y0, x1 - x0]``.
    """
    crops = torch.as_tensor(crops, dtype=torch.float32)
    out = []
    for crop, (x0, y0, x1, y1) in zip(crops, np.asarray(int_boxes).reshape(-1, 4)):
        h, w = int(y1 - y0), int(x1 - x0)
        if crop.shape == (h, w):
            out.append(crop.cpu().numpy().copy())
            continue
        # align_corners=False samples at half-pixel centres: the same grid convention as
        # roi_align(aligned=True), so crop -> paste is a round trip up to interpolation.
        up = F.interpolate(crop[None, None], size=(h, w), mode="bilinear", align_corners=False)
        out.append(up[0, 0].cpu().numpy())
    return out


def paste_crop(canvas: np.ndarray, crop: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Write ``crop`` into ``canvas[y0:y1, x0:x1]`` in place and return the canvas.

    Args:
        canvas: ``[H, W]`` array.
        crop: ``[y1 - y0, x1 - x0]`` array.
        box: integer (x0, y0, x1, y1).
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    canvas[y0:y1, x0:x1] = crop
    return canvas


def window_of(crop: np.ndarray, box: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Re-express a crop on ``box`` as a crop on a larger ``window`` (zeros outside ``box``).

    Args:
        crop: ``[y1 - y0, x1 - x0]`` values on ``box``.
        box: integer (x0, y0, x1, y1) inside ``window``.
        window: integer (x0, y0, x1, y1).

    Returns:
        float32 ``[wy1 - wy0, wx1 - wx0]``.
    """
    wx0, wy0, wx1, wy1 = (int(v) for v in window)
    x0, y0, x1, y1 = (int(v) for v in box)
    out = np.zeros((wy1 - wy0, wx1 - wx0), dtype=np.float32)
    # Clip the box to the window, then take the matching part of the crop.
    cx0, cy0 = max(x0, wx0), max(y0, wy0)
    cx1, cy1 = min(x1, wx1), min(y1, wy1)
    if cx1 > cx0 and cy1 > cy0:
        out[cy0 - wy0:cy1 - wy0, cx0 - wx0:cx1 - wx0] = crop[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    return out
