"""The bodies of the CLI verbs: train, evaluate, predict, submit, validate-submission."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from ensemblab.engine import prepare_run_dir
from ensemblab.ensemble.submission import (
    validate_submission,
    write_validated_submission,
)
from ensemblab.errors import DataError
from ensemblab.io import write_csv, write_json
from ensemblab.projects.sartorius_cells.data import (
    list_images,
    load_records,
    read_gray_uint8,
    split_records,
)
from ensemblab.projects.sartorius_cells.inference import (
    evaluate_records,
    finalize,
    instances_to_rles,
    load_member,
    predict_raw,
    tune_and_save,
)
from ensemblab.projects.sartorius_cells.overlays import save_overlay
from ensemblab.projects.sartorius_cells.postprocess import image_cell_type
from ensemblab.projects.sartorius_cells.training import resolve_classes, train_maskrcnn


def train_run(cfg: dict, data: str | Path, out: str | Path, device: str = "auto",
              resume: bool = False, progress_bar: bool = True) -> int:
    """Train the Mask R-CNN member, then tune its thresholds on the validation split."""
    records = load_records(data)
    cfg = resolve_classes(cfg, records)
    run_dir = prepare_run_dir(out, cfg, resume=resume)
    module = train_maskrcnn(cfg, run_dir, records, device, resume, progress_bar)
    _, val = split_records(records, cfg["data"]["split"])
    if val:
        params = tune_and_save(run_dir, module.model, cfg, val, device)
        print(f"thresholds tuned on {len(val)} validation images: {run_dir / 'postprocess.json'}")
        for cell_type, p in params.per_type.items():
            print(f"  {cell_type}: {p.to_dict()}")
    return 0


def evaluate_run(run: str | Path, data: str | Path, split: str = "val", device: str = "auto",
                 untrained: bool = False) -> int:
    """Write ``RUN/metrics.json`` (``metrics_untrained.json`` for the random-init baseline)."""
    model, cfg, params = load_member(run, device, untrained=untrained)
    records = load_records(data)
    if split == "val":
        _, records = split_records(records, cfg["data"]["split"])
    metrics = evaluate_records(model, cfg, params, records, device)
    metrics.update({"split": split, "data": str(data), "untrained": untrained,
                    "postprocess": params.to_dict()})
    path = Path(run) / ("metrics_untrained.json" if untrained else "metrics.json")
    write_json(path, metrics)
    per_type = ", ".join(f"{k} {v:.3f}" for k, v in metrics["per_cell_type"].items())
    print(f"kaggle_score {metrics['kaggle_score']:.4f} ({per_type}); "
          f"COCO mask AP {metrics['coco_mask_ap']:.4f}; {metrics['n_images']} images -> {path}")
    return 0


def _predictions(run, images: list[tuple[str, Path]], device: str):
    """Yield ``(image_id, image, post-processed instances, cell type)`` one image at a time."""
    model, cfg, params = load_member(run, device)
    classes = list(cfg["model"]["classes"])
    for image_id, path in images:
        image = read_gray_uint8(path)
        raw = predict_raw(model, cfg, [image], device)[0]
        yield image_id, image, finalize(raw, params, classes), image_cell_type(raw, classes)


def predict_run(run: str | Path, input_dir: str | Path, out: str | Path, device: str = "auto",
                n_overlays: int = 4) -> int:
    """``OUT/predictions.csv`` (``id,predicted,score,cell_type``) and ``OUT/overlays/*.png``."""
    out = Path(out)
    rows, n_inst = [], 0
    for k, (image_id, image, inst, cell_type) in enumerate(
            _predictions(run, list_images(input_dir), device)):
        rles = instances_to_rles(inst)
        rows += [(image_id, r, f"{s:.4f}", cell_type) for r, s in zip(rles, inst.scores)]
        rows += [] if rles else [(image_id, "", "", cell_type or "")]
        n_inst += len(rles)
        if k < n_overlays:
            save_overlay(out / "overlays" / f"{image_id}.png", image, inst)
    write_csv(out / "predictions.csv", ("id", "predicted", "score", "cell_type"), rows)
    print(f"{n_inst} instances in {len({r[0] for r in rows})} images -> {out / 'predictions.csv'}")
    return 0


def image_sizes_from_folder(folder: str | Path) -> dict[str, tuple[int, int]]:
    """``{image_id: (height, width)}`` read from image headers."""
    sizes = {}
    for image_id, path in list_images(folder):
        try:
            with Image.open(path) as im:
                sizes[image_id] = (im.size[1], im.size[0])
        except OSError as exc:
            raise DataError(path, f"cannot read image header ({exc})") from None
    return sizes


def image_sizes_from_csv(path: str | Path) -> dict[str, tuple[int, int]]:
    """``{image_id: (height, width)}`` from a CSV with ``id,width,height`` columns."""
    try:
        df = pd.read_csv(path, usecols=["id", "width", "height"], dtype={"id": str})
    except (ValueError, FileNotFoundError) as exc:
        raise DataError(path, f"needs columns id,width,height ({str(exc).splitlines()[0]})"
                        ) from None
    df = df.drop_duplicates("id")
    return {i: (int(h), int(w)) for i, w, h in zip(df["id"], df["width"], df["height"])}


def submit_run(run: str | Path, images_dir: str | Path, out: str | Path,
               device: str = "auto") -> int:
    """Predict every test image and write a validated ``id,predicted`` submission."""
    images = list_images(images_dir)
    rles = {image_id: instances_to_rles(inst)
            for image_id, _, inst, _ in _predictions(run, images, device)}
    write_validated_submission(out, rles, [i for i, _ in images],
                               image_sizes_from_folder(images_dir))
    print(f"{sum(max(1, len(r)) for r in rles.values())} rows, {len(images)} images -> {out} "
          "(validated)")
    return 0


def validate_run(csv: str | Path, images: str | Path | None, sizes: str | Path | None) -> int:
    """Print every violation; exit status 1 when there is any."""
    table = image_sizes_from_folder(images) if images else image_sizes_from_csv(sizes)
    problems = validate_submission(csv, table)
    for problem in problems:
        print(problem)
    print(f"{csv}: {'INVALID, ' + str(len(problems)) + ' problems' if problems else 'valid'}")
    return 1 if problems else 0
