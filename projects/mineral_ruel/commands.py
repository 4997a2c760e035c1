"""The verbs behind ``ensemblab mineral_ruel ...``, callable from Python (demo, tests).

- :func:`train`: one learner (two-stage Lightning run) into a run folder.
- :func:`evaluate`: a learner on a split of whole images -> ``RUN/metrics.json``.
- :func:`ensemble`: rank learners on the hold-out, score RUEL-n-PV/WV on the test split.
- :func:`predict`: class-index PNGs and colour overlays from a learner or an ensemble.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ensemblab.backbones import lightning_precision
from ensemblab.cli_common import resolve_split, scored_items_line
from ensemblab.config import find_config, load_config
from ensemblab.data.images import IMAGE_EXTS, read_label_png, write_png
from ensemblab.engine import (
    build_trainer,
    check_run,
    fit,
    lightning_accelerator,
    prepare_run_dir,
    seed_everything,
    write_run_record,
)
from ensemblab.engine.predict_ddp import predict_items, processes, rank_device
from ensemblab.errors import ConfigError, DataError, EnsemblabError
from ensemblab.io import atomic_write_text, write_json
from ensemblab.memory import peak_rss_bytes
from ensemblab.metrics.semantic import semantic_scores
from ensemblab.projects.mineral_ruel import (
    ENSEMBLE,
    ENSEMBLE_MARKERS,
    LEARNER,
    PROJECT,
    ruel,
)
from ensemblab.projects.mineral_ruel.classes import resolve_classes
from ensemblab.projects.mineral_ruel.data import holdout_split, load_image, split_pairs
from ensemblab.projects.mineral_ruel.inference import Learner, check_compatible, module_from_config
from ensemblab.projects.mineral_ruel.losses import LOSSES
from ensemblab.projects.mineral_ruel.models import LEARNERS
from ensemblab.projects.mineral_ruel.module import OPTIMIZERS, MineralDataModule
from ensemblab.projects.mineral_ruel.report import summarise, write_results
from ensemblab.projects.mineral_ruel.resunet import ACTIVATIONS
from ensemblab.projects.mineral_ruel.stn import STN_MODES
from ensemblab.projects.mineral_ruel.visual import overlay
from ensemblab.streaming import DEFAULT_WORKERS, input_files, stream_predict
from ensemblab.threads import set_threads

CONFIG_DIR = Path(__file__).parent / "configs"
CHOICES = {"train.optimizer": OPTIMIZERS, "model.arch": LEARNERS.names(),
           "model.activation": ACTIVATIONS, "model.stn": STN_MODES, "loss.name": LOSSES.names()}
"""The choice-valued config keys and their allowed values, checked when a config loads."""
TIMES_HEADER = "image,height,width,seconds\n"
"""The header of ``predict_times.csv``: one row per predicted image."""


def resolve_config(name: str | Path) -> Path:
    """A config file path, or a bare name of a file in ``configs/`` (``cpu_quick``)."""
    return find_config(name, CONFIG_DIR)


def train(config: str, data: str | None, out: str, overrides: Sequence[str] = (),
          device: str = "auto", resume: bool = False, progress_bar: bool = True) -> Path:
    """Train one learner; returns the run folder (``checkpoints/best.ckpt`` = best val mIoU)."""
    cfg = load_config(resolve_config(config), list(overrides), choices=CHOICES)
    data = data or cfg["data"]["root"]
    if not data:
        raise ConfigError("no dataset: give --data DIR (or data.root=DIR)")
    cfg["data"]["root"] = str(data)
    cfg["data"]["classes"] = classes = resolve_classes(cfg["data"]["classes"], data)
    seed_everything(int(cfg["seed"]))
    set_threads(configured=cfg["train"]["threads"])
    d, t = cfg["data"], cfg["train"]
    datamodule = MineralDataModule(
        data, len(classes), tile=d["tile"], scale=d["scale"], holdout=d["holdout"],
        holdout_max_class_share=d["holdout_max_class_share"],
        batch_size=t["batch_size"], frozen_batch_size=t["frozen_batch_size"],
        frozen_epochs=t["frozen_epochs"], crops_per_epoch=d["crops_per_epoch"],
        class_balanced=float(d["class_balanced"]), seed=int(cfg["seed"]),
        workers=d["workers"])
    datamodule.setup()  # reads and validates every training image before a run folder exists
    datamodule.check_labels(classes, d["allow_unseen"])
    run_dir = prepare_run_dir(out, cfg, resume=resume, project=PROJECT, kind=LEARNER)
    module = module_from_config(cfg)
    accelerator, _ = lightning_accelerator(device)
    trainer = build_trainer(run_dir, t["epochs"], device=device, monitor="val/miou", mode="max",
                            precision=lightning_precision(bool(t["bf16"]), accelerator),
                            log_every_n_steps=t["log_every_n_steps"],
                            progress_bar=progress_bar, reload_dataloaders_every_n_epochs=1,
                            num_sanity_val_steps=0)
    start = time.perf_counter()
    fit(trainer, module, datamodule=datamodule, resume=resume)
    seconds = time.perf_counter() - start
    steps = sum(datamodule.steps_per_epoch(e) for e in range(t["epochs"]))
    write_json(run_dir / "train_summary.json", {
        "seconds": seconds, "steps": steps, "seconds_per_step": seconds / max(1, steps),
        "precision": trainer.precision, "train_items_per_epoch": len(datamodule.train_set),
        "holdout_tiles": len(datamodule.rank_set), "epochs": t["epochs"],
        "best_val_miou": _best_score(trainer),
        "classes": len(classes),
        "classes_in_training_masks": [c for c, n in zip(classes, datamodule.class_pixels) if n],
    })
    return run_dir


def _best_score(trainer) -> float | None:
    for cb in trainer.checkpoint_callbacks:
        if cb.monitor and cb.best_model_score is not None:
            return float(cb.best_model_score)
    return None


def labelled_images(pairs, classes: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield validated full-resolution ``(image, mask)`` pairs one at a time."""
    for image_path, mask_path in pairs:
        image = load_image(image_path)
        yield image, read_label_png(mask_path, range(len(classes)), image.shape[:2])


