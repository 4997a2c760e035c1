"""``ensemble`` and ``submit --manifest``: score the paper's three set-ups, write a submission.

One manifest names every member; the three set-ups are read off it:

1. ``nms``: the first Mask R-CNN member alone with part 1's post-processing, its thresholds
   re-tuned on the validation split like the other set-ups (the run's own saved ones are
   scored too);
2. ``mask_vote``: all Mask R-CNN members (and their flips): WBF of their boxes, their mask heads'
   probabilities averaged on the fused boxes;
3. ``consensus``: every member: YOLOX + Mask R-CNN boxes, Mask R-CNN + UPerNet crop + UPerNet
   full-image probabilities voted.

Each is fitted (weights, per-type thresholds) and scored on the members' validation split.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

from ensemblab.ensemble.manifest import Manifest, load_manifest, save_manifest
from ensemblab.ensemble.submission import (
    write_validated_submission,
)
from ensemblab.errors import ConfigError
from ensemblab.io import write_csv, write_json
from ensemblab.metrics.instance import kaggle_score
from ensemblab.projects.sartorius_cells.consensus import (
    EnsembleMembers,
    detect,
    finalize,
    mask_sources,
)
from ensemblab.projects.sartorius_cells.data import (
    list_images,
    load_records,
    read_gray_uint8,
    split_records,
)
from ensemblab.projects.sartorius_cells.ensemble_fit import (
    ValImage,
    apply_fit,
    crossfit_halves,
    detector_weights,
    fit_and_score,
    image_type,
    params_for,
)
from ensemblab.projects.sartorius_cells.inference import finalize as finalize_part1
from ensemblab.projects.sartorius_cells.inference import (
    instances_to_rles,
    predict_raw,
    tune_params,
)
from ensemblab.projects.sartorius_cells.overlays import save_overlay
from ensemblab.projects.sartorius_cells.postprocess import PostprocessParams, instances_to_idmap
from ensemblab.projects.sartorius_cells.upernet_predict import predict_full, semantic_instances
from ensemblab.projects.sartorius_cells.workflow import image_sizes_from_folder
from ensemblab.projects.sartorius_cells.yolox_data import masks_to_boxes


def _mask_names(members, kinds) -> list[str]:
    return [m.spec.name for m in members if m.spec.kind in kinds and m.spec.mask_weight > 0]


def run_ensemble(manifest_path: str | Path, data_dir: str | Path, out_dir: str | Path,
                 device: str = "auto") -> dict:
    """Fit and score the three set-ups on the validation split; write the table and manifest.

    Writes ``OUT/scores.csv`` + ``OUT/scores.json`` (each set-up and member: in-sample and
    cross-fitted Kaggle score, per cell type), ``OUT/manifest_fitted.yaml`` (fitted weights and
    thresholds) and ``OUT/overlays/<id>_<entry>.png`` for the first validation image.
    """
    out_dir = Path(out_dir)
    manifest = load_manifest(manifest_path)
    ens = EnsembleMembers(manifest, device)
    mrcnn = [m for m in ens.members if m.spec.kind == "maskrcnn"]
    if not mrcnn:
        raise ConfigError(f"{manifest_path}: the manifest needs at least one maskrcnn member")
    _, val = split_records(load_records(data_dir), ens.split())
    if not val:
        raise ConfigError("the members' split has no validation images")
    start = time.perf_counter()
    cache = []
    for rec in val:
        image, gt = rec.load_image(), rec.load_idmap()
        cache.append((rec, image, gt, detect(ens.members, image)))
    box_w, box_ap = detector_weights({r.image_id: s for r, _, _, s in cache},
                                     {r.image_id: masks_to_boxes(r.load_masks())
                                      for r, _, _, _ in cache})
    for m in ens.members:
        m.spec.box_weight = box_w.get(m.spec.name, m.spec.box_weight)
    grid = manifest.fusion.get("search")
    results, rows, setups = {}, [], {}
    for setup, members in (("mask_vote", mrcnn), ("consensus", ens.members)):
        names = {m.spec.name for m in members}
        images = [ValImage(r.image_id, r.cell_type, gt,
                           mask_sources(members, im, [s for s in sets if s[0] in names],
                                        manifest))
                  for r, im, gt, sets in cache]
        sources = _mask_names(members, ("maskrcnn", "upernet_crop", "upernet_full"))
        setups[setup] = (images, fit_and_score(images, sources, manifest.thresholds, grid))
    part1 = mrcnn[0]
    results["setup1_nms"] = score_setup1(part1, cache, ens.classes(), device)
    for setup, (_, fit) in setups.items():
        results[f"setup{2 if setup == 'mask_vote' else 3}_{setup}"] = fit
    for m in ens.members:
        if m.spec.kind == "upernet_full":
            sc = [kaggle_score(instances_to_idmap(semantic_instances(
                predict_full(m.net, im, m.device, int(m.cfg["model"]["size"])))), gt)
                for _, im, gt, _ in cache]
            results[f"{m.spec.name}_alone"] = {"kaggle_fit": float(np.mean(sc))}
    for name, ap in box_ap.items():
        results[f"{name}_boxes"] = {"box_AP50": ap, "box_weight": box_w.get(name, 1.0)}
    for name, score in setups["consensus"][1]["alone_fit"].items():
        results[f"{name}_masks_on_fused_boxes"] = {
            "kaggle_fit": score, "start_thresholds": setups["consensus"][1]["alone"][name]}
    results["seconds"] = time.perf_counter() - start
    for entry, r in results.items():
        if isinstance(r, dict):
            rows.append((entry, _fmt(r.get("kaggle_fit")), _fmt(r.get("kaggle_crossfit")),
                         _fmt(r.get("equal_weights_fit")), _fmt(r.get("box_AP50")),
                         ";".join(f"{k}={v:.4f}" for k, v in r.get("per_type", {}).items())))
    write_csv(out_dir / "scores.csv", ("entry", "kaggle_fit", "kaggle_crossfit",
                                       "kaggle_equal_weights", "box_AP50", "per_type"), rows)
    write_json(out_dir / "scores.json", results)
    fitted = apply_fit(copy.deepcopy(manifest), box_w, setups.get(
        manifest.setup if manifest.setup in setups else "consensus")[1])
    save_manifest(_absolute_runs(fitted), out_dir / "manifest_fitted.yaml")
    _overlays(out_dir, cache[0], setups, part1, ens)
    return results


def score_setup1(part1, cache, classes: list[str], device: str) -> dict:
    """Set-up 1 (one Mask R-CNN + NMS): part 1's post-processing with the run's own saved
    thresholds, re-tuned on the whole validation split (as set-ups 2-3 are) and cross-fitted."""
    raws = [predict_raw(part1.net, part1.cfg, [im], device)[0] for _, im, _, _ in cache]
    gts = [gt for _, _, gt, _ in cache]
    types = [r.cell_type for r, _, _, _ in cache]
    pcfg = part1.cfg.get("postprocess", {})
    start = PostprocessParams.from_config(pcfg)

    def score(idx, params) -> list[float]:
        return [kaggle_score(instances_to_idmap(finalize_part1(raws[i], params, classes)), gts[i])
                for i in idx]

    every = list(range(len(raws)))
    tuned = tune_params(raws, gts, types, pcfg.get("search", {}), start)
    cross = []
    for fit_idx, test_idx in crossfit_halves(len(raws)):
        half = tune_params([raws[i] for i in fit_idx], [gts[i] for i in fit_idx],
                           [types[i] for i in fit_idx], pcfg.get("search", {}), start)
        cross += score(test_idx, half)
    return {"kaggle_fit": float(np.mean(score(every, tuned))),
            "kaggle_crossfit": float(np.mean(cross)) if cross else float("nan"),
            "kaggle_run_params": float(np.mean(score(every, part1.params))),
            "member": part1.spec.name}


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


def _absolute_runs(manifest: Manifest) -> Manifest:
    for m in manifest.members:
        m.run = str(manifest.run_path(m).resolve())
    return manifest


def _overlays(out_dir: Path, first, setups, part1, ens) -> None:
    rec, image, gt, _ = first
    inst1 = finalize_part1(predict_raw(part1.net, part1.cfg, [image], part1.device)[0],
                           part1.params, ens.classes())
    save_overlay(out_dir / "overlays" / f"{rec.image_id}_setup1_nms.png", image, inst1, gt)
    for setup, (images, fit) in setups.items():
        params = params_for(fit["thresholds"], images[0].cell_type)
        inst = finalize(images[0].raw, fit["weights"], params)
        save_overlay(out_dir / "overlays" / f"{rec.image_id}_{setup}.png", image, inst, gt)
        for name in fit["weights"]:
            one = finalize(images[0].raw, {name: 1.0}, params)
            save_overlay(out_dir / "overlays" / f"{rec.image_id}_{setup}_{name}_only.png",
                         image, one, gt)


def submit_ensemble(manifest_path: str | Path, images_dir: str | Path, out: str | Path,
                    device: str = "auto") -> int:
    """Predict every image with the manifest's set-up and write a validated submission."""
    manifest = load_manifest(manifest_path)
    ens = EnsembleMembers(manifest, device)
    members = ens.members if manifest.setup == "consensus" else [
        m for m in ens.members if m.spec.kind == "maskrcnn"]
    if manifest.setup == "nms":
        members = members[:1]
    weights = {m.spec.name: m.spec.mask_weight for m in members}
    images = list_images(images_dir)
    rles = {}
    for image_id, path in images:
        image = read_gray_uint8(path)
        if manifest.setup == "nms":
            m = members[0]
            inst = finalize_part1(predict_raw(m.net, m.cfg, [image], device)[0], m.params,
                                  ens.classes())
        else:
            raw = mask_sources(members, image, detect(members, image), manifest)
            inst = finalize(raw, weights,
                            params_for(manifest.thresholds, image_type(raw, ens.classes())))
        rles[image_id] = instances_to_rles(inst)
    write_validated_submission(out, rles, [i for i, _ in images],
                               image_sizes_from_folder(images_dir))
    print(f"{sum(len(r) for r in rles.values())} instances, {len(images)} images -> {out} "
          "(validated)")
    return 0
