"""The verbs of ``ensemblab fre_unet`` as plain functions: train (one run or several seeds),
evaluate (one run or a folder of seed runs: mean ± std), predict, search and magnitudes.

They back the CLI (``cli.py`` only parses arguments), the TPE search and the demo, so every path
trains through the same Lightning glue (:mod:`ensemblab.engine`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ensemblab.backbones import lightning_precision
from ensemblab.cli_common import resolve_split, scored_items_line
from ensemblab.config import CONFIG_NAME, find_config, load_config
from ensemblab.data.images import read_image, write_png
from ensemblab.engine import (
    RUN_RECORD,
    best_checkpoint,
    build_trainer,
    check_run,
    fit,
    lightning_accelerator,
    load_checkpoint,
    load_weights,
    open_run,
    prepare_run_dir,
    seed_everything,
    select_device,
    write_run_record,
)
from ensemblab.errors import ConfigError, DataError, EnsemblabError
from ensemblab.io import write_csv, write_json
from ensemblab.projects.fre_unet import HELD_OUT_SPLIT, MODEL, PROJECT, SEEDS, SEEDS_MARKERS
from ensemblab.projects.fre_unet.data import FORMATS, IMAGE_EXTS, rescale
from ensemblab.projects.fre_unet.datamodule import EMTileData
from ensemblab.projects.fre_unet.magnitude import (
    FeatureMagnitudeTracker,
    plot_feature_magnitudes,
    read_magnitudes,
)
from ensemblab.projects.fre_unet.module import TRAIN_CHOICES, FRESegmentation, evaluate_loader
from ensemblab.streaming import DEFAULT_WORKERS, input_files, stream_predict

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
BASE_CONFIG = CONFIG_DIR / "baseline.yaml"
"""The root config: every default, and the keys an older run's saved config lacks."""
CHOICES = {**TRAIN_CHOICES, "data.format": FORMATS}
"""The choice-valued config keys and their allowed values, checked when a config loads."""


def resolve_config(name: str | Path) -> Path:
    """A config file path, or the bare name of a file in ``configs/`` (``cpu_quick``)."""
    return find_config(name, CONFIG_DIR)


def _data_root(cfg: dict[str, Any], data: str | Path | None) -> Path:
    root = data or cfg["data"]["root"]
    if not root:
        raise ConfigError("no dataset: pass --data DIR (or set data.root in the config)")
    return Path(root).resolve()


def build_module(cfg: dict[str, Any], class_names: list[str]) -> FRESegmentation:
    """The Lightning module described by a resolved config."""
    train = cfg["train"]
    return FRESegmentation(cfg["model"], class_names, lr=float(train["lr"]),
                           weight_decay=float(train["weight_decay"]),
                           supervision_lambda=float(train["supervision_lambda"]),
                           seed=int(cfg["seed"]), schedule=str(train["schedule"]),
                           loss=str(train["loss"]), optimizer=str(train["optimizer"]))


def train_run(cfg: dict[str, Any], data: str | Path | None, out: str | Path,
              device: str = "auto", resume: bool = False, progress_bar: bool = True) -> Path:
    """Train one run; keeps ``checkpoints/best.ckpt`` at the best ``val/miou``.

    Returns:
        The run folder (config, checkpoints, logs, curves, feature magnitudes).
    """
    cfg = copy.deepcopy(cfg)
    cfg["data"]["root"] = str(_data_root(cfg, data))
    datamodule = EMTileData(cfg["data"]["root"], cfg["data"])
    datamodule.setup()
    datamodule.check_labels(cfg["data"]["allow_unseen"])
    run_dir = prepare_run_dir(out, cfg, resume=resume, project=PROJECT, kind=MODEL)
    seed_everything(int(cfg["seed"]))
    module = build_module(cfg, list(datamodule.classes))
    train = cfg["train"]
    callbacks = [FeatureMagnitudeTracker(run_dir)] if train["track_magnitudes"] else []
    precision = lightning_precision(bool(train["bf16"]), lightning_accelerator(device)[0])
    trainer = build_trainer(run_dir, int(train["epochs"]), device=device,
                            precision=precision, monitor="val/miou", mode="max",
                            callbacks=callbacks,
                            log_every_n_steps=int(train["log_every_n_steps"]),
                            progress_bar=progress_bar)
    fit(trainer, module, datamodule=datamodule, resume=resume)
    return run_dir