def evaluate(run: str, data: str | None = None, split: str = "auto", device: str = "auto"
             ) -> dict[str, Any]:
    """Score a learner on whole images of ``split``; writes and returns ``RUN/metrics.json``.

    ``auto`` (:func:`ensemblab.cli_common.resolve_split`) is the ``val`` folder (the test split)
    of the learner's own data, and every split folder (``all``) of any other dataset.
    """
    check_run(run, PROJECT, (LEARNER,), "evaluate")
    learner = Learner(run, device)
    root = data or learner.cfg["data"]["root"]
    split = resolve_split(split, data, learner.cfg["data"].get("root"))
    pairs = split_pairs(root, split)
    print(scored_items_line(len(pairs), root, split), flush=True)
    tally = ruel.Tally(len(learner.classes))
    for image, mask in labelled_images(pairs, learner.classes):
        labels, seconds = learner.predict(image)
        tally.add(labels, mask, seconds)
    scores = semantic_scores(tally.cm, learner.classes)
    metrics = {**scores, "split": split, "data": str(root), "n_images": len(tally.seconds),
               "tpi_s": float(np.mean(tally.seconds)), "confusion_matrix": tally.cm.tolist()}
    write_json(learner.run_dir / "metrics.json", metrics)
    return metrics


def ensemble(runs: Sequence[str], data: str | None, out: str, rank_by: str = "miou",
             test_split: str = "val", device: str = "auto") -> dict[str, Any]:
    """Rank ``runs`` on the hold-out, score every learner and RUEL scheme on ``test_split``.

    Writes ``OUT/ensemble.json`` (ranked members, weights, the scheme chosen on the hold-out),
    ``OUT/results.json`` and ``OUT/tables.md``. Returns the manifest.
    """
    if len(runs) < 3:
        raise EnsemblabError(f"RUEL needs at least 3 learners, got {len(runs)}")
    for r in runs:
        check_run(r, PROJECT, (LEARNER,), "ensemble")
    learners = [Learner(r, device) for r in runs]
    if len({lr.name for lr in learners}) != len(learners):
        raise EnsemblabError("run folders must have distinct names")
    classes = check_compatible(learners)
    splits = {(lr.cfg["data"]["holdout"], lr.cfg["data"].get("holdout_max_class_share"),
               lr.cfg["seed"]) for lr in learners}
    if len(splits) != 1:
        raise EnsemblabError("learners were trained with different hold-outs (data.holdout, "
                             f"data.holdout_max_class_share, seed): {sorted(splits, key=str)}; "
                             "ranking needs one shared hold-out")
    root = data or learners[0].cfg["data"]["root"]
    fraction, max_share, seed = splits.pop()
    _, rank_pairs = holdout_split(split_pairs(root, "train"), fraction, int(seed), max_share)
    class_index = ruel.parse_rank_by(rank_by, classes)
    rank_images = list(labelled_images(rank_pairs, classes))
    ranked, scores, maps = ruel.rank_learners(learners, rank_images, class_index, len(classes))
    schemes = ruel.all_schemes(len(ranked))
    rank_cms = ruel.score_schemes(maps, [m for _, m in rank_images], schemes, len(classes))
    holdout_scores = {name: ruel.rank_score(cm, class_index) for name, cm in rank_cms.items()}
    chosen = max(schemes, key=lambda s: holdout_scores[s.name])
    tallies = ruel.evaluate_test(ranked, schemes,
                                 labelled_images(split_pairs(root, test_split), classes),
                                 len(classes))
    rank_label = "mIoU" if class_index is None else classes[class_index]
    rows = summarise(tallies, classes, class_index)
    manifest = {
        "members": [str(lr.run_dir.resolve()) for lr in ranked],
        "rank_by": rank_by, "rank_scores": dict(zip([lr.name for lr in ranked], scores)),
        "holdout_images": [p[0].name for p in rank_pairs],
        "scheme_holdout_scores": holdout_scores, "chosen_scheme": chosen.name,
        "test_split": test_split, "classes": classes,
    }
    write_json(Path(out) / "ensemble.json", manifest)
    write_run_record(out, PROJECT, ENSEMBLE)
    header = (f"## RUEL on {root} (ranked by {rank_by} on {len(rank_pairs)} hold-out training "
              f"images; test = {test_split} split, {rows[chosen.name]['n_images']} images)\n\n"
              f"Ranking: " + ", ".join(f"{lr.name} ({100 * s:.2f})"
                                       for lr, s in zip(ranked, scores))
              + f". Scheme chosen on the hold-out: {chosen.name}.")
    write_results(out, rows, classes, rank_label, header)
    return manifest


