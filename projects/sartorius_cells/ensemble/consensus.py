"""The three-model consensus ensemble on one image: members -> fused boxes -> voted masks.

:class:`EnsembleMembers` loads the run folders a manifest names; :func:`detect` collects every
detector's boxes (each test-time flip one set); :func:`mask_sources` gives, for the fused
boxes, each mask model's probability crops on common windows; :func:`finalize` votes, re-ranks
and post-processes with the image's cell-type thresholds (``ensemble/fusion.py`` holds the
model-free steps). The raw stages are kept apart so that fitting weights and thresholds on a
validation fold re-uses one forward pass per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ensemblab.ensemble.crops import resize_crops_to_boxes, window_of
from ensemblab.ensemble.fusion import consensus_vote, fuse_detections, instance_windows, rerank
from ensemblab.ensemble.manifest import Manifest, Member
from ensemblab.projects.sartorius_cells.inference import load_member
from ensemblab.projects.sartorius_cells.maskrcnn import (
    image_features,
    mask_probabilities,
    predict_images,
)
from ensemblab.projects.sartorius_cells.postprocess import (
    Instances,
    PostprocessParams,
    remove_overlaps,
)
from ensemblab.projects.sartorius_cells.upernet_predict import (
    load_upernet_member,
    predict_crops,
    predict_full,
)
from ensemblab.projects.sartorius_cells.yolox_member import load_yolox_member, predict_boxes


@dataclass
class Loaded:
    """A loaded member: its manifest entry, network, run config, device and (Mask R-CNN) its
    own tuned post-processing (``ParamsByType``, used by set-up 1)."""

    spec: Member
    net: torch.nn.Module
    cfg: dict
    device: torch.device
    params: object = None


class EnsembleMembers:
    """The networks of a manifest, loaded once."""

    def __init__(self, manifest: Manifest, device: str = "auto"):
        self.manifest = manifest
        self.members: list[Loaded] = []
        for spec in manifest.members:
            path = manifest.run_path(spec)
            params = None
            if spec.kind == "yolox":
                net, cfg, dev = load_yolox_member(path, device)
            elif spec.kind == "maskrcnn":
                net, cfg, params = load_member(path, device)
                dev = next(net.parameters()).device
            else:
                net, cfg, dev = load_upernet_member(path, device)
            self.members.append(Loaded(spec, net, cfg, dev, params))

    def classes(self) -> list[str]:
        """Cell-type names (label - 1 indexes them), from the first member."""
        return list(self.members[0].cfg["model"]["classes"])

    def split(self) -> dict:
        """The validation split the members were trained with (from the first member)."""
        return self.members[0].cfg["data"]["split"]


def _flip_image(image: np.ndarray, flip: str) -> np.ndarray:
    return {"none": image, "h": image[:, ::-1], "v": image[::-1]}[flip].copy()


def _unflip_boxes(boxes: np.ndarray, flip: str, height: int, width: int) -> np.ndarray:
    boxes = boxes.copy()
    if flip == "h":
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    elif flip == "v":
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
    return boxes


def detect(members: list[Loaded], image: np.ndarray) -> list[tuple]:
    """Boxes of every detector (YOLOX, Mask R-CNN) and flip on one image.

    Returns:
        List of ``(member name, boxes float[N, 4], scores [N], labels [N] 1-based)``.
    """
    h, w = image.shape
    sets = []
    for m in members:
        if m.spec.kind not in ("yolox", "maskrcnn") or m.spec.box_weight <= 0:
            continue
        for flip in m.spec.flips:
            img = _flip_image(image, flip)
            if m.spec.kind == "yolox":
                boxes, scores, labels = predict_boxes(m.net, img, m.device, **m.cfg["predict"])
            else:
                raw = predict_images(m.net, [img], int(m.cfg["model"]["image_size"]),
                                     m.device)[0]
                boxes, scores, labels = raw.boxes, raw.scores, raw.labels
            sets.append((m.spec.name, _unflip_boxes(boxes, flip, h, w), scores, labels))
    return sets


@torch.no_grad()
def maskrcnn_window_probs(loaded: Loaded, image: np.ndarray, windows: np.ndarray,
                          labels: np.ndarray, chunk: int = 256) -> list[np.ndarray]:
    """Mask R-CNN's mask head run on given windows (not on its own detections).

    The image goes through the model's own resize and transform; the windows are scaled into
    that frame, RoIAligned from the FPN (``roi_heads.mask_roi_pool``), and the mask head's
    probability of each window's class is resampled back onto the window's pixels.

    Returns:
        float32 crops, one per window.
    """
    net, dev = loaded.net, loaded.device
    if len(windows) == 0:
        return []
    h, w = image.shape
    batch, features = image_features(net, [image], int(loaded.cfg["model"]["image_size"]), dev)
    th, tw = batch.image_sizes[0]
    rois = torch.as_tensor(windows, dtype=torch.float32, device=dev) * torch.tensor(
        [tw / w, th / h, tw / w, th / h], device=dev)
    n_classes = net.roi_heads.mask_predictor.mask_fcn_logits.out_channels
    cls = torch.as_tensor(labels, device=dev).clamp(max=n_classes - 1)
    probs = mask_probabilities(net, features, rois, cls, (th, tw), chunk)
    return resize_crops_to_boxes(probs.cpu(), windows)


@dataclass
class RawConsensus:
    """Fused boxes of one image and every mask model's probability crops on their windows."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    windows: np.ndarray
    sources: dict[str, list[np.ndarray]]
    height: int
    width: int


