"""The consensus ensemble on one image: members -> fused boxes -> voted masks.

:class:`EnsembleMembers` loads the run folders a manifest names (each checked against the
member registry); :func:`detect` collects every detector's boxes (each test-time flip one
set); :func:`mask_sources` fuses them (WBF) and gives, for the fused boxes, every mask source's
probability crops on common windows (averaged over its flips); :func:`finalize` votes,
re-ranks and post-processes with the image's cell-type thresholds (``ensemblab.ensemble.fusion``
holds the model-free steps). The raw stages are kept apart so that fitting weights and
thresholds on a validation split re-uses one forward pass per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemblab.ensemble.fusion import consensus_vote, fuse_detections, instance_windows, rerank
from ensemblab.ensemble.manifest import Manifest, Member, load_manifest
from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.members import MEMBERS, LoadedMember, load_member
from ensemblab.projects.sartorius_cells.postprocess import PostprocessParams, remove_overlaps
from ensemblab.projects.sartorius_cells.structures import Instances


def read_manifest(path: str | Path) -> Manifest:
    """A manifest file whose member kinds are the registered ones and whose thresholds are
    post-processing parameters (:func:`check_manifest`; one-line ConfigErrors naming the file)."""
    return check_manifest(load_manifest(path, kinds=MEMBERS.names()), str(path))


def check_manifest(manifest: Manifest, source: str = "manifest") -> Manifest:
    """Every member kind must be registered and every threshold a post-processing parameter
    (one-line ConfigError naming the known kinds, or the unknown key and the closest one)."""
    for spec in manifest.members:
        if spec.kind not in MEMBERS:
            raise ConfigError(f"{source}: member {spec.name!r}: "
                              f"{MEMBERS.unknown_message(spec.kind)}")
    thresholds = manifest.thresholds
    PostprocessParams.from_dict(thresholds["default"], f"{source}: thresholds.default")
    for cell_type, values in thresholds["per_type"].items():
        PostprocessParams.from_dict(values, f"{source}: thresholds.per_type.{cell_type}")
    return manifest


@dataclass
class EnsembleMember:
    """A manifest entry and its loaded member."""

    spec: Member
    member: LoadedMember

    @property
    def detects(self) -> bool:
        return self.member.kind.detector and self.spec.box_weight > 0

    @property
    def votes(self) -> bool:
        return self.member.kind.mask_source and self.spec.mask_weight > 0


class EnsembleMembers:
    """The members of a manifest, loaded once (each run must be of its manifest kind)."""

    def __init__(self, manifest: Manifest, device: str = "auto"):
        check_manifest(manifest)
        self.manifest = manifest
        self.members = [EnsembleMember(spec, load_member(manifest.run_path(spec), device,
                                                         kind=spec.kind, verb="ensemble"))
                        for spec in manifest.members]

    def classes(self) -> list[str]:
        """Cell-type names (label - 1 indexes them), from the first member."""
        return self.members[0].member.classes

    def split(self) -> dict:
        """The validation split the members were trained with (from the first member)."""
        return self.members[0].member.cfg["data"]["split"]

    def instance_models(self) -> list[EnsembleMember]:
        """Members giving boxes and masks from one network (set-ups 1 and 2)."""
        return [m for m in self.members if m.member.kind.instance_model]


def flip_image(image: np.ndarray, flip: str) -> np.ndarray:
    """``none`` | ``h`` (left-right) | ``v`` (up-down) of ``[H, W]``."""
    return {"none": image, "h": image[:, ::-1], "v": image[::-1]}[flip].copy()


def flip_boxes(boxes: np.ndarray, flip: str, height: int, width: int) -> np.ndarray:
    """Boxes ``[N, 4]`` (x0, y0, x1, y1) in the flipped frame (the flip is its own inverse)."""
    boxes = boxes.copy()
    if flip == "h":
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    elif flip == "v":
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
    return boxes


def detect(members: list[EnsembleMember], image: np.ndarray) -> list[tuple]:
    """Boxes of every detector and flip on one image.

    Returns:
        List of ``(member name, boxes float[N, 4], scores [N], labels [N] 1-based)``.
    """
    h, w = image.shape
    sets = []
    for m in members:
        if not m.detects:
            continue
        for flip in m.spec.flips:
            boxes, scores, labels = m.member.detect(flip_image(image, flip))
            sets.append((m.spec.name, flip_boxes(boxes, flip, h, w), scores, labels))
    return sets


def window_probs(m: EnsembleMember, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                 windows: np.ndarray) -> list[np.ndarray]:
    """One mask source's probability crops on the windows, averaged over its flips."""
    if len(windows) == 0:
        return []
    h, w = image.shape
    total = None
    for flip in m.spec.flips:
        crops = m.member.window_probs(flip_image(image, flip), flip_boxes(boxes, flip, h, w),
                                      labels, flip_boxes(windows, flip, h, w))
        crops = [flip_image(np.asarray(c, np.float32), flip) for c in crops]
        total = crops if total is None else [a + b for a, b in zip(total, crops)]
    return [c / len(m.spec.flips) for c in total]