def _predictor(run: str, scheme: str | None, device: str, precision: str | None = None,
               runtime: str = "torch"):
    """A function image -> full-resolution label map, from a run or an ensemble folder."""
    record = check_run(run, PROJECT, (LEARNER, ENSEMBLE), "predict", ENSEMBLE_MARKERS)
    if record.kind != ENSEMBLE:
        learner = Learner(run, device, precision=precision, runtime=runtime)
        return (lambda image: learner.predict(image)[0]), learner.classes
    manifest_path = Path(run) / "ensemble.json"
    if not manifest_path.is_file():
        raise DataError(manifest_path, "not found: the ensemble folder lost its manifest")
    manifest = json.loads(manifest_path.read_text())
    name = scheme or manifest["chosen_scheme"]
    try:
        _, n, method = name.split("-")
        chosen = ruel.Scheme(int(n), method.lower())
    except ValueError:
        raise EnsemblabError(f"scheme {name!r} is not of the form RUEL-<n>-PV|WV") from None
    if not 3 <= chosen.n <= len(manifest["members"]) or chosen.method not in ("pv", "wv"):
        raise EnsemblabError(f"scheme {name} not available for {len(manifest['members'])} "
                             "learners")
    members = manifest["members"][:chosen.n]
    for member in members:
        check_run(member, PROJECT, (LEARNER,), "predict")
    learners = [Learner(m, device, precision=precision, runtime=runtime) for m in members]
    classes = check_compatible(learners)

    def predict_fn(image):
        maps = [lr.predict(image)[0] for lr in learners]
        return ruel.vote(np.stack(maps), chosen, len(classes))

    return predict_fn, classes


