"""Adaptive weights and thresholds fitted on a validation split, scored in-sample and cross-fitted.

The paper's ensemble adapts each model's weight to its validation performance. Here:

- box weights: each detector's validation box AP50 -> ``weights_from_scores``;
- mask weights: each mask model's Kaggle score when it alone gives the masks on the fused boxes
  -> ``weights_from_scores``;
  both ``proportional`` (``w_i = s_i / sum_j s_j``: a model's say grows with its score; equal
  weights when every score is 0);
- per cell type, a grid search of ``score_thresh`` x ``mask_thresh`` (other post-processing
  values from the manifest).

Fitting and scoring on the same images is optimistic, so every set-up is also *cross-fitted*:
the validation images are split in two halves, fitted on one and scored on the other, both ways.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ensemblab.ensemble.fusion import grid_search
from ensemblab.ensemble.manifest import Manifest
from ensemblab.metrics.instance import kaggle_score
from ensemblab.projects.sartorius_cells.ensemble.consensus import RawConsensus, finalize
from ensemblab.projects.sartorius_cells.evaluation import coco_box_ap
from ensemblab.projects.sartorius_cells.postprocess import PostprocessParams
from ensemblab.projects.sartorius_cells.structures import Instances, instances_to_idmap
from ensemblab.voting import weights_from_scores

DEFAULT_GRID = {"score_thresh": [0.1, 0.2, 0.3, 0.4, 0.5], "mask_thresh": [0.4, 0.5, 0.6]}


@dataclass
class ValImage:
    """Cached validation image: ground truth, cell type, and a set-up's raw consensus."""

    image_id: str
    cell_type: str
    gt: np.ndarray
    raw: RawConsensus | None = None
    extra: dict = field(default_factory=dict)


def image_type(raw: RawConsensus, classes: list[str]) -> str | None:
    """Cell type of an image: the fused boxes' label with the largest summed score."""
    if len(raw.scores) == 0:
        return None
    totals = np.bincount(raw.labels, weights=raw.scores, minlength=len(classes) + 1)
    return classes[int(np.argmax(totals[1:len(classes) + 1]))]


def params_for(thresholds: dict, cell_type: str | None) -> PostprocessParams:
    """The manifest's thresholds of a cell type, falling back to ``default``.

    Args:
        thresholds: ``{"default": {...}, "per_type": {cell_type: {...}}}`` (a manifest's
            ``thresholds``, both keys present).
        cell_type: the image's cell type (None: ``default`` alone).
    """
    base = dict(thresholds["default"])
    base.update(thresholds["per_type"].get(cell_type, {}) if cell_type else {})
    return PostprocessParams.from_dict(base)


def score_images(images: list[ValImage], weights: dict[str, float],
                 params_of: dict[str, PostprocessParams]) -> list[float]:
    """Kaggle score per image of the consensus with these weights and per-type thresholds."""
    out = []
    for im in images:
        inst: Instances = finalize(im.raw, weights, params_of[im.cell_type])
        out.append(kaggle_score(instances_to_idmap(inst), im.gt))
    return out


def adaptive_weights(scores: list[float]) -> np.ndarray:
    """Weights proportional to validation scores (equal when all are 0)."""
    if max(scores) <= 0:
        return weights_from_scores(scores, method="equal")
    return weights_from_scores(np.clip(scores, 0.0, None), method="proportional")


def detector_weights(box_sets: dict[str, list], gts: dict[str, np.ndarray]
                     ) -> tuple[dict[str, float], dict[str, float]]:
    """Adaptive box weights from each detector's validation box AP50.

    Args:
        box_sets: image id -> list of ``(member, boxes, scores, labels)`` from ``detect``.
        gts: image id -> true boxes ``[N, 4]``.

    Returns:
        ``(weights, AP50)`` keyed by member name.
    """
    names = sorted({s[0] for sets in box_sets.values() for s in sets})
    ap = {}
    for name in names:
        preds = {}
        for img_id, sets in box_sets.items():
            own = [s for s in sets if s[0] == name][:1]  # the un-flipped set
            preds[img_id] = (own[0][1], own[0][2]) if own else (np.zeros((0, 4)), np.zeros(0))
        ap[name] = coco_box_ap(gts, preds)["AP50"]
    if len(names) < 2:
        return {n: 1.0 for n in names}, ap
    w = adaptive_weights([ap[n] for n in names])
    return {n: float(v) for n, v in zip(names, w)}, ap


