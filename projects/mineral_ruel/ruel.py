"""RUEL: rank the learners, vote the top n (mineral paper sec. 2.4, eq. 5-7, Tables 5-7).

1. Every learner predicts the *ranking* images (the training split's hold-out, which no learner
   trained on and which is not the test split) and is ranked by a metric: the IoU of one class
   (the paper ranks by gangue) or mIoU.
2. For every n from 3 to N, the top-n learners are combined by plurality voting (RUEL-n-PV) and
   by weighted voting with w_i = (n - i) / sum_j (n - j) for the learner of rank i = 0..n-1
   (RUEL-n-WV, eq. 5-7). Ties go to the higher-ranked learner.
3. Each single learner and each scheme is scored on the test images; the time per image (TPI)
   of a scheme is the sum of its members' inference times plus the vote.

The scheme recommended for ``predict`` is the best one on the ranking images, so nothing is
chosen on the test split.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ensemblab.errors import EnsemblabError
from ensemblab.metrics.semantic import confusion_matrix, semantic_scores
from ensemblab.projects.mineral_ruel.inference import Learner
from ensemblab.voting import plurality_vote, rank_weights, weighted_vote


@dataclass
class Scheme:
    """One RUEL scheme: the top-``n`` ranked learners and a voting ``method`` (``pv``/``wv``)."""

    n: int
    method: str

    @property
    def name(self) -> str:
        return f"RUEL-{self.n}-{self.method.upper()}"


@dataclass
class Tally:
    """Confusion matrix, inference seconds and voting seconds accumulated over images."""

    num_classes: int
    cm: np.ndarray = field(init=False)
    seconds: list[float] = field(default_factory=list)
    vote_seconds: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cm = np.zeros((self.num_classes, self.num_classes), np.int64)

    def add(self, pred: np.ndarray, target: np.ndarray, seconds: float,
            vote_seconds: float = 0.0) -> None:
        self.cm += confusion_matrix(pred, target, self.num_classes)
        self.seconds.append(seconds)
        self.vote_seconds.append(vote_seconds)


def parse_rank_by(rank_by: str, classes: Sequence[str]) -> int | None:
    """``miou`` -> None; ``iou:<class name or index>`` -> class index."""
    if rank_by == "miou":
        return None
    if rank_by.startswith("iou:"):
        key = rank_by[4:]
        if key in classes:
            return list(classes).index(key)
        if key.isdigit() and int(key) < len(classes):
            return int(key)
        raise EnsemblabError(f"--rank-by {rank_by}: unknown class; classes are {list(classes)}")
    raise EnsemblabError(f"--rank-by must be 'miou' or 'iou:<class>', got {rank_by!r}")


def rank_score(cm: np.ndarray, class_index: int | None) -> float:
    """The ranking metric of a confusion matrix (a class absent from the hold-out scores 0)."""
    scores = semantic_scores(cm)
    if class_index is None:
        return scores["miou"]
    value = scores["iou"][class_index]
    return 0.0 if value != value else value


def vote(label_maps: np.ndarray, scheme: Scheme, num_classes: int) -> np.ndarray:
    """Fuse ranked label maps ``[M, H, W]`` (best first) with the scheme's top-n -> ``[H, W]``."""
    top = label_maps[:scheme.n]
    if scheme.method == "pv":
        return plurality_vote(top)
    return weighted_vote(top, weights=rank_weights(scheme.n), num_classes=num_classes)


def all_schemes(n_learners: int) -> list[Scheme]:
    """RUEL-n-PV and RUEL-n-WV for n = 3..N (empty for fewer than 3 learners)."""
    return [Scheme(n, m) for n in range(3, n_learners + 1) for m in ("pv", "wv")]


def rank_learners(learners: Sequence[Learner], images: Sequence[tuple[np.ndarray, np.ndarray]],
                  class_index: int | None, num_classes: int):
    """Score every learner on the ranking images; return them best first.

    Returns:
        ``(ranked learners, their scores, their full-resolution label maps per image
        [M][image])``; ties keep the given order (stable sort).
    """
    maps = [[learner.predict(image)[0] for image, _ in images] for learner in learners]
    scores = []
    for per_image in maps:
        cm = sum(confusion_matrix(p, m, num_classes) for p, (_, m) in zip(per_image, images))
        scores.append(rank_score(cm, class_index))
    order = sorted(range(len(learners)), key=lambda i: -scores[i])
    return [learners[i] for i in order], [scores[i] for i in order], [maps[i] for i in order]


def score_schemes(maps: Sequence[Sequence[np.ndarray]], masks: Sequence[np.ndarray],
                  schemes: Sequence[Scheme], num_classes: int) -> dict[str, np.ndarray]:
    """Confusion matrix of every scheme over images, from precomputed ranked label maps."""
    cms = {s.name: np.zeros((num_classes, num_classes), np.int64) for s in schemes}
    for i, mask in enumerate(masks):
        stack = np.stack([per_learner[i] for per_learner in maps])
        for scheme in schemes:
            cms[scheme.name] += confusion_matrix(vote(stack, scheme, num_classes), mask,
                                                 num_classes)
    return cms


def evaluate_test(learners: Sequence[Learner], schemes: Sequence[Scheme], images,
                  num_classes: int) -> dict[str, Tally]:
    """Score ranked learners and all schemes on test images, one image at a time.

    Args:
        learners: ranked learners, best first.
        schemes: schemes to score.
        images: iterable of ``(image uint8 [H, W, 3], mask [H, W])``.
        num_classes: classes.

    Returns:
        ``{name: Tally}`` for every learner (by run name) and scheme; a scheme's seconds are its
        members' inference seconds plus its voting seconds (also kept in ``vote_seconds``).
    """
    tallies = {lr.name: Tally(num_classes) for lr in learners}
    tallies.update({s.name: Tally(num_classes) for s in schemes})
    for image, mask in images:
        maps, secs = [], []
        for learner in learners:
            labels, seconds = learner.predict(image)
            tallies[learner.name].add(labels, mask, seconds)
            maps.append(labels)
            secs.append(seconds)
        stack = np.stack(maps)
        for scheme in schemes:
            start = time.perf_counter()
            fused = vote(stack, scheme, num_classes)
            voted = time.perf_counter() - start
            tallies[scheme.name].add(fused, mask, sum(secs[:scheme.n]) + voted, voted)
    return tallies
