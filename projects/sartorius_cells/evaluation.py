"""Loading a trained member, predicting images, tuning thresholds and scoring a split.

The Kaggle score (mean over images of the mean over IoU thresholds 0.50:0.05:0.95 of
TP/(TP+FP+FN)) is computed on full-resolution id maps of the post-processed predictions, per
image and per cell type; COCO mask AP (maxDets 1000) on the same instances, ranked by score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ensemblab.data.rle import instance_map_to_rles, kaggle_to_coco_rle
from ensemblab.engine import best_checkpoint, open_run, select_device
from ensemblab.errors import EnsemblabError
from ensemblab.io import write_json
from ensemblab.metrics.coco_ap import coco_ap_from_rles
from ensemblab.metrics.instance import KaggleScoreEvaluator, kaggle_score
from ensemblab.projects.sartorius_cells.data import CellRecord
from ensemblab.projects.sartorius_cells.maskrcnn import predict_images
from ensemblab.projects.sartorius_cells.postprocess import (
    Instances,
    ParamsByType,
    PostprocessParams,
    image_cell_type,
    instances_to_idmap,
    postprocess,
)
from ensemblab.projects.sartorius_cells.training import model_from_config

PARAMS_FILE = "postprocess.json"
SEARCH_ORDER = ("score_thresh", "mask_thresh", "nms_iou", "overlap_drop_frac", "min_area")


def load_member(run_dir: str | Path, device: str = "auto", untrained: bool = False):
    """``(model, cfg, params: ParamsByType)`` of a run; ``untrained`` keeps random weights.

    The untrained model is built with the run's seed, so it is the exact starting point of
    training: the baseline the trained score is compared with.
    """
    run_dir, cfg = open_run(run_dir)
    torch.manual_seed(int(cfg.get("seed", 0)))
    model = model_from_config(cfg["model"])
    if not untrained:
        state = torch.load(best_checkpoint(run_dir), map_location="cpu", weights_only=True)
        model.load_state_dict({k.removeprefix("model."): v
                               for k, v in state["state_dict"].items()})
    params = ParamsByType(PostprocessParams.from_config(cfg.get("postprocess", {})))
    path = run_dir / PARAMS_FILE
    if path.is_file() and not untrained:
        params = ParamsByType.from_dict(json.loads(path.read_text()))
    return model.to(select_device(device)).eval(), cfg, params


def predict_raw(model, cfg: dict, images: list[np.ndarray], device: str = "auto"
                ) -> list[Instances]:
    """Raw detections of full-size images, one at a time (bounded memory)."""
    dev = select_device(device)
    size = int(cfg["model"]["image_size"])
    return [predict_images(model, [im], size, dev)[0] for im in images]


def finalize(raw: Instances, params: ParamsByType, classes: list[str]) -> Instances:
    """Post-process with the thresholds of the image's (predicted) cell type."""
    return postprocess(raw, params.get(image_cell_type(raw, classes)))


def _score(raws, gts, params: PostprocessParams) -> float:
    return float(np.mean([kaggle_score(instances_to_idmap(postprocess(r, params)), g)
                          for r, g in zip(raws, gts)]))


def tune_params(raws: list[Instances], gts: list[np.ndarray], types: list[str],
                grid: dict[str, list], start: PostprocessParams) -> ParamsByType:
    """Per cell type, coordinate search of the post-processing thresholds.

    One pass over ``SEARCH_ORDER``: each parameter takes the grid value with the best mean
    Kaggle score on that type's validation images, the others held at their current values.

    Args:
        raws: raw detections of the validation images.
        gts: their true id maps int[H, W].
        types: their true cell types.
        grid: candidate values per parameter name.
        start: the starting (and default) parameters.
    """
    out = ParamsByType(start)
    for cell_type in sorted(set(types)):
        idx = [i for i, t in enumerate(types) if t == cell_type]
        r, g = [raws[i] for i in idx], [gts[i] for i in idx]
        best = PostprocessParams.from_dict(start.to_dict())
        best_score = _score(r, g, best)
        for name in SEARCH_ORDER:
            for value in grid.get(name, []):
                trial = PostprocessParams.from_dict({**best.to_dict(), name: value})
                score = _score(r, g, trial)
                if score > best_score + 1e-9:
                    best, best_score = trial, score
        out.per_type[cell_type] = best
    return out


def tune_and_save(run_dir: Path, model, cfg: dict, records: list[CellRecord],
                  device: str = "auto") -> ParamsByType:
    """Tune thresholds on ``records`` (the validation split) and write ``RUN/postprocess.json``."""
    raws = predict_raw(model, cfg, [r.load_image() for r in records], device)
    gts = [r.load_idmap() for r in records]
    pcfg = cfg.get("postprocess", {})
    params = tune_params(raws, gts, [r.cell_type for r in records], pcfg.get("search", {}),
                         PostprocessParams.from_config(pcfg))
    write_json(Path(run_dir) / PARAMS_FILE, params.to_dict())
    return params


def instances_to_rles(inst: Instances) -> list[str]:
    """Kaggle RLEs of non-overlapping instances, in instance (score) order."""
    rles, _ = instance_map_to_rles(instances_to_idmap(inst))
    return rles


def evaluate_records(model, cfg: dict, params: ParamsByType, records: list[CellRecord],
                     device: str = "auto") -> dict:
    """Kaggle score (overall, per cell type), COCO mask AP (maxDets 1000), instance counts."""
    classes = list(cfg["model"]["classes"])
    evaluator = KaggleScoreEvaluator()
    gt_rles, dt_rles = {}, {}
    n_pred = n_gt = 0
    for rec in records:
        pred = finalize(predict_raw(model, cfg, [rec.load_image()], device)[0], params, classes)
        gt = rec.load_idmap()
        pred_map = instances_to_idmap(pred)
        evaluator.update(rec.image_id, pred_map, gt, group=rec.cell_type)
        shape = (rec.height, rec.width)
        g_rles, _ = instance_map_to_rles(gt)
        p_rles, p_ids = instance_map_to_rles(pred_map)
        gt_rles[rec.image_id] = [kaggle_to_coco_rle(r, shape) for r in g_rles]
        dt_rles[rec.image_id] = ([kaggle_to_coco_rle(r, shape) for r in p_rles],
                                 pred.scores[p_ids - 1])
        n_pred += len(p_rles)
        n_gt += len(g_rles)
    if not records:
        raise EnsemblabError("nothing to evaluate: the split holds no images")
    res = evaluator.compute()
    ap = coco_ap_from_rles(gt_rles, dt_rles, max_dets=1000)
    return {"kaggle_score": res["kaggle_score"], "per_cell_type": res["per_group"],
            "n_per_cell_type": res["n_per_group"], "n_images": res["n_images"],
            "coco_mask_ap": ap["AP"], "coco_mask_ap50": ap["AP50"],
            "coco_mask_ap75": ap["AP75"], "coco_mask_ar": ap["AR"],
            "n_predicted": n_pred, "n_true": n_gt}

