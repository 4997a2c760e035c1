"""The paper's three set-ups scored from one manifest, and the submission of a fitted manifest.

One manifest names every member; the set-ups are read off it:

1. ``nms``: the first instance model (Mask R-CNN) alone with its own post-processing, its
   thresholds re-tuned on the validation split like the other set-ups (the run's own saved
   ones are scored too);
2. ``mask_vote``: every instance model and its flips: WBF of their boxes, their mask heads'
   probabilities voted on the fused boxes;
3. ``consensus``: every member: detector boxes (YOLOX + Mask R-CNN) fused, every mask source
   (Mask R-CNN, UPerNet crop, UPerNet full) voted.

Each is fitted (weights, per-type thresholds) on the members' validation split and scored
in-sample and cross-fitted; every member is also scored alone where it can be.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemblab.ensemble.manifest import Manifest, save_manifest
from ensemblab.errors import ConfigError
from ensemblab.io import write_csv, write_json
from ensemblab.metrics.instance import kaggle_score
from ensemblab.projects.sartorius_cells.data import (
    CellRecord,
    held_out_records,
    image_sizes_from_folder,
    list_images,
    load_records,
    read_gray_uint8,
    split_records,
)
from ensemblab.projects.sartorius_cells.ensemble.consensus import (
    EnsembleMember,
    EnsembleMembers,
    detect,
    finalize,
    mask_sources,
    read_manifest,
)
from ensemblab.projects.sartorius_cells.ensemble.fitting import (
    ValImage,
    apply_fit,
    crossfit_halves,
    detector_weights,
    fit_and_score,
    image_type,
    params_for,
    score_images,
    type_params,
)
from ensemblab.projects.sartorius_cells.overlays import save_overlay
from ensemblab.projects.sartorius_cells.postprocess import PostprocessParams, tune_params
from ensemblab.projects.sartorius_cells.streaming import merge_submission, predict_images
from ensemblab.projects.sartorius_cells.structures import (
    Instances,
    instances_to_idmap,
    instances_to_rles,
    masks_to_boxes,
)
from ensemblab.streaming import DEFAULT_WORKERS, Parts


def _instance_models(ens: EnsembleMembers, source) -> list[EnsembleMember]:
    models = ens.instance_models()
    if not models:
        raise ConfigError(f"{source}: the manifest needs at least one member that gives boxes "
                          "and masks (kind maskrcnn)")
    return models


def run_ensemble(manifest_path: str | Path, data_dir: str | Path, out_dir: str | Path,
                 device: str = "auto") -> dict:
    """Fit and score the three set-ups on the validation split; write the table and manifest.

    Writes ``OUT/scores.csv`` + ``OUT/scores.json`` (each set-up and member: in-sample and
    cross-fitted Kaggle score, per cell type; each member's training time when its run
    recorded one), ``OUT/manifest_fitted.yaml`` (fitted weights and thresholds) and
    ``OUT/overlays/<id>_<entry>.png`` for the first validation image.

    When the members' split holds out images (``data.split.test_ids``), every set-up and member
    is also scored on them with what was fitted on the validation images (``kaggle_heldout``):
    images that chose nothing, neither a checkpoint nor a weight nor a threshold.
    """
    out_dir = Path(out_dir)
    manifest = read_manifest(manifest_path)
    ens = EnsembleMembers(manifest, device)
    instance = _instance_models(ens, manifest_path)
    records = load_records(data_dir)
    _, val = split_records(records, ens.split())
    if not val:
        raise ConfigError(f"{manifest_path}: the members' split has no validation images")
    start = time.perf_counter()
    cache = _detections(ens, val)
    held = _detections(ens, held_out_records(records, ens.split()))
    box_w, box_ap = detector_weights({d.record.image_id: d.sets for d in cache},
                                     {d.record.image_id: masks_to_boxes(d.record.load_masks())
                                      for d in cache})
    for m in ens.members:
        m.spec.box_weight = box_w.get(m.spec.name, m.spec.box_weight)
    grid = manifest.fusion["search"]
    groups = {"mask_vote": instance, "consensus": ens.members}
    alone = [m for m in ens.members if m.member.kind.standalone]
    fit_images, fit_alone = _mask_sources(groups, alone, cache, manifest)
    held_images, held_alone = _mask_sources(groups, alone, held, manifest)
    setups = {}
    for setup, members in groups.items():
        images = fit_images[setup]
        sources = [m.spec.name for m in members if m.votes]
        fit = fit_and_score(images, sources, manifest.thresholds, grid)
        if held:
            test = held_images[setup]
            fit["kaggle_heldout"] = float(np.mean(score_images(
                test, fit["weights"], type_params(fit["thresholds"], test))))
        setups[setup] = (images, fit)
    results = {"setup1_nms": score_setup1(instance[0], cache, held),
               "setup2_mask_vote": setups["mask_vote"][1],
               "setup3_consensus": setups["consensus"][1]}
    for m in alone:
        results[f"{m.spec.name}_alone"] = {
            f"kaggle_{key}": float(np.mean(scores[m.spec.name]))
            for key, scores in (("fit", fit_alone), ("heldout", held_alone))
            if scores[m.spec.name]}
    for name, ap in box_ap.items():
        results[f"{name}_boxes"] = {"box_AP50": ap, "box_weight": box_w.get(name, 1.0)}
    for name, score in setups["consensus"][1]["alone_fit"].items():
        results[f"{name}_masks_on_fused_boxes"] = {
            "kaggle_fit": score, "start_thresholds": setups["consensus"][1]["alone"][name]}
    results["train_seconds"] = {m.spec.name: _train_seconds(manifest, m) for m in ens.members}
    results["seconds"] = time.perf_counter() - start
    _write_tables(out_dir, results)
    fitted = apply_fit(copy.deepcopy(manifest), box_w, setups.get(
        manifest.setup, setups["consensus"])[1])
    save_manifest(_absolute_runs(fitted), out_dir / "manifest_fitted.yaml")
    _overlays(out_dir, cache[0], setups, instance[0], ens)
    return results


@dataclass
class Detected:
    """One labelled image with every detector's boxes (``detect``) and each instance model's
    raw detections (kept: set-up 1 and the members alone are scored from them)."""

    record: CellRecord
    image: np.ndarray
    gt: np.ndarray
    sets: list[tuple]
    raws: dict[str, Instances]


def _detections(ens: EnsembleMembers, records) -> list[Detected]:
    cache = []
    for rec in records:
        image = rec.load_image()
        sets = detect(ens.members, image)
        raws = {m.spec.name: m.member.raw(image) for m in ens.instance_models()}
        cache.append(Detected(rec, image, rec.load_idmap(), sets, raws))
    return cache


def _alone(m: EnsembleMember, d: Detected) -> Instances:
    raw = d.raws.get(m.spec.name)
    return m.member.instances(d.image) if raw is None else m.member.finalize(raw)


def _mask_sources(groups: dict[str, list[EnsembleMember]], alone: list[EnsembleMember],
                  cache: list[Detected], manifest: Manifest
                  ) -> tuple[dict[str, list[ValImage]], dict[str, list[float]]]:
    """Per set-up, the cached images with its members' mask sources on its fused boxes; per
    standalone member, its Kaggle score alone on each image. One image at a time, so a
    member's network pass on an image serves every set-up (the members memoise it)."""
    images = {setup: [] for setup in groups}
    scores = {m.spec.name: [] for m in alone}
    for d in cache:
        for setup, members in groups.items():
            names = {m.spec.name for m in members}
            raw = mask_sources(members, d.image, [s for s in d.sets if s[0] in names], manifest)
            images[setup].append(ValImage(d.record.image_id, d.record.cell_type, d.gt, raw))
        for m in alone:
            scores[m.spec.name].append(kaggle_score(instances_to_idmap(_alone(m, d)), d.gt))
    return images, scores


