"""Consensus fusion on hand-made cases: WBF of detectors, the weighted vote, re-ranking and the
final post-processing (per-type thresholds, overlap removal), and a submission from it."""

import numpy as np
import pytest

from ensemblab.ensemble.fusion import (
    consensus_vote,
    fuse_detections,
    grid_search,
    instance_windows,
    rerank,
)
from ensemblab.ensemble.manifest import Manifest, Member
from ensemblab.ensemble.submission import validate_submission, write_submission
from ensemblab.projects.sartorius_cells.ensemble.consensus import (
    EnsembleMember,
    RawConsensus,
    finalize,
    fuse_sets,
)
from ensemblab.projects.sartorius_cells.ensemble.fitting import image_type, params_for
from ensemblab.projects.sartorius_cells.postprocess import PostprocessParams
from ensemblab.projects.sartorius_cells.structures import instances_to_rles


def test_wbf_fuses_agreeing_boxes_and_downweights_lone_ones():
    a = (np.array([[10, 10, 50, 50], [70, 70, 90, 90]], float), np.array([0.9, 0.8]),
         np.array([1, 1]))
    b = (np.array([[12, 12, 52, 52]], float), np.array([0.6]), np.array([1]))
    boxes, scores, labels = fuse_detections([a, b], [1.0, 1.0], 100, 100, iou_thr=0.5)
    assert len(boxes) == 2 and labels.tolist() == [1, 1]
    # Score-weighted mean of the coordinates: (0.9 * a + 0.6 * b) / 1.5.
    np.testing.assert_allclose(boxes[0], [10.8, 10.8, 50.8, 50.8], atol=0.05)
    np.testing.assert_allclose(scores[0], 0.75, atol=1e-3)   # mean of 0.9 and 0.6
    np.testing.assert_allclose(scores[1], 0.4, atol=1e-3)    # 0.8 found by 1 of 2 detectors
    empty = fuse_detections([(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], [1.0], 10, 10)
    assert empty[0].shape == (0, 4)


def test_manifest_fusion_conf_type_sets_the_fused_scores():
    """``fusion.conf_type`` reaches weighted box fusion: ``avg`` scales a box found by one of
    two detectors by 1/2, ``max`` keeps the best member score."""
    sets = [("yolox", np.array([[10, 10, 50, 50], [70, 70, 90, 90]], float),
             np.array([0.9, 0.8]), np.array([1, 1])),
            ("mrcnn", np.array([[12, 12, 52, 52]], float), np.array([0.6]), np.array([1]))]
    specs = [Member("yolox", "yolox", "r"), Member("mrcnn", "maskrcnn", "r")]
    members = [EnsembleMember(spec, None) for spec in specs]

    def fused_scores(conf_type):
        manifest = Manifest("t", "consensus", specs, kinds=None,
                            fusion={"iou_thr": 0.5, "conf_type": conf_type})
        return fuse_sets(members, sets, manifest, 100, 100)[1]

    np.testing.assert_allclose(fused_scores("avg"), [0.75, 0.4], atol=1e-3)
    np.testing.assert_allclose(fused_scores("max"), [0.9, 0.8], atol=1e-3)
    with pytest.raises(ValueError, match="conf_type 'mx'"):  # ensemble-boxes would exit()
        fuse_detections([s[1:] for s in sets], [1.0, 1.0], 100, 100, conf_type="mx")


def test_consensus_vote_is_the_weighted_mean():
    a = [np.full((2, 3), 0.8, np.float32)]
    b = [np.full((2, 3), 0.4, np.float32)]
    c = [np.full((2, 3), 0.0, np.float32)]
    out = consensus_vote([a, b, c], [3.0, 1.0, 0.0])
    np.testing.assert_allclose(out[0], 0.75 * 0.8 + 0.25 * 0.4)
    with pytest.raises(ValueError):
        consensus_vote([a, b], [0.0, 0.0])


def test_rerank_multiplies_box_score_by_mean_mask_probability():
    probs = [np.array([[0.8, 0.6], [0.2, 0.1]], np.float32), np.full((2, 2), 0.3, np.float32)]
    scores, masks = rerank(np.array([0.9, 0.5]), probs, mask_thresh=0.5)
    np.testing.assert_allclose(scores, [0.9 * 0.7, 0.0])
    assert masks[0].tolist() == [[True, True], [False, False]] and not masks[1].any()


def test_instance_windows_and_grid_search():
    win = instance_windows(np.array([[10.0, 10.0, 30.0, 20.0]]), 100, 100, pad=0.1)
    assert win.tolist() == [[8, 9, 32, 21]]
    best, score = grid_search(lambda p: -(p["a"] - 2) ** 2 - p["b"], {"a": [1, 2, 3],
                                                                      "b": [1, 0]})
    assert best == {"a": 2, "b": 0} and score == 0


def _raw() -> RawConsensus:
    """Two overlapping cells and one faint detection in a 20 x 30 image."""
    windows = np.array([[2, 2, 12, 12], [8, 2, 18, 12], [20, 10, 28, 18]])
    strong = [np.full((10, 10), 0.9, np.float32), np.full((10, 10), 0.8, np.float32),
              np.full((8, 8), 0.2, np.float32)]
    weak = [np.full((10, 10), 0.5, np.float32), np.full((10, 10), 0.6, np.float32),
            np.full((8, 8), 0.9, np.float32)]
    return RawConsensus(windows.astype(np.float32), np.array([0.9, 0.8, 0.7], np.float32),
                        np.array([1, 1, 2]), windows, {"mrcnn": strong, "upernet": weak}, 20, 30)


def test_finalize_votes_reranks_and_removes_overlaps():
    params = PostprocessParams(score_thresh=0.3, mask_thresh=0.5, overlap_drop_frac=0.5,
                               min_area=4, mask_nms_iou=0.9)
    inst = finalize(_raw(), {"mrcnn": 3.0, "upernet": 1.0}, params)
    # Third: vote 0.75*0.2 + 0.25*0.9 = 0.375 < mask_thresh -> empty mask -> score 0, dropped.
    assert len(inst) == 2
    np.testing.assert_allclose(inst.scores, [0.9 * 0.8, 0.8 * 0.75], rtol=1e-5)
    assert inst.masks[0].sum() == 100 and inst.masks[1].sum() == 60  # lost 4 columns
    full = inst.full_masks()
    assert not (full[0] & full[1]).any()
    # Only the upernet vote: the faint third cell is found, overlap drop removes nothing.
    alone = finalize(_raw(), {"upernet": 1.0}, params)
    assert len(alone) == 3


def test_per_type_thresholds_and_image_type():
    thresholds = {"default": {"score_thresh": 0.5}, "per_type": {"astro": {"score_thresh": 0.1}}}
    assert params_for(thresholds, "astro").score_thresh == 0.1
    assert params_for(thresholds, "cort").score_thresh == 0.5
    assert image_type(_raw(), ["cort", "astro"]) == "cort"  # 0.9 + 0.8 against 0.7


def test_submission_from_the_ensemble_validates(tmp_path):
    params = PostprocessParams(score_thresh=0.0, mask_thresh=0.5, overlap_drop_frac=0.9,
                               min_area=1)
    inst = finalize(_raw(), {"mrcnn": 1.0, "upernet": 1.0}, params)
    rles = {"img1": instances_to_rles(inst), "img2": []}
    csv = tmp_path / "submission.csv"
    write_submission(csv, rles, ["img1", "img2"])
    assert validate_submission(csv, {"img1": (20, 30), "img2": (20, 30)}) == []
    assert len(rles["img1"]) == len(inst) == 3


def _cells_image(rng, size=96, n=9, radius=9):
    """An id map with ``n`` separate round cells on a 3x3 grid, each shifted a little."""
    yy, xx = np.mgrid[:size, :size]
    ids = np.zeros((size, size), np.int32)
    step = size // 3
    for k in range(n):
        cy = step // 2 + step * (k // 3) + rng.integers(-3, 4)
        cx = step // 2 + step * (k % 3) + rng.integers(-3, 4)
        ids[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = k + 1
    return ids


def test_fused_members_beat_each_member_alone():
    """Three detectors that each miss other cells and three noisy mask sources: WBF of the
    boxes plus the consensus vote of the masks scores above every member on its own."""
    from ensemblab.metrics.instance import kaggle_score

    rng = np.random.default_rng(0)
    gt = _cells_image(rng)
    size = gt.shape[0]
    gt_masks = np.stack([gt == k for k in range(1, gt.max() + 1)])
    truth = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] for ys, xs in
                      (np.nonzero(m) for m in gt_masks)], float)
    # Each detector misses a different third of the cells and adds one spurious box.
    box_sets = []
    for d in range(3):
        keep = np.array([k % 3 != d for k in range(len(truth))])
        boxes = truth[keep] + rng.normal(0, 1.0, (keep.sum(), 4))
        boxes = np.vstack([boxes, [[2 + 30 * d, 2, 14 + 30 * d, 12]]])
        box_sets.append((boxes, np.r_[np.full(keep.sum(), 0.9), 0.6], np.ones(len(boxes), int)))
    # Each mask source sees the truth through independent pixel noise.
    prob_maps = [np.clip(gt_masks.any(0) + rng.normal(0, 0.45, gt.shape), 0, 1)
                 for _ in range(3)]

    def masks_in(boxes, scores, maps, weights):
        """Voted, re-ranked masks of the instances scoring at least 0.25, full size."""
        windows = instance_windows(boxes, size, size, pad=0.1)
        crops = [[m[y0:y1, x0:x1] for x0, y0, x1, y1 in windows] for m in maps]
        probs = consensus_vote(crops, weights)
        scores, crop_masks = rerank(scores, probs, mask_thresh=0.5)
        out = []
        for (x0, y0, x1, y1), s, cm in zip(windows, scores, crop_masks):
            if s >= 0.25 and cm.any():
                full = np.zeros(gt.shape, bool)
                full[y0:y1, x0:x1] = cm
                out.append(full)
        return np.stack(out) if out else np.zeros((0, *gt.shape), bool)

    members = [kaggle_score(masks_in(b, s, [p], [1.0]), gt_masks)
               for (b, s, _), p in zip(box_sets, prob_maps)]
    boxes, scores, _ = fuse_detections(box_sets, [1.0] * 3, size, size, iou_thr=0.5)
    fused = kaggle_score(masks_in(boxes, scores, prob_maps, [1.0] * 3), gt_masks)
    assert fused > max(members) + 0.1, (fused, members)