def train(config: str | Path, data: str | Path | None, out: str | Path,
          overrides: Sequence[str] = (), device: str = "auto", resume: bool = False,
          seeds: Sequence[int] | None = None) -> list[Path]:
    """The ``train`` verb: ``config`` (a file or a name in ``configs/``) with ``key=value``
    ``overrides``, one run in ``out``, or with ``seeds`` one run per seed in ``out/seed<N>``.

    Returns:
        The run folders.
    """
    cfg = load_config(resolve_config(config), list(overrides), choices=CHOICES)
    if not seeds:
        return [train_run(cfg, data, out, device=device, resume=resume)]
    out = Path(out)
    if (out / CONFIG_NAME).is_file():
        raise ConfigError(f"{out} is a run folder; train --seeds needs a new --out or a folder "
                          "of seed runs")
    if (out / RUN_RECORD).is_file():
        check_run(out, PROJECT, (SEEDS,), "train --seeds")
    else:
        write_run_record(out, PROJECT, SEEDS)
    return [train_run({**cfg, "seed": seed}, data, Path(out) / f"seed{seed}", device=device,
                      resume=resume) for seed in seeds]


def load_trained(run_dir: str | Path, device: str = "auto"
                 ) -> tuple[torch.nn.Module, dict[str, Any], list[str]]:
    """``(SE-U-Net in eval mode on device, resolved config, class names)`` of a run."""
    run_dir, cfg = open_run(run_dir, base=BASE_CONFIG)
    path = best_checkpoint(run_dir)
    ckpt = load_checkpoint(path, required=("state_dict", "hyper_parameters"))
    if "class_names" not in ckpt["hyper_parameters"]:
        raise DataError(path, "checkpoint has no class_names: not a fre_unet checkpoint")
    classes = list(ckpt["hyper_parameters"]["class_names"])
    module = build_module(cfg, classes)
    load_weights(module, ckpt["state_dict"], path)
    return module.model.eval().to(select_device(device)), cfg, classes


def seed_runs(folder: str | Path, verb: str = "evaluate") -> list[Path]:
    """The run folders of a multi-seed folder (``seed*/config.yaml``), or the folder itself.

    Args:
        folder: a fre_unet run or multi-seed folder (:func:`ensemblab.run_record.check_run`).
        verb: the verb reading it, named in the message about a run of another project.

    Raises:
        ConfigError: not a fre_unet run or multi-seed folder, or a seed run of another
            project.
    """
    folder = Path(folder)
    if check_run(folder, PROJECT, (MODEL, SEEDS), verb, SEEDS_MARKERS).kind != SEEDS:
        return [folder]
    runs = sorted(p.parent for p in folder.glob(f"*/{CONFIG_NAME}"))
    if not runs:
        raise EnsemblabError(f"{folder}: a folder of seed runs that holds no run yet")
    for run in runs:
        check_run(run, PROJECT, (MODEL,), verb)
    return runs


def run_split(split: str, data: str | Path | None, cfg: dict[str, Any]) -> str:
    """The split a run scores for ``--split`` (:func:`ensemblab.cli_common.resolve_split`):
    ``auto`` is the pinned ``test`` slices of the run's own data, every slice of another
    folder (``all``)."""
    return resolve_split(split, data, cfg["data"]["root"], held_out=HELD_OUT_SPLIT)


def evaluate(run: str | Path, data: str | Path | None = None, split: str = "auto",
             device: str = "auto") -> dict[str, Any]:
    """Per-class IoU and mIoU on ``split`` (:func:`run_split`); for a folder of seed runs also
    mean ± std.

    Writes ``metrics.json`` into every run folder (and the aggregate into ``run``). The std is
    the sample standard deviation over seeds (``ddof=1``).
    """
    results = []
    for run_dir in seed_runs(run):
        model, cfg, classes = load_trained(run_dir, device)
        datamodule = EMTileData(_data_root(cfg, data), cfg["data"])
        scored = run_split(split, data, cfg)
        loader = datamodule.loader(scored)
        print(scored_items_line(len(loader.dataset), datamodule.root, scored), flush=True)
        scores = evaluate_loader(model, loader, classes, select_device(device))
        metrics = {"split": scored, "seed": cfg["seed"], "miou": scores["miou"],
                   "iou": dict(zip(classes, scores["iou"])),
                   "pixel_accuracy": scores["pixel_accuracy"],
                   "checkpoint": str(best_checkpoint(run_dir)), "data": str(datamodule.root)}
        write_json(Path(run_dir) / "metrics.json", metrics)
        results.append(metrics)
    if len(results) == 1 and seed_runs(run) == [Path(run)]:
        return results[0]
    mious = np.array([r["miou"] for r in results], dtype=float)
    classes = list(results[0]["iou"])
    per_class = np.array([[r["iou"][c] for c in classes] for r in results], dtype=float)
    ddof = 1 if len(results) > 1 else 0
    summary = {"split": results[0]["split"], "n_seeds": len(results),
               "seeds": [r["seed"] for r in results],
               "miou_mean": float(mious.mean()), "miou_std": float(mious.std(ddof=ddof)),
               "iou_mean": dict(zip(classes, np.nanmean(per_class, 0).tolist())),
               "iou_std": dict(zip(classes, np.nanstd(per_class, 0, ddof=ddof).tolist())),
               "runs": results}
    write_json(Path(run) / "metrics.json", summary)
    return summary


