"""Overlapping tiles of large images, and stitching per-tile predictions back.

Every box is ``tile x tile``. Along an axis longer than the tile, boxes start every
``tile - overlap`` pixels and the last one is shifted back to end exactly at the image edge, so
no tile needs padding; along an axis shorter than the tile there is one box that runs past the
edge and :func:`extract_tiles` pads it. :func:`stitch_tiles` accumulates weighted predictions
and divides by the accumulated weight; the weight is a separable ramp that is small (but
positive) at tile borders, where predictions are least reliable, and 1 inside, so seams fade
smoothly. Because the result is a weighted *average*, tiles that equal their input crops are
reconstructed exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _axis_starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    n = -(-(size - tile) // stride) + 1  # ceil division
    return sorted({min(i * stride, size - tile) for i in range(n)})


def tile_boxes(height: int, width: int, tile: int, overlap: int = 0
               ) -> list[tuple[int, int, int, int]]:
    """Boxes covering an HxW image with ``tile x tile`` tiles overlapping by ``overlap``.

    Args:
        height: image height H.
        width: image width W.
        tile: tile side in pixels.
        overlap: minimum overlap between neighbouring tiles, 0 <= overlap < tile.

    Returns:
        [(y0, x0, y1, x1)] with ``y1 - y0 == x1 - x0 == tile``, row-major order; ``y1 > H``
        (or ``x1 > W``) only when the image is smaller than the tile along that axis.
    """
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > 0 and 0 <= overlap < tile, got {tile=}, {overlap=}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    stride = tile - overlap
    return [(y, x, y + tile, x + tile) for y in _axis_starts(height, tile, stride)
            for x in _axis_starts(width, tile, stride)]


def extract_tiles(image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]],
                  pad_mode: str = "constant") -> list[np.ndarray]:
    """Cut tiles out of an image, padding those that run past its bottom/right edge.

    Args:
        image: [H, W, ...] array (trailing channel axes are kept).
        boxes: from :func:`tile_boxes`.
        pad_mode: ``numpy.pad`` mode for tiles past the edge (``"constant"`` = zeros,
            ``"reflect"``, ``"edge"``).

    Returns:
        list of [tile, tile, ...] arrays (copies where padded, views otherwise).
    """
    h, w = image.shape[:2]
    tiles = []
    for y0, x0, y1, x1 in boxes:
        crop = image[y0:min(y1, h), x0:min(x1, w)]
        pad_y, pad_x = y1 - y0 - crop.shape[0], x1 - x0 - crop.shape[1]
        if pad_y or pad_x:
            widths = [(0, pad_y), (0, pad_x)] + [(0, 0)] * (image.ndim - 2)
            mode = "edge" if pad_mode == "reflect" and min(crop.shape[:2]) < 2 else pad_mode
            crop = np.pad(crop, widths, mode=mode)
        tiles.append(crop)
    return tiles


def blend_weight(tile: int, overlap: int) -> np.ndarray:
    """Separable blending window of one tile: [tile, tile] float64 in (0, 1].

    Along each axis the weight rises linearly over the first ``overlap // 2 + 1`` pixels from
    the border, is 1 in the middle, and never reaches 0 (so every pixel has weight).
    """
    ramp_len = overlap // 2 + 1
    dist = np.minimum(np.arange(tile), np.arange(tile)[::-1]) + 1
    ramp = np.minimum(dist / ramp_len, 1.0)
    return np.outer(ramp, ramp)


def stitch_tiles(tiles, boxes: Sequence[tuple[int, int, int, int]], height: int, width: int,
                 overlap: int | None = None) -> np.ndarray:
    """Average per-tile predictions back into one image.

    Args:
        tiles: [N, C, t, t] (or [N, t, t]) float predictions, e.g. class probabilities, one per
            box; a torch tensor on CPU is accepted too.
        boxes: the N boxes the tiles came from (:func:`tile_boxes`).
        height: image height H.
        width: image width W.
        overlap: blending ramp width; defaults to the largest overlap between the boxes.

    Returns:
        [C, H, W] (or [H, W]) float32: per pixel, the blend-weighted mean of every tile
        covering it; parts of tiles beyond the image (padding) are dropped.
    """
    arr = np.asarray(tiles, dtype=np.float32)
    squeeze = arr.ndim == 3
    if squeeze:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[0] != len(boxes) or arr.shape[2] != arr.shape[3]:
        raise ValueError(f"tiles must be [N, C, t, t] with N = {len(boxes)} boxes, "
                         f"got {np.shape(tiles)}")
    t = arr.shape[-1]
    if any(y1 - y0 != t or x1 - x0 != t for y0, x0, y1, x1 in boxes):
        raise ValueError(f"every box must be {t}x{t} to match the tiles")
    if overlap is None:
        overlap = _max_overlap(boxes, t)
    weight = blend_weight(t, overlap).astype(np.float32)
    acc = np.zeros((arr.shape[1], height, width), dtype=np.float32)
    norm = np.zeros((height, width), dtype=np.float32)
    for tile_pred, (y0, x0, y1, x1) in zip(arr, boxes):
        hh, ww = min(y1, height) - y0, min(x1, width) - x0
        acc[:, y0:y0 + hh, x0:x0 + ww] += tile_pred[:, :hh, :ww] * weight[:hh, :ww]
        norm[y0:y0 + hh, x0:x0 + ww] += weight[:hh, :ww]
    if (norm == 0).any():
        raise ValueError("the boxes do not cover the whole image")
    out = acc / norm
    return out[0] if squeeze else out


def _max_overlap(boxes: Sequence[tuple[int, int, int, int]], tile: int) -> int:
    """Largest overlap between neighbouring tile starts along either axis."""
    best = 0
    for axis in (0, 1):
        starts = np.unique([b[axis] for b in boxes])
        if starts.size > 1:
            best = max(best, int(tile - np.diff(starts).min()))
    return max(best, 0)
