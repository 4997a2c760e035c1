"""Tiling and stitching: box layout, padding, exact reconstruction, overlap averaging."""

from __future__ import annotations

import numpy as np
import pytest

from ensemblab.data.tiling import blend_weight, extract_tiles, stitch_tiles, tile_boxes


def test_tile_boxes_layout():
    # 100 px with 64-px tiles and 16 overlap: starts 0, 48 -> shifted back to 36 (ends at 100)
    boxes = tile_boxes(100, 64, tile=64, overlap=16)
    assert boxes == [(0, 0, 64, 64), (36, 0, 100, 64)]
    assert tile_boxes(128, 128, 64) == [(0, 0, 64, 64), (0, 64, 64, 128),
                                        (64, 0, 128, 64), (64, 64, 128, 128)]
    assert tile_boxes(10, 20, 32, 8) == [(0, 0, 32, 32)]  # smaller than a tile: padded
    with pytest.raises(ValueError):
        tile_boxes(10, 10, 8, 8)


@pytest.mark.parametrize("h, w, tile, overlap", [(37, 53, 16, 4), (64, 64, 64, 0),
                                                  (10, 7, 16, 4), (20, 50, 16, 0)])
def test_round_trip_reconstructs_image(h, w, tile, overlap):
    rng = np.random.default_rng(h * w)
    image = rng.random((h, w, 3)).astype(np.float32)
    boxes = tile_boxes(h, w, tile, overlap)
    tiles = extract_tiles(image, boxes)
    assert all(t.shape == (tile, tile, 3) for t in tiles)
    preds = np.stack([t.transpose(2, 0, 1) for t in tiles])  # [N, C, t, t]
    out = stitch_tiles(preds, boxes, h, w)
    assert out.shape == (3, h, w)
    np.testing.assert_allclose(out, image.transpose(2, 0, 1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stitch_tiles(preds[:, 0], boxes, h, w), image[..., 0],
                               rtol=1e-6, atol=1e-6)


def test_padding_modes():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (zero,) = extract_tiles(image, [(0, 0, 5, 5)])
    assert zero.shape == (5, 5) and zero[3:].sum() == 0 and zero[:3, :4].tolist() == image.tolist()
    (edge,) = extract_tiles(image, [(0, 0, 5, 5)], pad_mode="edge")
    assert edge[4, 4] == 11


def test_overlaps_are_weighted_means():
    # two 4-px tiles on a 1x6 strip overlapping in columns 2-3: constant predictions 0 and 1
    boxes = [(0, 0, 4, 4), (0, 2, 4, 6)]
    tiles = np.stack([np.zeros((1, 4, 4)), np.ones((1, 4, 4))])
    out = stitch_tiles(tiles, boxes, 1, 6)[0, 0]
    w = blend_weight(4, 2)[0]  # row 0 of the window; column weights 0.5, 1, 1, 0.5 scaled
    expected_col2 = w[0] / (w[2] + w[0])  # tile 1 contributes its border (index 0)
    np.testing.assert_allclose(out[[0, 1, 4, 5]], [0, 0, 1, 1])
    np.testing.assert_allclose(out[2], expected_col2)
    np.testing.assert_allclose(out[3], w[1] / (w[3] + w[1]))
    assert 0 < out[2] < 0.5 < out[3] < 1  # a smooth seam, not a hard switch


def test_blend_weight_positive_and_flat_without_overlap():
    assert (blend_weight(8, 0) == 1).all()
    w = blend_weight(8, 4)
    assert w.min() > 0 and w.max() == 1 and w[0, 0] < w[2, 2]


def test_stitch_shape_errors():
    with pytest.raises(ValueError, match="N = 2 boxes"):
        stitch_tiles(np.zeros((1, 1, 4, 4)), [(0, 0, 4, 4), (0, 2, 4, 6)], 4, 6)
