"""Box crops: RoIAlign crop -> paste back lands exactly where it came from."""

import numpy as np
import pytest
import torch

from ensemblab.ensemble.crops import (
    crop_boxes,
    expand_boxes,
    integer_boxes,
    paste_crop,
    resize_crops_to_boxes,
    window_of,
)


def test_integer_boxes_round_outwards_and_clip():
    boxes = np.array([[1.2, 2.7, 5.1, 6.0], [-3.0, -1.0, 200.0, 8.5], [9.9, 9.9, 9.9, 9.9],
                      [5.0, 5.0, 5.0, 5.0], [-4.0, -1.0, 30.0, 25.0]])
    out = integer_boxes(boxes, height=10, width=12)
    # an integer edge stays (6.0), a box of no area still covers one pixel, both sides clip
    assert out.tolist() == [[1, 2, 6, 6], [0, 0, 12, 9], [9, 9, 10, 10], [5, 5, 6, 6],
                            [0, 0, 12, 10]]


def test_same_size_crop_and_paste_back_is_exact():
    rng = np.random.default_rng(0)
    image = rng.random((40, 50)).astype(np.float32)
    box = np.array([[7, 5, 23, 21]])  # 16 x 16 pixels
    crops = crop_boxes(torch.from_numpy(image)[None], box, 16)
    assert crops.shape == (1, 1, 16, 16)
    np.testing.assert_allclose(crops[0, 0].numpy(), image[5:21, 7:23], atol=1e-6)
    back = resize_crops_to_boxes(crops[:, 0], box)[0]
    canvas = paste_crop(np.zeros_like(image), back, box[0])
    np.testing.assert_allclose(canvas[5:21, 7:23], image[5:21, 7:23], atol=1e-6)
    canvas[5:21, 7:23] = 0
    assert not canvas.any()  # nothing written outside the box


@pytest.mark.parametrize("box", [(10, 6, 42, 38), (3, 20, 60, 44)])
def test_resampled_mask_round_trip_keeps_shape_and_place(box):
    h, w = 64, 72
    yy, xx = np.mgrid[:h, :w]
    x0, y0, x1, y1 = box
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    ry, rx = (y1 - y0) / 2.5, (x1 - x0) / 2.5
    mask = ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1
    crop = crop_boxes(torch.from_numpy(mask.astype(np.float32))[None], np.array([box]), 28)
    back = resize_crops_to_boxes(crop[:, 0], np.array([box]))[0] >= 0.5
    pasted = paste_crop(np.zeros((h, w), bool), back, box)
    iou = (pasted & mask).sum() / (pasted | mask).sum()
    assert iou > 0.93
    ys, xs = np.nonzero(pasted)
    assert abs(ys.mean() - np.nonzero(mask)[0].mean()) < 0.5
    assert abs(xs.mean() - np.nonzero(mask)[1].mean()) < 0.5


def test_window_of_places_a_box_crop_inside_a_larger_window():
    crop = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    out = window_of(crop, np.array([5, 4, 8, 6]), np.array([3, 3, 9, 8]))
    assert out.shape == (5, 6)
    np.testing.assert_array_equal(out[1:3, 2:5], crop)
    assert out.sum() == crop.sum()
    # A box sticking out of the window is clipped to it.
    clipped = window_of(crop, np.array([1, 2, 4, 4]), np.array([3, 3, 9, 8]))
    np.testing.assert_array_equal(clipped[0, 0], crop[1, 2])
    assert clipped.sum() == crop[1, 2]


def test_expand_boxes_margin():
    out = expand_boxes(np.array([[10, 10, 30, 20]]), ratio=0.1, min_pad=1.5)
    np.testing.assert_allclose(out, [[8, 8.5, 32, 21.5]])
