"""Metrics: semantic, instance (Kaggle, COCO AP), classification, retrieval, VQA, captions.

Import from the submodules (``ensemblab.metrics.semantic`` ...); the most used names are
re-exported here; the modules with heavy dependencies (classification: scikit-learn, coco_ap:
pycocotools, captions: pycocoevalcap and Java) are imported only when asked for.
"""

from ensemblab.metrics.evaluators import Evaluator, all_gather_objects, all_reduce_sum
from ensemblab.metrics.instance import (
    KaggleScoreEvaluator,
    kaggle_score,
    mask_iou_matrix,
    mask_iou_pairs,
)
from ensemblab.metrics.retrieval import image_text_retrieval, topk_retrieval
from ensemblab.metrics.semantic import (
    ConfusionMatrixEvaluator,
    confusion_matrices,
    confusion_matrix,
    semantic_scores,
)
from ensemblab.metrics.vqa import normalize_answer, vqa_accuracy

__all__ = [
    "ConfusionMatrixEvaluator", "Evaluator", "KaggleScoreEvaluator", "all_gather_objects",
    "all_reduce_sum", "confusion_matrices", "confusion_matrix", "image_text_retrieval",
    "kaggle_score", "mask_iou_matrix", "mask_iou_pairs", "normalize_answer", "semantic_scores",
    "topk_retrieval", "vqa_accuracy",
]
