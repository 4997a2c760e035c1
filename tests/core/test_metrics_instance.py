"""Kaggle Sartorius score and mask IoU, against hand-computed cases."""

import numpy as np
import pytest

from ensemblab.metrics.instance import (
    KaggleScoreEvaluator,
    kaggle_score,
    mask_iou_matrix,
    mask_iou_pairs,
)


def _case():
    """4x10 canvas: GT A = row 0, B = row 1; predictions P1, P2, P3."""
    gt = np.zeros((2, 4, 10), bool)
    gt[0, 0] = True  # A: 10 px
    gt[1, 1] = True  # B: 10 px
    pred = np.zeros((3, 4, 10), bool)
    pred[0, 0] = True
    pred[0, 2, :2] = True  # P1 = A + 2 px: IoU 10/12
    pred[1, 1, :6] = True  # P2 = 6 px of B: IoU 6/10 = 0.6
    pred[2, 3] = True  # P3: a false positive
    return pred, gt


def _idmap(masks):
    out = np.zeros(masks.shape[1:], np.int32)
    for i, m in enumerate(masks):
        out[m] = i + 1
    return out


def test_iou_matrix_by_hand():
    pred, gt = _case()
    expected = [[10 / 12, 0], [0, 0.6], [0, 0]]
    assert mask_iou_matrix(pred, gt) == pytest.approx(np.array(expected))
    assert mask_iou_matrix(_idmap(pred), _idmap(gt)) == pytest.approx(np.array(expected))
    assert mask_iou_matrix(_idmap(pred), gt) == pytest.approx(np.array(expected))
    rows, cols, iou = mask_iou_pairs(pred, gt, min_iou=0.7)
    assert rows.tolist() == [0] and cols.tolist() == [0] and iou == pytest.approx([10 / 12])


def test_kaggle_score_by_hand():
    pred, gt = _case()
    # t = 0.50, 0.55: both hits, TP 2 FP 1 FN 0 -> 2/3
    # t = 0.60 .. 0.80 (5 thresholds): 0.6 is not > 0.6, so TP 1 FP 2 FN 1 -> 1/4
    # t = 0.85, 0.90, 0.95: 10/12 = 0.833 misses -> 0
    expected = (2 * (2 / 3) + 5 * (1 / 4) + 3 * 0) / 10  # = 31/120
    assert kaggle_score(pred, gt) == pytest.approx(31 / 120)
    assert kaggle_score(pred, gt) == pytest.approx(expected)
    assert kaggle_score(_idmap(pred), _idmap(gt)) == pytest.approx(31 / 120)
    assert kaggle_score(gt, gt) == 1.0


def test_id_maps_with_gaps_and_large_ids():
    pred, gt = _case()
    big = _idmap(gt).astype(np.int64)
    big[big == 2] = 10**9  # forces the relabelling path; unused ids must not count
    assert kaggle_score(_idmap(pred), big) == pytest.approx(31 / 120)


def test_empty_conventions():
    empty = np.zeros((0, 4, 10), bool)
    pred, gt = _case()
    assert kaggle_score(empty, empty) == 1.0  # nothing to find, nothing found
    assert kaggle_score(np.zeros((4, 10), np.int32), np.zeros((4, 10), np.int32)) == 1.0
    assert kaggle_score(pred, empty) == 0.0  # only false positives
    assert kaggle_score(empty, gt) == 0.0  # only misses
    # an image with no predictions given as an empty list, against a stack or an id map
    assert kaggle_score([], gt) == 0.0
    assert kaggle_score([], _idmap(gt)) == 0.0
    assert kaggle_score(pred, []) == 0.0
    assert kaggle_score([], []) == 1.0
    assert kaggle_score([], np.zeros((4, 10), np.int32)) == 1.0
    assert mask_iou_matrix([], gt).shape == (0, len(gt))
    # an empty mask in a stack is no object, like an id absent from an id map
    with_empty = np.concatenate([pred, np.zeros((1, 4, 10), bool)])
    assert kaggle_score(with_empty, gt) == pytest.approx(31 / 120)


def test_overlapping_masks_match_one_to_one():
    # two identical GT masks and one prediction equal to both: one TP, one FN -> 1/2
    gt = np.zeros((2, 4, 4), bool)
    gt[:, :2] = True
    assert kaggle_score(gt[:1], gt) == pytest.approx(0.5)


def test_shape_errors():
    with pytest.raises(ValueError, match="sizes differ"):
        kaggle_score(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 5), bool))
    with pytest.raises(ValueError, match="expected masks"):
        kaggle_score(np.zeros((4, 4), float), np.zeros((4, 4), np.int32))


def test_evaluator_groups_and_duplicates():
    pred, gt = _case()
    ev = KaggleScoreEvaluator()
    ev.update("a", pred, gt, group="astro")  # 31/120
    ev.update("b", gt, gt, group="astro")  # 1
    ev.update("c", gt, gt, group="shsy5y")  # 1
    ev.update("c", gt, gt, group="shsy5y")  # same id again (a padded sampler): counts once
    out = ev.compute()
    assert out["n_images"] == 3
    assert out["kaggle_score"] == pytest.approx((31 / 120 + 1 + 1) / 3)
    assert out["per_group"]["astro"] == pytest.approx((31 / 120 + 1) / 2)
    assert out["per_group"]["shsy5y"] == 1.0
    assert out["n_per_group"] == {"astro": 2, "shsy5y": 1}
