"""``predict``: caption a folder of images, or answer questions listed in a JSON file.

Questions file: a JSON list of ``{"image": "path relative to the file", "question": "..."}``.
Outputs: ``OUT/captions.json`` + ``OUT/captions.csv`` (``image,caption``) for a folder,
``OUT/answers.json`` for a questions file, and an attention overlay per input (first 8).
"""

from __future__ import annotations

import json
from pathlib import Path

from ensemblab.errors import DataError, EnsemblabError
from ensemblab.io import write_csv, write_json
from ensemblab.projects.crossattn_vl import inference
from ensemblab.projects.crossattn_vl.commands import load_run
from ensemblab.projects.crossattn_vl.data import ImageStore
from ensemblab.projects.crossattn_vl.features import TextInputs
from ensemblab.projects.crossattn_vl.overlays import attention_overlay
from ensemblab.projects.crossattn_vl.readers import IMAGE_EXTS

MAX_OVERLAYS = 8


def _questions(path: Path) -> list[dict]:
    try:
        items = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"invalid JSON ({exc})") from None
    if not isinstance(items, list) or not items:
        raise DataError(path, "expected a non-empty list of {image, question}")
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not it.get("image") or not it.get("question"):
            raise DataError(path, f"item {i} needs 'image' and 'question'")
        img = path.parent / it["image"]
        if not img.is_file():
            raise DataError(img, f"image file not found (item {i} of {path.name})")
        out.append({"key": str(img), "image": img, "question": it["question"]})
    return out


def predict(run_dir, input_path, out, device: str = "auto") -> Path:
    """Caption images or answer questions with a trained run; returns the main output file."""
    cfg, module, decoder, text_tok, answers, _ = load_run(run_dir, device, "predict")
    net, e, size = module.net, cfg["eval"], cfg["data"]["image_size"]
    text = TextInputs(text_tok)
    input_path, out = Path(input_path), Path(out)
    if input_path.is_dir():
        images = sorted(p for p in input_path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not images:
            raise DataError(input_path, "no .jpg/.jpeg/.png images in the folder")
        if net.decoder is None:
            raise EnsemblabError(f"{run_dir}: this model has no caption head")
        store = ImageStore({p.name: p for p in images}, size)
        regions = inference.image_regions(net, store, list(store.paths), module.device)
        caps = inference.generate_captions(net, text, decoder, regions,
                                           cfg["data"]["caption_prompt"], e["beam"],
                                           e["max_length"], e["length_penalty"])
        write_json(out / "captions.json", caps)
        write_csv(out / "captions.csv", ["image", "caption"], sorted(caps.items()))
        for p in images[:MAX_OVERLAYS]:
            attention_overlay(net, text, p, cfg["data"]["caption_prompt"], caps[p.name],
                              out / "overlays" / f"{p.stem}.png", size, module.device)
        return out / "captions.json"
    if not input_path.is_file():
        raise DataError(input_path, "input not found (give an image folder or a questions JSON)")
    if net.classifier is None:
        raise EnsemblabError(f"{run_dir}: this model has no answer head (trained without VQA)")
    qs = _questions(input_path)
    store = ImageStore({q["key"]: q["image"] for q in qs}, size)
    regions = inference.image_regions(net, store, list(store.paths), module.device)
    preds = inference.answer_questions(net, text, regions, qs, answers)
    rows = [{"image": str(q["image"]), "question": q["question"], "answer": a}
            for q, a in zip(qs, preds)]
    write_json(out / "answers.json", rows)
    for i, q in enumerate(qs[:MAX_OVERLAYS]):
        attention_overlay(net, text, q["image"], q["question"], f"{q['question']} -> {preds[i]}",
                          out / "overlays" / f"question_{i}.png", size, module.device)
    return out / "answers.json"