def fuse_sets(members: list[Loaded], box_sets: list[tuple], manifest: Manifest,
              height: int, width: int):
    """WBF of the detector sets -> ``(boxes, scores, labels, windows)`` (see ``fusion.py``)."""
    fcfg = manifest.fusion
    weights = {m.spec.name: m.spec.box_weight for m in members}
    boxes, scores, labels = fuse_detections([s[1:] for s in box_sets],
                                            [weights[s[0]] for s in box_sets], height, width,
                                            iou_thr=float(fcfg.get("iou_thr", 0.55)),
                                            skip_box_thr=float(fcfg.get("skip_box_thr", 0.0)))
    windows = instance_windows(boxes, height, width, float(fcfg.get("window_pad", 0.1)))
    return boxes, scores, labels, windows


def source_crops(m: Loaded, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                 windows: np.ndarray) -> list[np.ndarray]:
    """One mask model's probability crops on the windows of the fused boxes.

    Mask R-CNN: its mask head on the windows; UPerNet crop: its crops around the boxes, moved
    onto the windows; UPerNet full: its cell probability (1 - background) cut at the windows.
    """
    if len(windows) == 0:
        return []
    if m.spec.kind == "maskrcnn":
        return maskrcnn_window_probs(m, image, windows, labels)
    if m.spec.kind == "upernet_crop":
        mcfg = m.cfg["model"]
        own, probs = predict_crops(m.net, image, boxes, m.device, int(mcfg["crop"]),
                                   float(mcfg["context"]))
        return [window_of(p, b, win) for p, b, win in zip(probs, own, windows)]
    cell = 1.0 - predict_full(m.net, image, m.device, int(m.cfg["model"]["size"]),
                              hflip="h" in m.spec.flips)[0]
    return [cell[y0:y1, x0:x1].copy() for x0, y0, x1, y1 in windows]


def mask_sources(members: list[Loaded], image: np.ndarray, box_sets: list[tuple],
                 manifest: Manifest) -> RawConsensus:
    """WBF of the detector sets, then every mask model's probabilities on the fused windows."""
    h, w = image.shape
    boxes, scores, labels, windows = fuse_sets(members, box_sets, manifest, h, w)
    sources = {m.spec.name: source_crops(m, image, boxes, labels, windows) for m in members
               if m.spec.mask_weight > 0 and m.spec.kind != "yolox"}
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