def score_setup1(first: EnsembleMember, cache: list[Detected], held=()) -> dict:
    """Set-up 1 (one Mask R-CNN + NMS): its own post-processing with the run's saved
    thresholds, re-tuned on the whole validation split (as set-ups 2-3 are) and cross-fitted;
    with ``held`` (cached held-out images) also scored there with the validation-tuned
    thresholds."""
    member, name = first.member, first.spec.name
    raws = [d.raws[name] for d in cache]
    gts = [d.gt for d in cache]
    types = [d.record.cell_type for d in cache]
    pcfg = member.cfg["postprocess"]
    start = PostprocessParams.from_config(pcfg)

    def score(idx, params) -> list[float]:
        return [kaggle_score(instances_to_idmap(member.finalize(raws[i], params)), gts[i])
                for i in idx]

    every = list(range(len(raws)))
    tuned = tune_params(raws, gts, types, pcfg["search"], start)
    cross = []
    for fit_idx, test_idx in crossfit_halves(len(raws)):
        half = tune_params([raws[i] for i in fit_idx], [gts[i] for i in fit_idx],
                           [types[i] for i in fit_idx], pcfg["search"], start)
        cross += score(test_idx, half)
    per_image = score(every, tuned)
    per_type = {t: float(np.mean([s for s, u in zip(per_image, types) if u == t]))
                for t in sorted(set(types))}
    result = {"kaggle_fit": float(np.mean(per_image)),
              "kaggle_crossfit": float(np.mean(cross)) if cross else float("nan"),
              "kaggle_run_params": float(np.mean(score(every, member.params))),
              "per_type": per_type, "member": name}
    if held:
        result["kaggle_heldout"] = float(np.mean(
            [kaggle_score(instances_to_idmap(member.finalize(d.raws[name], tuned)), d.gt)
             for d in held]))
    return result


