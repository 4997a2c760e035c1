"""Post-processing: overlap removal, NMS, thresholds, empty input (hand-made instances)."""

import numpy as np

from ensemblab.projects.sartorius_cells.postprocess import (
    PostprocessParams,
    image_cell_type,
    postprocess,
    remove_overlaps,
)
from ensemblab.projects.sartorius_cells.structures import Instances, instances_to_idmap


def _square(y0, x0, size, h=20, w=20):
    """A size x size square instance as (box, crop, crop_box)."""
    box = np.array([x0, y0, x0 + size, y0 + size], np.float32)
    return box, np.ones((size, size), bool), box.astype(np.int64)


def _instances(squares, scores, labels=None, h=20, w=20):
    boxes, crops, cboxes = zip(*[_square(*s, h=h, w=w) for s in squares])
    n = len(squares)
    return Instances(np.stack(boxes), np.asarray(scores, np.float32),
                     np.asarray(labels or [1] * n, np.int64), list(crops), np.stack(cboxes), h, w)


def test_higher_score_keeps_contested_pixels():
    # A (score .9) at rows/cols 0-5; B (.8) at 3-8 loses 3x3=9 of its 36 pixels (25 %).
    inst = _instances([(0, 0, 6), (3, 3, 6)], [0.8, 0.9][::-1])
    out = remove_overlaps(inst, drop_frac=0.5)
    assert len(out) == 2
    idmap = instances_to_idmap(out)
    assert (idmap == 1).sum() == 36 and (idmap == 2).sum() == 27
    assert idmap[4, 4] == 1  # contested pixel went to the higher score
    assert out.scores.tolist() == sorted(out.scores.tolist(), reverse=True)


def test_instance_losing_too_much_is_dropped():
    # B overlaps A on 4x6 = 24 of its 36 pixels (67 %) > 50 % -> dropped; kept at 0.7.
    inst = _instances([(0, 0, 6), (2, 0, 6)], [0.9, 0.8])
    assert len(remove_overlaps(inst, drop_frac=0.5)) == 1
    assert len(remove_overlaps(inst, drop_frac=0.7)) == 2


def test_lower_score_listed_first_still_loses():
    inst = _instances([(2, 0, 6), (0, 0, 6)], [0.3, 0.9])
    out = remove_overlaps(inst, drop_frac=0.9)
    assert out.scores.tolist() == [np.float32(0.9), np.float32(0.3)]
    assert out.masks[0].sum() == 36 and out.masks[1].sum() == 12


def test_mask_nms_and_min_area():
    inst = _instances([(0, 0, 6), (0, 1, 6), (12, 12, 2)], [0.9, 0.8, 0.7])
    out = remove_overlaps(inst, drop_frac=1.0, mask_nms_iou=0.6)  # IoU(A,B) = 30/42 = .71
    assert len(out) == 2
    assert len(remove_overlaps(inst, drop_frac=1.0, min_area=5, mask_nms_iou=0.6)) == 1


def test_postprocess_thresholds_and_non_overlap():
    crop = np.zeros((6, 6), np.float32)
    crop[1:5, 1:5] = 0.9
    crop[0] = 0.45
    inst = Instances(np.array([[0, 0, 6, 6], [1, 1, 7, 7], [10, 10, 16, 16]], np.float32),
                     np.array([0.9, 0.85, 0.2], np.float32), np.array([2, 2, 1]),
                     [crop, crop.copy(), crop.copy()],
                     np.array([[0, 0, 6, 6], [1, 1, 7, 7], [10, 10, 16, 16]]), 20, 20)
    out = postprocess(inst, PostprocessParams(score_thresh=0.5, nms_iou=0.3, mask_thresh=0.5,
                                              min_area=1))
    assert len(out) == 1  # box NMS removes the second, the score threshold the third
    assert out.masks[0].sum() == 16  # the 0.45 row is below the mask threshold
    loose = postprocess(inst, PostprocessParams(score_thresh=0.1, nms_iou=0.9, mask_thresh=0.4,
                                                mask_nms_iou=1.0, overlap_drop_frac=0.9,
                                                min_area=1))
    assert len(loose) == 3
    stack = loose.full_masks()
    assert stack.sum(axis=0).max() == 1  # no pixel in two instances


def test_empty_predictions():
    empty = Instances.empty(12, 16)
    assert len(postprocess(empty, PostprocessParams())) == 0
    assert len(remove_overlaps(empty)) == 0
    assert instances_to_idmap(empty).shape == (12, 16) and not instances_to_idmap(empty).any()
    assert image_cell_type(empty, ["a", "b"]) is None


def test_image_cell_type_is_score_weighted_vote():
    inst = _instances([(0, 0, 2), (5, 5, 2), (9, 9, 2)], [0.9, 0.3, 0.3], labels=[2, 1, 1])
    assert image_cell_type(inst, ["shsy5y", "astro", "cort"]) == "astro"
