"""Box fusion of several detectors through ``ensemble-boxes`` (WBF, NMS, soft-NMS, NMW).

``ensemble-boxes`` works on coordinates normalised to ``[0, 1]``; boxes here are in pixels
``(x1, y1, x2, y2)`` and are divided by the image size on the way in and multiplied back on the
way out (clipped to the image, as the library clips to ``[0, 1]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

METHODS = ("wbf", "nms", "soft_nms", "nmw")
CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
"""The WBF score rules ``ensemble-boxes`` accepts (it exits the process on any other)."""


def fuse_boxes(
    boxes_list: Sequence[Any],
    scores_list: Sequence[Any],
    labels_list: Sequence[Any],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_box_thr: float = 0.0,
    method: str = "wbf",
    image_size: tuple[int, int] = (1, 1),
    conf_type: str = "avg",
    sigma: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse the boxes that ``M`` models predicted for one image.

    Args:
        boxes_list: per model ``[N_m, 4]`` boxes ``(x1, y1, x2, y2)`` in pixels.
        scores_list: per model ``[N_m]`` confidences in ``[0, 1]``.
        labels_list: per model ``[N_m]`` class labels.
        weights: ``[M]`` model weights (default equal).
        iou_thr: IoU above which boxes are merged / suppressed.
        skip_box_thr: boxes below this confidence are dropped first (WBF, NMW); for soft-NMS
            the threshold on the decayed score below which a box is removed (ensemble-boxes
            then reports each kept box with its original, undecayed score).
        method: ``wbf`` (weighted boxes fusion), ``nms``, ``soft_nms`` (Gaussian) or ``nmw``.
        image_size: ``(H, W)`` used to normalise coordinates.
        conf_type: WBF score of a fused box, one of :data:`CONF_TYPES`: ``avg`` (mean
            score, scaled down by the share of models that missed it), ``max``,
            ``box_and_model_avg`` or ``absent_model_aware_avg``.
        sigma: Gaussian sigma of soft-NMS.

    Returns:
        ``(boxes [K, 4] in pixels, scores [K], labels [K])``, sorted by decreasing score.
    """
    from ensemble_boxes import nms, non_maximum_weighted, soft_nms, weighted_boxes_fusion

    if method not in METHODS:
        raise ValueError(f"unknown box fusion method {method!r}; use one of {METHODS}")
    if conf_type not in CONF_TYPES:
        raise ValueError(f"unknown WBF conf_type {conf_type!r}; use one of {CONF_TYPES}")
    if not len(boxes_list) == len(scores_list) == len(labels_list):
        raise ValueError("boxes_list, scores_list and labels_list differ in length")
    height, width = image_size
    scale = np.array([width, height, width, height], dtype=np.float64)
    norm_boxes = [np.clip(np.asarray(b, np.float64).reshape(-1, 4) / scale, 0.0, 1.0)
                  for b in boxes_list]
    scores = [np.asarray(s, np.float64).reshape(-1) for s in scores_list]
    labels = [np.asarray(lab).reshape(-1) for lab in labels_list]
    weights = None if weights is None else list(weights)
    if sum(len(b) for b in norm_boxes) == 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0)
    if method == "wbf":
        out = weighted_boxes_fusion(norm_boxes, scores, labels, weights=weights, iou_thr=iou_thr,
                                    skip_box_thr=skip_box_thr, conf_type=conf_type)
    elif method == "nmw":
        out = non_maximum_weighted(norm_boxes, scores, labels, weights=weights, iou_thr=iou_thr,
                                   skip_box_thr=skip_box_thr)
    elif method == "nms":
        out = nms(norm_boxes, scores, labels, iou_thr=iou_thr, weights=weights)
    else:
        out = soft_nms(norm_boxes, scores, labels, iou_thr=iou_thr, sigma=sigma,
                       thresh=skip_box_thr, weights=weights)
    fused_boxes, fused_scores, fused_labels = (np.asarray(x) for x in out)
    order = np.argsort(-fused_scores, kind="stable")
    return fused_boxes[order].reshape(-1, 4) * scale, fused_scores[order], fused_labels[order]