def _train_seconds(manifest: Manifest, m: EnsembleMember) -> float | None:
    path = manifest.run_path(m.spec) / "train_time.json"
    return json.loads(path.read_text())["seconds"] if path.is_file() else None


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


def _write_tables(out_dir: Path, results: dict) -> None:
    rows = [(entry, _fmt(r.get("kaggle_fit")), _fmt(r.get("kaggle_crossfit")),
             _fmt(r.get("kaggle_heldout")), _fmt(r.get("equal_weights_fit")),
             _fmt(r.get("box_AP50")),
             ";".join(f"{k}={v:.4f}" for k, v in r.get("per_type", {}).items()))
            for entry, r in results.items() if isinstance(r, dict) and entry != "train_seconds"]
    write_csv(out_dir / "scores.csv", ("entry", "kaggle_fit", "kaggle_crossfit",
                                       "kaggle_heldout", "kaggle_equal_weights", "box_AP50",
                                       "per_type"), rows)
    write_json(out_dir / "scores.json", results)


def _absolute_runs(manifest: Manifest) -> Manifest:
    for m in manifest.members:
        m.run = str(manifest.run_path(m).resolve())
    return manifest


def _overlays(out_dir: Path, first: Detected, setups, instance: EnsembleMember, ens) -> None:
    rec, image, gt = first.record, first.image, first.gt
    save_overlay(out_dir / "overlays" / f"{rec.image_id}_setup1_nms.png", image,
                 _alone(instance, first), gt)
    for setup, (images, fit) in setups.items():
        params = params_for(fit["thresholds"], images[0].cell_type)
        inst = finalize(images[0].raw, fit["weights"], params)
        save_overlay(out_dir / "overlays" / f"{rec.image_id}_{setup}.png", image, inst, gt)
        for name in fit["weights"]:
            one = finalize(images[0].raw, {name: 1.0}, params)
            save_overlay(out_dir / "overlays" / f"{rec.image_id}_{setup}_{name}_only.png",
                         image, one, gt)


def submit_ensemble(manifest_path: str | Path, images_dir: str | Path, out: str | Path,
                    device: str = "auto", resume: bool = False,
                    workers: int = DEFAULT_WORKERS) -> int:
    """Predict every image with the manifest's set-up and write a validated submission.

    Images are read lazily and predicted one at a time, each image's RLEs written to its part
    as soon as it is done (:mod:`...streaming`); ``resume`` skips the images whose part a killed
    run left.
    """
    manifest = read_manifest(manifest_path)
    ens = EnsembleMembers(manifest, device)
    members = ens.members if manifest.setup == "consensus" else _instance_models(
        ens, manifest_path)
    weights = {m.spec.name: m.spec.mask_weight for m in members}
    images = list_images(images_dir)
    parts = Parts(out)

    def image_rles(k: int, path: Path, image: np.ndarray) -> int:
        if manifest.setup == "nms":
            inst = members[0].member.instances(image)
        else:
            raw = mask_sources(members, image, detect(members, image), manifest)
            inst = finalize(raw, weights,
                            params_for(manifest.thresholds, image_type(raw, ens.classes())))
        rles = instances_to_rles(inst)
        parts.write(images[k][0], rles)
        return len(rles)

    predict_images(images, read_gray_uint8, image_rles, parts, resume, device, workers=workers)
    n = merge_submission(parts, [i for i, _ in images], image_sizes_from_folder(images_dir))
    print(f"{n} instances, {len(images)} images -> {out} "
          f"(validated, set-up {manifest.setup})")
    return 0
