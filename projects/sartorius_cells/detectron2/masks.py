"""Pasting MxM mask probabilities into the image as detectron2 does on the CPU.

detectron2's ``paste_masks_in_image`` (``layers/mask_ops.py``) samples each mask with
``grid_sample(align_corners=False)`` at the pixel centres ``(x + 0.5, y + 0.5)`` mapped into
the float box, only inside the integer region ``[floor(x0) - 1, ceil(x1) + 1)`` (clipped to
the image; pixels outside stay empty), and thresholds the samples at 0.5. The region is also
how masks are stored here: one crop per instance instead of N full-size canvases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def paste_region(box: torch.Tensor, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer region ``(x0, y0, x1, y1)`` that detectron2 pastes box [4] into."""
    x0 = int(torch.clamp(box[0].floor() - 1, min=0))
    y0 = int(torch.clamp(box[1].floor() - 1, min=0))
    x1 = int(torch.clamp(box[2].ceil() + 1, max=width))
    y1 = int(torch.clamp(box[3].ceil() + 1, max=height))
    return x0, y0, x1, y1


def paste_crop(mask: torch.Tensor, box: torch.Tensor, region: tuple[int, int, int, int]
               ) -> torch.Tensor:
    """Probabilities of one mask over its paste region.

    Args:
        mask: float [M, M] probabilities of the box.
        box: float [4] (x0, y0, x1, y1) in image pixels.
        region: integer region from :func:`paste_region`.

    Returns:
        float [y1 - y0, x1 - x0] bilinear samples (zero outside the box's footprint).
    """
    rx0, ry0, rx1, ry1 = region
    x0, y0, x1, y1 = box.float().split(1)
    img_y = torch.arange(ry0, ry1, dtype=torch.float32, device=mask.device) + 0.5
    img_x = torch.arange(rx0, rx1, dtype=torch.float32, device=mask.device) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1
    grid = torch.stack([img_x[None, :].expand(len(img_y), -1),
                        img_y[:, None].expand(-1, len(img_x))], dim=2)
    return F.grid_sample(mask[None, None].float(), grid[None], align_corners=False)[0, 0]


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int
                ) -> torch.Tensor:
    """Full-image probabilities float [N, H, W] (``>= 0.5`` is detectron2's bool mask).

    Args:
        masks: float [N, M, M] probabilities.
        boxes: float [N, 4] boxes in the output image's pixels (clipped, non-empty).
        height, width: output image size.
    """
    out = masks.new_zeros((len(masks), height, width), dtype=torch.float32)
    for i, (mask, box) in enumerate(zip(masks, boxes)):
        x0, y0, x1, y1 = region = paste_region(box, height, width)
        out[i, y0:y1, x0:x1] = paste_crop(mask, box, region)
    return out
