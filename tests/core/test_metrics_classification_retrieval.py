"""Macro P/R/F1 and top-k retrieval against hand-computed numbers."""

import numpy as np
import pytest

from ensemblab.metrics.classification import macro_prf
from ensemblab.metrics.retrieval import image_text_retrieval, topk_retrieval


def test_macro_prf_by_hand():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    # class 0: predicted at 0, 5 -> P 1/2, R 1/2, F1 1/2
    # class 1: predicted at 1, 2, 3 -> P 2/3, R 1, F1 2*(2/3)/(5/3) = 4/5
    # class 2: predicted at 4 -> P 1, R 1/2, F1 2/3
    out = macro_prf(y_true, y_pred)
    assert out["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert out["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert out["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["per_class"]["1"]["support"] == 2


def test_macro_prf_unpredicted_label_and_strings():
    # label "c" never occurs: P = R = F1 = 0 for it with labels given explicitly
    out = macro_prf(["a", "b"], ["a", "b"], labels=["a", "b", "c"])
    assert out["macro_f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="predictions"):
        macro_prf([0, 1], [0])


SIM = np.array([
    [0.9, 0.1, 0.2, 0.3],  # query 0, correct 0: rank 1
    [0.5, 0.4, 0.3, 0.9],  # query 1, correct 1: order 3, 0, 1 -> rank 3
    [0.1, 0.2, 0.3, 0.4],  # query 2, correct {0, 2}: order 3, 2 -> rank 2
])


def test_topk_by_hand():
    out = topk_retrieval(SIM, [{0}, {1}, {0, 2}], ks=(1, 2, 3))
    assert out == pytest.approx({"top1": 1 / 3, "top2": 2 / 3, "top3": 1.0})
    single = topk_retrieval(SIM[:2], np.array([0, 1]), ks=(1, 3))
    assert single == pytest.approx({"top1": 0.5, "top3": 1.0})


def test_ties_rank_by_gallery_index():
    assert topk_retrieval(np.array([[0.5, 0.5]]), [1], ks=(1, 2)) == {"top1": 0.0, "top2": 1.0}


def test_image_text_both_directions():
    # 2 images, 4 texts: texts 0, 1 describe image 0; texts 2, 3 image 1
    sim = np.array([[0.1, 0.8, 0.9, 0.0],
                    [0.7, 0.2, 0.3, 0.6]])
    out = image_text_retrieval(sim, [0, 0, 1, 1], ks=(1, 2))
    # i2t: image 0 top-1 is text 2 (wrong), top-2 adds text 1 (right); image 1 top-1 text 0
    # (wrong), top-2 adds text 3 (right)
    assert out["i2t_top1"] == 0.0 and out["i2t_top2"] == 1.0
    # t2i: text0 -> image 1 (wrong), text1 -> 0 (right), text2 -> 0 (wrong), text3 -> 1 (right)
    assert out["t2i_top1"] == 0.5 and out["t2i_top2"] == 1.0