def predict(run: str, input_path: str, out: str, scheme: str | None = None,
            device: str = "auto", precision: str | None = None, resume: bool = False,
            workers: int = DEFAULT_WORKERS, runtime: str = "torch", devices: int = 1,
            num_nodes: int = 1, strategy: str = "auto") -> list[Path] | None:
    """Segment an image or a folder of images, one image at a time.

    Writes per image ``OUT/<name>_overlay.png`` and then ``OUT/<name>.png`` (class indices,
    the image's own size), each atomically, as soon as the image is done; a row per image
    (``image,height,width,seconds``) is appended to ``OUT/predict_times.csv``, and
    ``OUT/predict_stats.json`` sums them up with the peak resident memory of the process.
    Images are read lazily (:func:`ensemblab.streaming.stream_predict`), so memory does not
    grow with their number; a progress line is printed at least every 30 s. On several
    devices or nodes each rank predicts a shard of the images and writes their PNGs; rank 0
    writes ``predict_times.csv`` (rows in input order) and ``predict_stats.json``
    (:mod:`ensemblab.engine.predict_ddp`).

    Args:
        run: a learner run or an ensemble folder.
        input_path: an image or a folder of images.
        out: the output folder.
        scheme: ``RUEL-<n>-PV|WV`` of an ensemble folder (default: the chosen one).
        device: ``auto | cpu | cuda | cuda:N``.
        precision: ``fp32`` or ``bf16`` (default: the learners' training precision).
        resume: skip the images whose ``OUT/<name>.png`` exists.
        workers: image-reading loader workers asked for (capped by the thread budget).
        runtime: ``torch``, or ``onnx``: each learner's exported ``model.onnx`` through
            onnxruntime on the CPU (``export --format onnx``).
        devices: processes per node, one per device.
        num_nodes: nodes (started by ``torchrun`` or SLURM).
        strategy: ``auto`` or ``ddp``.

    Returns:
        ``OUT/<name>.png`` of every input image, skipped ones included (None on the ranks
        other than 0).
    """
    sharded = processes(devices, num_nodes) > 1
    predict_fn, classes = _predictor(run, scheme, rank_device(device) if sharded else device,
                                     precision, runtime)
    files = input_files(input_path, IMAGE_EXTS)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    times_path = out_dir / "predict_times.csv"
    rows: list[list] = []

    def output_of(path: Path) -> Path:
        return out_dir / f"{path.stem}.png"

    def predict_one(path: Path, image: np.ndarray) -> list:
        """Write the image's PNGs; returns its ``predict_times.csv`` row and the peak RSS."""
        start = time.perf_counter()
        labels = predict_fn(image)
        seconds = time.perf_counter() - start
        write_png(out_dir / f"{path.stem}_overlay.png", overlay(image, labels, len(classes)))
        write_png(output_of(path), labels)  # last: its existence marks the image done
        return [path.name, image.shape[0], image.shape[1], seconds, peak_rss_bytes() / 2**20]

    if sharded:
        todo = [f for f in files if not (resume and output_of(f).is_file())]
        rows = predict_items(todo, load_image, lambda _, path, image: predict_one(path, image),
                             out_dir, device, devices, num_nodes, strategy, workers)
        if rows is None:
            return None  # rank 0 writes the merged files
        if resume:
            print(f"resume: {len(files) - len(todo)} of {len(files)} images already "
                  "predicted, skipped", flush=True)
        text = "".join(_times_row(row) for row in rows)
        if resume and times_path.is_file():
            with times_path.open("a") as fh:
                fh.write(text)
        else:
            atomic_write_text(times_path, TIMES_HEADER + text)
    else:
        if not (resume and times_path.is_file()):
            times_path.write_text(TIMES_HEADER)

        def predict_write(path: Path, image: np.ndarray) -> None:
            rows.append(predict_one(path, image))
            with times_path.open("a") as fh:
                fh.write(_times_row(rows[-1]))

        stream_predict(files, load_image, output_of, predict_write, resume=resume,
                       workers=workers)
    total_seconds = sum(row[3] for row in rows)
    write_json(out_dir / "predict_stats.json", {
        "run": str(run), "scheme": scheme, "images": len(rows),
        "skipped": len(files) - len(rows),
        "mean_seconds": total_seconds / len(rows) if rows else None, "times": times_path.name,
        "peak_rss_mb": max([peak_rss_bytes() / 2**20] + [row[4] for row in rows])})
    return [output_of(f) for f in files]


def _times_row(row: list) -> str:
    name, height, width, seconds, _ = row
    return f"{name},{height},{width},{seconds:.6f}\n"