@dataclass
class RawConsensus:
    """Fused boxes of one image and every mask source's probability crops on their windows."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    windows: np.ndarray
    sources: dict[str, list[np.ndarray]]
    height: int
    width: int


def fuse_sets(members: list[EnsembleMember], box_sets: list[tuple], manifest: Manifest,
              height: int, width: int):
    """WBF of the detector sets -> ``(boxes, scores, labels, windows)`` (see ``fusion.py``);
    ``manifest.fusion`` gives ``iou_thr``, ``skip_box_thr``, ``conf_type`` and ``window_pad``."""
    fcfg = manifest.fusion
    weights = {m.spec.name: m.spec.box_weight for m in members}
    boxes, scores, labels = fuse_detections([s[1:] for s in box_sets],
                                            [weights[s[0]] for s in box_sets], height, width,
                                            iou_thr=float(fcfg["iou_thr"]),
                                            skip_box_thr=float(fcfg["skip_box_thr"]),
                                            conf_type=fcfg["conf_type"])
    windows = instance_windows(boxes, height, width, float(fcfg["window_pad"]))
    return boxes, scores, labels, windows


def mask_sources(members: list[EnsembleMember], image: np.ndarray, box_sets: list[tuple],
                 manifest: Manifest) -> RawConsensus:
    """WBF of the detector sets, then every mask source's probabilities on the fused windows."""
    h, w = image.shape
    boxes, scores, labels, windows = fuse_sets(members, box_sets, manifest, h, w)
    sources = {m.spec.name: window_probs(m, image, boxes, labels, windows)
               for m in members if m.votes}
    return RawConsensus(boxes, scores, labels, windows, sources, h, w)


def finalize(raw: RawConsensus, weights: dict[str, float],
             params: PostprocessParams) -> Instances:
    """Consensus vote, re-ranking, thresholds, overlap removal and minimum area.

    Args:
        raw: output of :func:`mask_sources`.
        weights: mask-source name -> weight (sources missing here or weighted 0 are ignored).
        params: the image's cell-type thresholds (``score_thresh, mask_thresh,
            overlap_drop_frac, min_area, mask_nms_iou``).

    Returns:
        Non-overlapping instances, bool crops, sorted by the re-ranked score.
    """
    names = [n for n in raw.sources if weights.get(n, 0.0) > 0]
    if len(raw.boxes) == 0 or not names:
        return Instances.empty(raw.height, raw.width)
    probs = consensus_vote([raw.sources[n] for n in names], [weights[n] for n in names])
    scores, masks = rerank(raw.scores, probs, params.mask_thresh)
    inst = Instances(raw.boxes, scores, raw.labels, masks, raw.windows, raw.height, raw.width)
    inst = inst.select(np.flatnonzero(scores >= params.score_thresh))
    return remove_overlaps(inst, params.overlap_drop_frac, params.min_area, params.mask_nms_iou)
