"""Box fusion (ensemble-boxes) and instance-mask fusion, by hand."""

import numpy as np
import pytest

from ensemblab.voting import fuse_boxes, fuse_instance_masks


def test_wbf_by_hand():
    boxes = [np.array([[10, 10, 50, 50]]), np.array([[12, 12, 52, 52]])]  # IoU 1444/1756
    scores = [np.array([0.9]), np.array([0.7])]
    labels = [np.array([0]), np.array([0])]
    out_boxes, out_scores, out_labels = fuse_boxes(boxes, scores, labels, image_size=(100, 100))
    # score-weighted coordinates: (0.9*10 + 0.7*12)/1.6 = 10.875, (0.9*50 + 0.7*52)/1.6 = 50.875
    assert out_boxes == pytest.approx(np.array([[10.875, 10.875, 50.875, 50.875]]))
    # 'avg' confidence: mean score (0.8) * min(2 models, 2 boxes) / sum of weights (2) = 0.8
    assert out_scores == pytest.approx([0.8])
    assert out_labels.tolist() == [0]


def test_soft_nms_by_hand():
    # (nms and nmw are numba-compiled in ensemble-boxes: ~10 s of JIT, so soft-NMS is tested)
    boxes = [np.array([[10, 10, 50, 50]]), np.array([[12, 12, 52, 52]])]
    scores = [np.array([0.9]), np.array([0.7])]
    labels = [np.array([1]), np.array([1])]
    # Gaussian decay of the weaker box: 0.7 * exp(-IoU^2 / sigma), IoU = 1444/1756 = 0.82232
    # -> 0.7 * exp(-0.67621 / 0.5) = 0.7 * 0.25862 = 0.18103: kept above a 0.18 threshold,
    # dropped at 0.182. (ensemble-boxes reports the kept boxes' original scores.)
    kept, kept_scores, _ = fuse_boxes(boxes, scores, labels, method="soft_nms", sigma=0.5,
                                      skip_box_thr=0.180, image_size=(100, 200))
    assert kept == pytest.approx(np.array([[10, 10, 50, 50], [12, 12, 52, 52]]))
    assert kept_scores == pytest.approx([0.9, 0.7])
    dropped, _, _ = fuse_boxes(boxes, scores, labels, method="soft_nms", sigma=0.5,
                               skip_box_thr=0.182, image_size=(100, 200))
    assert dropped == pytest.approx(np.array([[10, 10, 50, 50]]))
    with pytest.raises(ValueError, match="unknown"):
        fuse_boxes(boxes, scores, labels, method="vote")


def _masks():
    a = np.zeros((2, 8, 8), bool)
    a[0, 0:4, 0:4] = True  # a1: 16 px, score 0.9
    a[1, 5:8, 5:8] = True  # a2: 9 px, score 0.6
    b = np.zeros((1, 8, 8), bool)
    b[0, 0:4, 0:5] = True  # b1: 20 px, score 0.8; IoU(a1, b1) = 16/20 = 0.8
    return [a, b], [np.array([0.9, 0.6]), np.array([0.8])]


def test_instance_fusion_by_hand():
    masks, scores = _masks()
    fused, fused_scores = fuse_instance_masks(masks, scores)
    # cluster {a1, b1}: column 4 is covered by b1 only: share 0.8 / 1.7 = 0.47 < 0.5 -> a1
    # score (0.9 + 0.8) / 2 models = 0.85; cluster {a2}: score 0.6 / 2 = 0.3
    assert fused_scores == pytest.approx([0.85, 0.3])
    assert (fused[0] == masks[0][0]).all() and (fused[1] == masks[0][1]).all()
    # min_votes=2 drops the instance only one model found
    fused2, scores2 = fuse_instance_masks(masks, scores, min_votes=2)
    assert len(fused2) == 1 and scores2 == pytest.approx([0.85])


def test_instance_fusion_weights():
    masks, scores = _masks()
    fused, fused_scores = fuse_instance_masks(masks, scores, weights=[1, 3])
    # confidences 0.9*1 and 0.8*3 = 2.4: column 4 share 2.4 / 3.3 = 0.73 -> b1's shape
    # score (0.9 + 2.4) / 4 = 0.825; a2: 0.6 / 4 = 0.15
    assert fused_scores == pytest.approx([0.825, 0.15])
    assert (fused[0] == masks[1][0]).all()


def test_instance_fusion_empty():
    empty = np.zeros((0, 8, 8), bool)
    fused, scores = fuse_instance_masks([empty, empty], [np.zeros(0), np.zeros(0)])
    assert fused.shape == (0, 8, 8) and scores.shape == (0,)
