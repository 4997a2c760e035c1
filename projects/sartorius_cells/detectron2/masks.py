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


def paste_regions(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """int64 [N, 4]: :func:`paste_region` of every box [N, 4] at once."""
    boxes = boxes.float()
    return torch.stack([(boxes[:, 0].floor() - 1).clamp(min=0),
                        (boxes[:, 1].floor() - 1).clamp(min=0),
                        (boxes[:, 2].ceil() + 1).clamp(max=width),
                        (boxes[:, 3].ceil() + 1).clamp(max=height)], dim=1).to(torch.int64)


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


def paste_crops(masks: torch.Tensor, boxes: torch.Tensor, regions: torch.Tensor,
                min_size: float = 0.0, max_pixels: int = 1 << 16) -> list[torch.Tensor]:
    """:func:`paste_crop` of every mask at once: one ``grid_sample`` per group of masks.

    Masks are taken in order of region size and grouped so that a group's padded canvas
    (masks x tallest x widest region) stays under ``max_pixels``; each sample is computed
    with the same float32 operations as :func:`paste_crop`, so the crops are bit-identical.

    Args:
        masks: float [N, M, M] probabilities.
        boxes: float [N, 4] (x0, y0, x1, y1) in image pixels.
        regions: int [N, 4] regions to sample (:func:`paste_region`, or any integer boxes).
        min_size: box sides below this are taken as this (0: none).
        max_pixels: padded canvas pixels per group.

    Returns:
        N float32 tensors [y1 - y0, x1 - x0], one per region.
    """
    regions = torch.as_tensor(regions, dtype=torch.int64).reshape(-1, 4)
    boxes = boxes.float().cpu()
    heights, widths = regions[:, 3] - regions[:, 1], regions[:, 2] - regions[:, 0]
    order = torch.argsort(heights * widths, stable=True)
    out: list[torch.Tensor | None] = [None] * len(order)
    start = 0
    while start < len(order):
        rest = order[start:]
        # canvas of the first k masks from here: k x running max height x running max width
        canvas = (torch.arange(1, len(rest) + 1) * heights[rest].cummax(0).values
                  * widths[rest].cummax(0).values)
        end = start + max(1, int((canvas <= max_pixels).sum()))
        group = order[start:end]
        hmax, wmax = int(heights[group].max()), int(widths[group].max())
        box, region = boxes[group], regions[group].float()
        size_x = (box[:, 2] - box[:, 0]).clamp_min(min_size)[:, None]
        size_y = (box[:, 3] - box[:, 1]).clamp_min(min_size)[:, None]
        img_x = region[:, :1] + torch.arange(wmax, dtype=torch.float32) + 0.5
        img_y = region[:, 1:2] + torch.arange(hmax, dtype=torch.float32) + 0.5
        img_x = (img_x - box[:, :1]) / size_x * 2 - 1
        img_y = (img_y - box[:, 1:2]) / size_y * 2 - 1
        grid = torch.stack([img_x[:, None, :].expand(-1, hmax, -1),
                            img_y[:, :, None].expand(-1, -1, wmax)], dim=3)
        sampled = F.grid_sample(masks[group][:, None].float().cpu(), grid,
                                align_corners=False)[:, 0]
        for k, i in enumerate(group.tolist()):
            out[i] = sampled[k, :int(heights[i]), :int(widths[i])]
        start = end
    return out


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
