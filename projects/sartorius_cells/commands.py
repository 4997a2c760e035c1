"""The verbs of ``ensemblab sartorius_cells``: plain arguments in, an exit status out.

``train`` / ``evaluate`` / ``predict`` / ``submit --run`` work for every member kind the
registry holds (``model.kind`` of the config or run); ``ensemble`` trains the manifest's members
that have not finished yet, then fits and scores the paper's three set-ups; ``submit
--manifest`` writes the fitted ensemble's submission. ``cli.py`` only parses arguments.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from pathlib import Path

import torch

from ensemblab.cli_common import ALL_ITEMS, HELD_OUT_SPLIT, resolve_split, scored_items_line
from ensemblab.config import check_choices, find_config, load_config, load_run_config
from ensemblab.engine import prepare_run_dir, write_run_record
from ensemblab.engine.predict_ddp import processes, rank_device
from ensemblab.ensemble.manifest import Manifest
from ensemblab.ensemble.submission import validate_submission
from ensemblab.errors import ConfigError
from ensemblab.io import write_csv, write_json, write_json_list
from ensemblab.jobs import Job, run_parallel, training_progress
from ensemblab.projects.sartorius_cells import ENSEMBLE, MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.data import (
    check_cell_types,
    image_reader,
    image_sizes_from_csv,
    image_sizes_from_folder,
    list_images,
    load_records,
    split_records,
)
from ensemblab.projects.sartorius_cells.detectron2 import commands as d2_commands
from ensemblab.projects.sartorius_cells.detectron2.coco_results import (
    RESULTS_FILE,
    coco_image_id,
    instances_to_coco,
)
from ensemblab.projects.sartorius_cells.detectron2.config import flatten
from ensemblab.projects.sartorius_cells.ensemble.consensus import read_manifest
from ensemblab.projects.sartorius_cells.ensemble.setups import run_ensemble, submit_ensemble
from ensemblab.projects.sartorius_cells.members import load_member, member_kind, resolve_classes
from ensemblab.projects.sartorius_cells.overlays import save_overlay
from ensemblab.projects.sartorius_cells.postprocess import image_cell_type
from ensemblab.projects.sartorius_cells.streaming import merge_submission, predict_images
from ensemblab.projects.sartorius_cells.structures import instances_to_rles
from ensemblab.streaming import DEFAULT_WORKERS, Parts

CONFIG_DIR = Path(__file__).parent / "configs"
TRAIN_TIME_FILE = "train_time.json"
PREDICTIONS_FILE = "predictions.csv"


def resolve_config(name: str | Path) -> Path:
    """A member config: a file, or a bare name in ``configs/members/``."""
    return find_config(name, CONFIG_DIR / "members")


def resolve_manifest(name: str | Path) -> Path:
    """An ensemble manifest: a file, or a bare name in ``configs/ensembles/``."""
    return find_config(name, CONFIG_DIR / "ensembles")


def _need(value, what: str):
    if value is None:
        raise ConfigError(f"{what} needs --data DIR")
    return value


def train(config: str | Path, data: str | Path | None, out: str | Path, device: str = "auto",
          resume: bool = False, overrides: list[str] | None = None,
          progress_bar: bool = True, init: str | Path | None = None) -> Path:
    """Train the member a config describes (its ``model.kind``) into the run folder ``out``.

    ``init`` (a Mask R-CNN run, e.g. an imported detectron2 checkpoint) replaces the config's
    ``model`` section with that run's and starts from its weights (fine-tuning).

    Writes ``OUT/config.yaml`` (classes resolved from the data, ``data.root``: the dataset, so
    ``evaluate --split auto`` knows it), the checkpoints, and ``OUT/train_time.json`` (wall
    seconds, threads) when training ends.
    """
    _need(data, "train")
    path = resolve_config(config)
    cfg = load_config(path, overrides or [])
    check_choices(cfg, member_kind(str(cfg["model"]["kind"])).choices, str(path))
    cfg["data"]["root"] = str(Path(data).resolve())
    if init:
        cfg = d2_commands.init_from_run(cfg, init)
    kind = member_kind(str(cfg["model"]["kind"]))
    records = load_records(data)
    cfg = resolve_classes(cfg, records)
    check_cell_types(*split_records(records, cfg["data"]["split"]), cfg["model"]["classes"],
                     cfg["data"]["allow_unseen"])
    run_dir = prepare_run_dir(out, cfg, resume=resume, project=PROJECT, kind=MEMBER)
    time_file = run_dir / TRAIN_TIME_FILE
    before = json.loads(time_file.read_text())["seconds"] if resume and time_file.is_file() else 0
    start = time.perf_counter()
    kind.train(cfg, records, run_dir, device, resume, progress_bar)
    write_json(time_file, {"seconds": before + time.perf_counter() - start,
                           "threads": torch.get_num_threads(), "device": device})
    return run_dir


def evaluate(run: str | Path, data: str | Path | None, split: str = "auto",
             device: str = "auto", untrained: bool = False) -> dict:
    """Write ``RUN/metrics.json`` (``metrics_untrained.json`` for the initialisation).

    ``split``: ``val`` (the run's validation images), ``all`` (every image), or ``auto``
    (:func:`ensemblab.cli_common.resolve_split`): ``val`` on the dataset the run was trained on
    (its ``data.root``), ``all`` on any other, and on a run that did not record its dataset.
    Images are read as the member's network takes them (:func:`.data.image_reader`).
    """
    _need(data, "evaluate")
    member = load_member(run, device, untrained=untrained, verb="evaluate")
    split = resolve_split(split, data, member.cfg["data"].get("root"))
    if split not in (HELD_OUT_SPLIT, ALL_ITEMS):
        raise ConfigError(f"--split {split!r}: one of auto, {HELD_OUT_SPLIT}, {ALL_ITEMS}")
    records = load_records(data)
    if split == HELD_OUT_SPLIT:
        _, records = split_records(records, member.cfg["data"]["split"])
    reader = image_reader(member.cfg["model"])
    records = [dataclasses.replace(r, reader=reader) for r in records]
    print(scored_items_line(len(records), data, split), flush=True)
    metrics = member.kind.evaluate(member, records)
    metrics.update({"kind": member.kind.name, "split": split, "data": str(data),
                    "untrained": untrained})
    path = Path(run) / ("metrics_untrained.json" if untrained else "metrics.json")
    write_json(path, metrics)
    print(f"{member.kind.summary(metrics)}; {metrics['n_images']} images -> {path}")
    return metrics


def predict(run: str | Path, input_dir: str | Path, out: str | Path, device: str = "auto",
            n_overlays: int = 4, fmt: str = "kaggle", runtime: str = "torch",
            precision: str = "fp32", devices: int = 1, num_nodes: int = 1,
            strategy: str = "auto", resume: bool = False,
            workers: int = DEFAULT_WORKERS) -> int | None:
    """``OUT/predictions.csv`` (``id,predicted,score,cell_type``) and ``OUT/overlays/*.png``;
    ``fmt="coco"``: ``OUT/coco_instances_results.json``, the raw detections as COCO results.
    Images are read lazily as the member's network takes them (:func:`.data.image_reader`),
    one at a time; each image's rows or records go to its part file as soon as it is done
    and the final file is merged from the parts in input order (:mod:`.streaming`), so
    memory does not grow with the number of images; a progress line is printed at least
    every 30 s. ``resume``: skip the images whose part a killed run left.
    ``runtime="onnx"``: a UPerNet or Mask R-CNN member's exported graphs through onnxruntime on the
    CPU (:func:`.members.deploy.onnx_member`). ``precision="bf16"``: a Mask R-CNN member's
    fast path (:mod:`.members.maskrcnn_bf16`); ``fp32`` is the exact one. ``devices`` x
    ``num_nodes`` > 1 (``strategy`` ``auto`` or ``ddp``): each rank predicts a shard of the
    images through Lightning and rank 0 writes the same files
    (:mod:`ensemblab.engine.predict_ddp`); None on the other ranks."""
    sharded = processes(devices, num_nodes) > 1
    if runtime == "onnx":
        from ensemblab.projects.sartorius_cells.members.deploy import onnx_member

        if precision != "fp32":
            raise ConfigError(f"--precision {precision}: the onnx runtime runs float32 only")
        member = onnx_member(run)
    else:
        member = load_member(run, rank_device(device) if sharded else device, verb="predict")
        member.use_precision(precision)
    read = image_reader(member.cfg["model"])
    out = Path(out)
    images = list_images(input_dir)
    parts = Parts(out / (RESULTS_FILE if fmt == "coco" else PREDICTIONS_FILE))

    def predict_image(k: int, path: Path, image) -> int:
        """Write the image's COCO records or ``predictions.csv`` rows as its part (and its
        overlay first); returns their number."""
        image_id = images[k][0]
        if fmt == "coco":
            result = instances_to_coco(coco_image_id(image_id), member.raw(image))
        else:
            result = _kaggle_rows(member, image_id, image,
                                  out / "overlays" / f"{image_id}.png" if k < n_overlays
                                  else None)
        parts.write(image_id, result)  # last: its existence marks the image done
        return len(result)

    if not predict_images(images, read, predict_image, parts, resume, device, devices,
                          num_nodes, strategy, workers):
        return None  # rank 0 writes the merged file
    ids = [image_id for image_id, _ in images]
    per_image = parts.results(ids)
    if fmt == "coco":
        counted = _Counted(per_image, lambda _: 1)
        write_json_list(parts.final, counted)
        parts.remove()
        print(f"{counted.n} instances -> {parts.final}")
        return 0
    counted = _Counted(per_image, lambda row: 1 if row[1] else 0)
    write_csv(parts.final, ("id", "predicted", "score", "cell_type"), counted)
    parts.remove()
    print(f"{counted.n} instances in {len(ids)} images -> {parts.final}")
    return 0


class _Counted:
    """The items of per-image lists, one at a time, counting ``count(item)`` over them."""

    def __init__(self, per_image, count):
        self.per_image, self.count, self.n = per_image, count, 0

    def __iter__(self):
        for items in self.per_image:
            for item in items:
                self.n += self.count(item)
                yield item


def _kaggle_rows(member, image_id: str, image, overlay: Path | None) -> list[list]:
    """``predictions.csv`` rows ``[id, predicted, score, cell_type]`` of one image's
    post-processed instances (one row with an empty mask when there is none); draws the
    overlay when ``overlay`` is a path."""
    inst = member.instances(image)
    cell_type = image_cell_type(inst, member.classes)
    rles = instances_to_rles(inst)
    if overlay is not None:
        save_overlay(overlay, image, inst)
    if not rles:
        return [[image_id, "", "", cell_type or ""]]
    return [[image_id, r, f"{s:.4f}", cell_type] for r, s in zip(rles, inst.scores)]


def import_detectron2(weights: str | Path, d2_config: str | Path, out: str | Path,
                      classes: list[str] | None = None,
                      config: str | Path = "paper_maskrcnn_r50") -> Path:
    """A Mask R-CNN run folder from a detectron2 checkpoint + config; ``config`` (a member
    config) gives the data split, training and post-processing settings."""
    run = d2_commands.import_detectron2(weights, d2_config, out,
                                        load_config(resolve_config(config)), classes)
    print(f"imported {weights} ({d2_config}) -> {run}")
    return run


def export_detectron2(run: str | Path, out: str | Path) -> tuple[Path, Path]:
    """A Mask R-CNN run as a detectron2 checkpoint ``out`` and config ``out`` .yaml."""
    checkpoint, config = d2_commands.export_detectron2(run, out)
    print(f"{run} -> {checkpoint}, {config}")
    return checkpoint, config


def submit_run(run: str | Path, input_dir: str | Path, out: str | Path,
               device: str = "auto", devices: int = 1, num_nodes: int = 1,
               strategy: str = "auto", resume: bool = False,
               workers: int = DEFAULT_WORKERS) -> int:
    """Predict every test image with one member and write a validated submission, streaming
    as :func:`predict` does (each image's RLEs in ``.<name>.parts/`` beside ``OUT``;
    ``resume`` skips the images done); on several devices or nodes ``OUT`` is written by
    rank 0."""
    sharded = processes(devices, num_nodes) > 1
    member = load_member(run, rank_device(device) if sharded else device, verb="submit")
    read = image_reader(member.cfg["model"])
    images = list_images(input_dir)
    out = Path(out)
    parts = Parts(out)

    def image_rles(k: int, path: Path, image) -> int:
        rles = instances_to_rles(member.instances(image))
        parts.write(images[k][0], rles)
        return len(rles)

    if not predict_images(images, read, image_rles, parts, resume, device, devices, num_nodes,
                          strategy, workers, shard_dir=out.parent / f".{out.name}.shards"):
        return 0  # rank 0 writes the submission
    n = merge_submission(parts, [i for i, _ in images], image_sizes_from_folder(input_dir))
    print(f"{n} instances, {len(images)} images -> {out} (validated)")
    return 0


def submit_manifest(manifest: str | Path, input_dir: str | Path, out: str | Path,
                    device: str = "auto", resume: bool = False,
                    workers: int = DEFAULT_WORKERS) -> int:
    """Predict every test image with a (fitted) ensemble and write a validated submission,
    one image at a time (``resume``: skip the images a killed run finished)."""
    return submit_ensemble(resolve_manifest(manifest), input_dir, out, device, resume, workers)


def validate(csv: str | Path, images: str | Path | None, sizes: str | Path | None) -> int:
    """Print every violation of a submission; exit status 1 when there is any."""
    table = image_sizes_from_folder(images) if images else image_sizes_from_csv(sizes)
    problems = validate_submission(csv, table)
    for problem in problems:
        print(problem)
    print(f"{csv}: {'INVALID, ' + str(len(problems)) + ' problems' if problems else 'valid'}")
    return 1 if problems else 0


def _check_finished(spec, run: Path) -> None:
    """A finished run is reused only if it trained with the settings the manifest gives now
    (its ``config`` with its overrides); keys left empty there (``null``: the data folder, the
    class list) are filled in at training and not compared.

    Raises:
        ConfigError: naming the member, the run and the first keys that differ.
    """
    if not spec.config or not (run / "config.yaml").is_file():
        return
    config, *overrides = shlex.split(spec.config)
    wanted = flatten(load_config(resolve_config(config), overrides))
    saved = flatten(load_run_config(run))
    changed = [k for k, v in wanted.items() if v is not None and saved.get(k) != v]
    if changed:
        shown = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted[k]!r} now" for k in changed[:3])
        raise ConfigError(f"member {spec.name!r}: {run} finished with other settings than "
                          f"{spec.config!r} gives now ({shown}); give another --out or remove "
                          "that run to retrain it")


def train_missing_members(manifest: Manifest, data: str | Path, device: str = "auto",
                          progress_bar: bool = True, jobs: int = 1) -> list[str]:
    """Train every member whose run has not finished (no ``train_time.json``) with the
    manifest's ``config`` (``NAME [key=value ...]``), resuming a started run.

    Args:
        manifest: the ensemble manifest.
        data: the dataset folder.
        device: ``auto | cpu | cuda | cuda:N``.
        progress_bar: show Lightning's progress bar (``jobs`` 1 only).
        jobs: members trained at a time, each as its own process with its share of the cores
            and its output in ``RUN/train.log`` (:func:`ensemblab.jobs.run_parallel`); 1 trains
            them one after another in this process.

    Returns:
        The names of the members trained.
    """
    todo = []
    for spec in manifest.members:
        run = manifest.run_path(spec)
        if (run / TRAIN_TIME_FILE).is_file():
            _check_finished(spec, run)
            continue
        if not spec.config:
            raise ConfigError(f"member {spec.name!r}: {run} holds no finished run and the "
                              "manifest gives no config to train it")
        todo.append((spec, run))
    if jobs > 1:
        parallel = []
        for spec, run in todo:
            config, *overrides = shlex.split(spec.config)
            argv = ["sartorius_cells", "train", "--config", config, "--data", str(data),
                    "--out", str(run), "--device", device, *overrides]
            if (run / "config.yaml").is_file():
                argv.append("--resume")
            parallel.append(Job(spec.name, argv, run / "train.log", training_progress(run)))
        print(f"training {len(todo)} members, {jobs} at a time", flush=True)
        run_parallel(parallel, jobs)
        return [spec.name for spec, _ in todo]
    for spec, run in todo:
        config, *overrides = shlex.split(spec.config)
        print(f"training member {spec.name} ({spec.config}) -> {run}", flush=True)
        train(config, data, run, device, resume=(run / "config.yaml").is_file(),
              overrides=overrides, progress_bar=progress_bar)
    return [spec.name for spec, _ in todo]


def member_manifest(path: str | Path, out: str | Path, seed: int | None = None,
                    overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """The manifest at ``path`` with every member trained at ``seed`` (``seed=N`` appended to
    its ``config``) and with ``overrides`` (``key=value``, e.g. a held-out fold
    ``data.split.test_ids=[set1,set6]``) applied to every member's config (checked against
    each member's config before anything trains). Each member's run
    moves to ``OUT/members/<name>``, so the ensembles of several seeds or folds sit in their own
    output folders. Written to ``OUT/manifest_members.yaml``; returns that path."""
    from ensemblab.ensemble.manifest import save_manifest

    base = read_manifest(path)
    extra = ([f"seed={seed}"] if seed is not None else []) + list(overrides)
    members = []
    for m in base.members:
        if not m.config:
            raise ConfigError(f"{path}: member {m.name!r} gives no config to train it at a seed "
                              "or with overrides")
        config, *own = shlex.split(m.config)
        load_config(resolve_config(config), [*own, *extra])  # a wrong key fails before training
        members.append(dataclasses.replace(m, run=str(Path(out) / "members" / m.name),
                                           config=shlex.join([config, *own, *extra])))
    target = Path(out) / "manifest_members.yaml"
    if target.is_file():
        before = {m.name: shlex.split(m.config) for m in read_manifest(target).members}
        for m in members:
            if before.get(m.name, shlex.split(m.config)) != shlex.split(m.config):
                raise ConfigError(f"{target}: member {m.name!r} was trained there with "
                                  f"{shlex.join(before[m.name])!r}, not {m.config!r}; give "
                                  "another --out")
    Path(out).mkdir(parents=True, exist_ok=True)
    return save_manifest(dataclasses.replace(base, members=members), target)


def ensemble(manifest: str | Path, data: str | Path | None, out: str | Path,
             device: str = "auto", progress_bar: bool = True, jobs: int = 1,
             seed: int | None = None, overrides: list[str] | None = None) -> dict:
    """Train the manifest's unfinished members (``jobs`` at a time, see
    :func:`train_missing_members`), then fit and score the three set-ups.

    With ``seed`` or ``overrides`` every member trains at that seed and with those config
    overrides into ``OUT/members/<name>`` (:func:`member_manifest`).

    Writes ``OUT/scores.csv``, ``OUT/scores.json``, ``OUT/manifest_fitted.yaml`` and overlays.
    """
    _need(data, "ensemble")
    path = resolve_manifest(manifest)
    if seed is not None or overrides:
        path = member_manifest(path, out, seed, overrides or [])
    train_missing_members(read_manifest(path), data, device, progress_bar, jobs)
    results = run_ensemble(path, data, out, device)
    write_run_record(out, PROJECT, ENSEMBLE)
    for entry, r in results.items():
        if isinstance(r, dict) and entry != "train_seconds":
            shown = {k: round(v, 4) for k, v in r.items() if isinstance(v, float)}
            print(f"{entry:40s} {shown}")
    print(f"-> {Path(out) / 'scores.csv'}, {Path(out) / 'manifest_fitted.yaml'}")
    return results


def seeds(ensembles: list[str | Path], out: str | Path) -> dict:
    """Mean ± std over seeds of ``ensemble`` output folders (one per seed): ``OUT/seeds.md``,
    ``OUT/seeds.json`` (:func:`...ensemble.seeds.seed_summary`)."""
    from ensemblab.projects.sartorius_cells.ensemble.seeds import seed_summary

    summary = seed_summary(ensembles, out)
    print(summary["text"], end="")
    print(f"-> {Path(out) / 'seeds.md'}")
    return summary