def read_gray_uint8(path: Path) -> np.ndarray:
    """An input image as 8-bit gray (16-bit and float images scaled by their maximum)."""
    image = read_image(path, mode="gray")
    if image.dtype != np.uint8:
        image = (255.0 * image / max(float(image.max()), 1.0)).astype(np.uint8)
    return image


@torch.no_grad()
def predict(run: str | Path, inputs: str | Path, out: str | Path,
            device: str = "auto", resume: bool = False,
            workers: int = DEFAULT_WORKERS, runtime: str = "torch") -> list[Path]:
    """Segment whole images: class-index PNGs ``out/<stem>.png`` at the input's size.

    Each image is resized by the run's ``data.scale``, reflect-padded to a multiple of
    ``2 ** depth``, segmented in one pass, and the labels are resized back (nearest). Images
    are read lazily and each PNG is written atomically as soon as its image is done
    (:func:`ensemblab.streaming.stream_predict`); a progress line is printed at least every
    30 s.

    Args:
        run: a run folder of this project.
        inputs: an image or a folder of images.
        out: the output folder.
        device: ``auto | cpu | cuda | cuda:N``.
        resume: skip the images whose ``out/<stem>.png`` exists.
        workers: image-reading loader workers asked for (capped by the thread budget).
        runtime: ``torch``, or ``onnx``: the run's exported ``model.onnx`` through
            onnxruntime on the CPU, with the scale and padding of its settings file.

    Returns:
        ``out/<stem>.png`` of every input image, skipped ones included.
    """
    check_run(run, PROJECT, (MODEL,), "predict")
    if runtime == "onnx":
        from ensemblab.engine.onnx_export import load_onnx

        model, settings = load_onnx(run)
        dev = torch.device("cpu")
        scale, step = float(settings["input"]["scale"]), int(settings["input"]["multiple_of"])
    else:
        model, cfg, _ = load_trained(run, device)
        dev = select_device(device)
        scale, step = float(cfg["data"]["scale"]), 2**model.depth
    files = input_files(inputs, IMAGE_EXTS)
    out = Path(out)

    def predict_write(path: Path, image: np.ndarray) -> None:
        small, _ = rescale(image, np.zeros(image.shape, np.uint8), scale)
        x = torch.from_numpy(small.astype(np.float32) / 255.0)[None, None].to(dev)
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % step, 0, (-h) % step), mode="reflect")
        pred = model(x).argmax(1)[:, :h, :w].float()[None]
        pred = F.interpolate(pred, size=image.shape, mode="nearest")[0, 0]
        write_png(out / f"{path.stem}.png", pred.to(torch.uint8).cpu().numpy())

    return stream_predict(files, read_gray_uint8, lambda p: out / f"{p.stem}.png",
                          predict_write, resume=resume, workers=workers)


def search(config: str | Path, data: str | Path | None, out: str | Path,
           overrides: Sequence[str] = (), space: str = "fre", trials: int = 50,
           study: str | None = None, device: str = "auto", seed: int = 0):
    """The ``search`` verb: a TPE study over ``space`` with every trial trained from ``config``
    and ``overrides`` (:func:`.search.run_search`); returns the optuna study."""
    from ensemblab.projects.fre_unet.search import run_search  # it imports this module

    cfg = load_config(resolve_config(config), list(overrides), choices=CHOICES)
    return run_search(cfg, data, out, space=space, trials=trials, study=study, device=device,
                      seed=seed)


def magnitudes(runs: Sequence[str | Path], out: str | Path) -> Path:
    """The ``magnitudes`` verb: deep vs skip feature magnitudes of ``runs`` in one plot ``out``
    (PNG) and its series beside it (``.csv``: series, epoch, deep, skip).

    A run folder is labelled with its variant and seed (``fre/seed0``); a folder of seed runs
    by its name, as the mean of its seeds.
    """
    series = {}
    for run in runs:
        check_run(run, PROJECT, (MODEL, SEEDS), "magnitudes", SEEDS_MARKERS)
        parts = Path(run).resolve().parts
        single = (Path(run) / "feature_magnitude.csv").is_file()
        label = "/".join(parts[-2:]) if single else f"{parts[-1]} (mean of seeds)"
        series[label] = read_magnitudes(run)
    path = plot_feature_magnitudes(series, out)
    write_csv(path.with_suffix(".csv"), ["series", "epoch", "deep", "skip"],
              [(label, *row) for label, rows in series.items() for row in rows])
    return path