def fit_mask_weights(images: list[ValImage], sources: list[str],
                     start: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Each mask source's stand-alone score on the fused boxes -> adaptive weights.

    Returns:
        ``(weights, stand-alone scores)``.
    """
    params = type_params(start, images)
    alone = {s: float(np.mean(score_images(images, {s: 1.0}, params))) for s in sources}
    if len(sources) < 2:
        return {s: 1.0 for s in sources}, alone
    w = adaptive_weights([alone[s] for s in sources])
    return {s: float(v) for s, v in zip(sources, w)}, alone


def fit_thresholds(images: list[ValImage], weights: dict[str, float], start: dict,
                   grid: dict | None = None) -> dict:
    """Per cell type, the grid point of ``score_thresh`` x ``mask_thresh`` scoring best."""
    grid = grid or DEFAULT_GRID
    out = {"default": dict(start["default"]), "per_type": {}}
    for cell_type in sorted({im.cell_type for im in images}):
        subset = [im for im in images if im.cell_type == cell_type]
        base = params_for(start, cell_type).to_dict()

        def evaluate(trial, subset=subset, base=base, cell_type=cell_type):
            p = {cell_type: PostprocessParams.from_dict({**base, **trial})}
            return np.mean(score_images(subset, weights, p))

        best, _ = grid_search(evaluate, grid)
        out["per_type"][cell_type] = {**base, **best}
    return out


def crossfit_halves(n: int) -> list[tuple[list[int], list[int]]]:
    """``(fit, test)`` index pairs of the two-way cross-fit: even / odd items, then swapped
    (a pair with an empty side is left out)."""
    every = list(range(n))
    halves = (every[0::2], every[1::2])
    return [(a, b) for a, b in (halves, halves[::-1]) if a and b]


def type_params(thresholds: dict, images: list[ValImage]) -> dict:
    return {t: params_for(thresholds, t) for t in {im.cell_type for im in images}}


def fit_and_score(images: list[ValImage], sources: list[str], start: dict,
                  grid: dict | None = None) -> dict:
    """Fit weights + thresholds on all images (in-sample score) and cross-fitted by halves.

    Returns:
        ``{"weights", "alone" (start thresholds), "alone_fit" (own fitted thresholds),
        "thresholds", "kaggle_fit", "kaggle_crossfit", "per_type", "equal_weights_fit"}``.
    """
    weights, alone = fit_mask_weights(images, sources, start)
    # Each source alone with its own fitted thresholds: the fair single-model comparison.
    alone_fit = {}
    for s in sources:
        thr = fit_thresholds(images, {s: 1.0}, start, grid)
        alone_fit[s] = float(np.mean(score_images(images, {s: 1.0}, type_params(thr, images))))
    thresholds = fit_thresholds(images, weights, start, grid)
    per_image = score_images(images, weights, type_params(thresholds, images))
    equal = {s: 1.0 for s in sources}
    eq_params = type_params(fit_thresholds(images, equal, start, grid), images)
    cross = []
    for fit_idx, test_idx in crossfit_halves(len(images)):
        fit_half, test_half = [images[i] for i in fit_idx], [images[i] for i in test_idx]
        w_h, _ = fit_mask_weights(fit_half, sources, start)
        thr_h = fit_thresholds(fit_half, w_h, start, grid)
        cross += score_images(test_half, w_h, type_params(thr_h, test_half))
    per_type = {t: float(np.mean([s for s, im in zip(per_image, images) if im.cell_type == t]))
                for t in sorted({im.cell_type for im in images})}
    return {"weights": weights, "alone": alone, "alone_fit": alone_fit, "thresholds": thresholds,
            "kaggle_fit": float(np.mean(per_image)),
            "kaggle_crossfit": float(np.mean(cross)) if cross else float("nan"),
            "equal_weights_fit": float(np.mean(score_images(images, equal, eq_params))),
            "per_type": per_type}


def apply_fit(manifest: Manifest, box_w: dict[str, float], fit: dict) -> Manifest:
    """Write fitted box / mask weights and thresholds into the manifest (in place)."""
    for m in manifest.members:
        if m.name in box_w:
            m.box_weight = round(float(box_w[m.name]), 4)
        if m.name in fit["weights"]:
            m.mask_weight = round(float(fit["weights"][m.name]), 4)
    manifest.thresholds = fit["thresholds"]
    return manifest
