"""Semantic scores (mineral paper eq. 8-11) against hand-computed numbers."""

import math

import numpy as np
import pytest
import torch

from ensemblab.metrics import semantic
from ensemblab.metrics.semantic import (
    ConfusionMatrixEvaluator,
    confusion_matrices,
    confusion_matrix,
    semantic_scores,
)

TARGET = np.array([[0, 0, 1], [1, 2, 2]])
PRED = np.array([[0, 1, 1], [1, 2, 0]])
# rows = truth: t0 -> preds (0, 1); t1 -> (1, 1); t2 -> (2, 0); class 3 never occurs
CM = [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_confusion_matrix_by_hand():
    assert confusion_matrix(PRED, TARGET, 4).tolist() == CM
    assert confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(TARGET), 4).tolist() == CM


def test_ignore_index_and_range_errors():
    target = np.array([0, 255, 1])
    pred = np.array([0, 1, 0])
    assert confusion_matrix(pred, target, 2, ignore_index=255).tolist() == [[1, 0], [1, 0]]
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(pred, target, 2)
    with pytest.raises(ValueError, match="values"):
        confusion_matrix(pred[:2], target, 2)


def test_scores_by_hand():
    s = semantic_scores(np.array(CM), class_names=["a", "b", "c", "d"])
    # TP = (1, 2, 1), FP = colsum - TP = (2-1, 3-2, 1-1) = (1, 1, 0), FN = rowsum - TP = (1, 0, 1)
    # IoU = TP/(TP+FP+FN) = 1/3, 2/3, 1/2; class 3 absent from truth and prediction -> NaN
    assert s["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert math.isnan(s["iou"][3]) and math.isnan(s["f1"][3])
    # PA = TP/(TP+FP) = 1/2, 2/3, 1; recall = TP/(TP+FN) = 1/2, 1, 1/2
    assert s["pa"][:3] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert s["recall"][:3] == pytest.approx([1 / 2, 1.0, 1 / 2])
    # F1 = 2PR/(P+R) = 0.5, 2*(2/3)/(5/3) = 0.8, 2*(1*0.5)/1.5 = 2/3
    assert s["f1"][:3] == pytest.approx([0.5, 0.8, 2 / 3])
    # means over the 3 present classes
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)  # = 0.5
    assert s["mpa"] == pytest.approx(13 / 18)  # (1/2 + 2/3 + 1) / 3
    assert s["mrecall"] == pytest.approx(2 / 3)  # (1/2 + 1 + 1/2) / 3
    assert s["mf1"] == pytest.approx(59 / 90)  # (1/2 + 4/5 + 2/3) / 3
    # eq. 10: 2 mPA mRecall / (mPA + mRecall) = (26/27) / (25/18) = 52/75, not the mean F1
    assert s["f1_score"] == pytest.approx(52 / 75)
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)
    assert s["class_names"] == ["a", "b", "c", "d"]


def test_class_in_truth_never_predicted_scores_zero():
    # truth (0, 1), prediction (0, 0): class 1 occurs, is never predicted -> PA 0/0 -> 0
    s = semantic_scores(confusion_matrix(np.array([0, 0]), np.array([0, 1]), 2))
    assert s["pa"] == [0.5, 0.0] and s["recall"] == [1.0, 0.0] and s["iou"] == [0.5, 0.0]
    assert s["miou"] == pytest.approx(0.25)
    # mPA = 1/4, mRecall = 1/2 -> eq. 10: 2 (1/8) / (3/4) = 1/3
    assert s["f1_score"] == pytest.approx(1 / 3)


def test_f1_score_without_classes_or_hits():
    assert math.isnan(semantic_scores(np.zeros((2, 2)))["f1_score"])
    # truth all class 0, prediction all class 1: mPA = mRecall = 0 -> F1 0
    assert semantic_scores(np.array([[0, 3], [0, 0]]))["f1_score"] == 0.0


def test_evaluator_accumulates_batches():
    ev = ConfusionMatrixEvaluator(4)
    ev.update(PRED[:1], TARGET[:1])
    ev.update(torch.from_numpy(PRED[1:]), torch.from_numpy(TARGET[1:]))
    out = ev.compute()
    assert out["confusion_matrix"] == CM
    assert out["miou"] == pytest.approx(0.5)
    ev.reset()
    assert ev.matrix.sum() == 0


def test_per_sample_matrices_by_hand():
    pred = np.array([[[0, 1]], [[1, 1]]])  # [B=2, 1, 2]
    target = np.array([[[0, 0]], [[1, 255]]])
    out = confusion_matrices(pred, target, 2, ignore_index=255)
    assert out.tolist() == [[[1, 1], [0, 0]], [[0, 0], [0, 1]]]
    with pytest.raises(ValueError, match="outside"):
        confusion_matrices(pred + 1, target.clip(0, 1), 2)


def test_sample_ids_count_a_repeated_sample_once(monkeypatch):
    # Two ranks of a DistributedSampler over 3 samples: rank 0 sees (0, 2), rank 1 (1, 0).
    ranks = [ConfusionMatrixEvaluator(4), ConfusionMatrixEvaluator(4)]
    ranks[0].update(np.stack([PRED[0], PRED[0]]), np.stack([TARGET[0], TARGET[1]]),
                    sample_ids=[0, torch.tensor(2)])
    ranks[1].update(np.stack([PRED[1], PRED[0]]), np.stack([TARGET[1], TARGET[0]]),
                    sample_ids=[np.int64(1), 0])
    monkeypatch.setattr(semantic, "all_gather_objects",
                        lambda obj: [ranks[0].per_sample, ranks[1].per_sample])
    expected = (confusion_matrix(PRED[0], TARGET[0], 4) + confusion_matrix(PRED[1], TARGET[1], 4)
                + confusion_matrix(PRED[0], TARGET[1], 4))
    out = ranks[0].compute()
    assert out["confusion_matrix"] == expected.tolist()
    assert np.sum(out["confusion_matrix"]) == 9  # 3 samples x 3 pixels, sample 0 once
    with pytest.raises(ValueError, match="sample ids"):
        ranks[0].update(PRED[None], TARGET[None], sample_ids=[0, 1])
