"""COCO mask AP: a hand-computed case, equality with pycocotools, and maxDets > 100."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ensemblab.metrics.coco_ap import CocoAPEvaluator, coco_mask_ap


def _squares(n, size=64, side=3, step=4):
    """``n`` disjoint side x side squares on a grid."""
    masks = np.zeros((n, size, size), bool)
    per_row = size // step
    for i in range(n):
        y, x = (i // per_row) * step, (i % per_row) * step
        masks[i, y:y + side, x:x + side] = True
    return masks


def test_hand_computed_ap():
    gt = _squares(2)
    fp = np.zeros((1, 64, 64), bool)
    fp[0, 40:44, 40:44] = True
    pred = np.concatenate([gt[:1], fp])  # a perfect match (0.9) and a false positive (0.8)
    # ranked: TP -> (precision 1, recall 0.5); FP -> (0.5, 0.5). Interpolated precision is 1 at
    # the 51 recall points 0.00..0.50 and 0 at the 50 points above: AP = 51/101 at every IoU.
    out = coco_mask_ap({1: gt}, {1: (pred, np.array([0.9, 0.8]))})
    assert out["AP"] == pytest.approx(51 / 101)
    assert out["AP50"] == pytest.approx(51 / 101)
    assert out["AP75"] == pytest.approx(51 / 101)
    assert out["AR"] == pytest.approx(0.5)


def _pycocotools_direct(gts, preds):
    """pycocotools as documented, default maxDets, summarize() -> stats[0:3]."""
    images, anns, dets = [], [], []
    for img_id, masks in gts.items():
        images.append({"id": img_id, "height": 64, "width": 64})
        for m in masks:
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": 1,
                         "segmentation": rle, "area": float(m.sum()),
                         "bbox": list(mask_utils.toBbox(rle)), "iscrowd": 0})
    for img_id, (masks, scores) in preds.items():
        for m, s in zip(masks, scores):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            dets.append({"image_id": img_id, "category_id": 1, "segmentation": rle,
                         "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[:3]


def test_equals_pycocotools_below_100_detections():
    rng = np.random.default_rng(0)
    gts, preds = {}, {}
    for img in (1, 2, 3):
        gt = _squares(12)
        shifted = np.roll(gt, shift=int(rng.integers(0, 2)), axis=2)  # IoU 1 or 0.5
        keep = rng.random(12) < 0.8
        pred = np.concatenate([shifted[keep], _squares(3)[:, ::-1]])
        gts[img] = gt
        preds[img] = (pred, rng.random(len(pred)))
    ours = coco_mask_ap(gts, preds, max_dets=1000)
    ref = _pycocotools_direct(gts, preds)
    assert [ours["AP"], ours["AP50"], ours["AP75"]] == pytest.approx(list(ref), abs=1e-12)
    assert 0 < ours["AP"] < 1


def test_raised_max_dets_counts_dense_images():
    gt = _squares(150, size=64, side=3, step=4)[:150]  # 150 cells > 100
    pred = (gt, np.linspace(1.0, 0.5, 150))
    assert coco_mask_ap({1: gt}, {1: pred}, max_dets=1000)["AP"] == pytest.approx(1.0)
    capped = _pycocotools_direct({1: gt}, {1: pred})  # default maxDets=100 caps recall
    assert capped[0] < 0.8


def test_evaluator_and_errors():
    gt = _squares(2)
    ev = CocoAPEvaluator()
    ev.update("x", gt, np.array([0.9, 0.8]), gt)
    assert ev.compute()["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="without ground truth"):
        coco_mask_ap({1: gt}, {2: (gt, np.ones(2))})
    with pytest.raises(ValueError, match="scores"):
        coco_mask_ap({1: gt}, {1: (gt, np.ones(3))})


def test_image_without_predictions_as_empty_list():
    # image "a" found perfectly, image "b" (same two squares) has no predictions: recall 1/2
    gt = _squares(2)
    ev = CocoAPEvaluator()
    ev.update("a", gt, np.array([0.9, 0.8]), gt)
    ev.update("b", [], [], gt)
    out = ev.compute()
    assert out["AR"] == pytest.approx(0.5)
    assert out["AP"] == pytest.approx(0.5, abs=0.02)  # precision 1 up to recall 1/2, then 0
