"""``predict``: caption a folder of images, or answer questions listed in a JSON file.

Questions file: a JSON list of ``{"image": "path relative to the file", "question": "..."}``.
Outputs: ``OUT/captions.json`` + ``OUT/captions.csv`` (``image,caption``) for a folder,
``OUT/answers.json`` for a questions file, and an attention overlay per input (first 8).

A folder streams: its images are read lazily through a ``DataLoader`` in batches of
:data:`BATCH` (the batches the captions were always computed in, so the captions do not depend
on how many images there are or on a resume), each batch's captions go to its part file as
soon as they are done (:class:`ensemblab.streaming.Parts`, ``OUT/.captions.json.parts/``), and
the two output files are merged from the parts at the end; memory stays flat in the number of
images, a progress line comes at least every 30 s, and ``--resume`` skips the batches whose
part a killed run left.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ensemblab.errors import DataError, EnsemblabError
from ensemblab.io import write_csv, write_json, write_json_object
from ensemblab.progress import Progress
from ensemblab.projects.crossattn_vl import inference
from ensemblab.projects.crossattn_vl.commands import load_run
from ensemblab.projects.crossattn_vl.data import ImageStore, load_image
from ensemblab.projects.crossattn_vl.features import TextInputs
from ensemblab.projects.crossattn_vl.overlays import attention_overlay
from ensemblab.projects.crossattn_vl.readers import IMAGE_EXTS
from ensemblab.streaming import DEFAULT_WORKERS, FileDataset, Parts, _Failure
from ensemblab.threads import loader_workers

MAX_OVERLAYS = 8
BATCH = 32
"""Images captioned together (:func:`.inference.image_regions` and
:func:`.inference.generate_captions` batch by 32)."""


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


def _batch(items: list) -> list:
    return items


def predict(run_dir, input_path, out, device: str = "auto", resume: bool = False,
            workers: int = DEFAULT_WORKERS) -> Path:
    """Caption images or answer questions with a trained run; returns the main output file.

    ``resume``: a folder skips the batches of images a killed run finished; a questions file
    is answered whole. ``workers``: image-reading loader workers asked for (capped by the
    thread budget).
    """
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
        prompt = cfg["data"]["caption_prompt"]

        def caption(paths: list[Path], pixels: list[torch.Tensor]) -> list[str]:
            with torch.no_grad():
                regions, gate = net.encode_image(torch.stack(pixels).to(module.device))
            caps = inference.generate_captions(
                net, text, decoder,
                {p.name: (regions[i], None if gate is None else gate[i])
                 for i, p in enumerate(paths)},
                prompt, e["beam"], e["max_length"], e["length_penalty"], batch_size=BATCH)
            return [caps[p.name] for p in paths]

        def overlay(path: Path, cap: str) -> None:
            attention_overlay(net, text, path, prompt, cap, out / "overlays" / f"{path.stem}.png",
                              size, module.device)

        return caption_folder(images, partial(load_image, size=size), caption, overlay, out,
                              resume, workers)
    if not input_path.is_file():
        raise DataError(input_path, "input not found (give an image folder or a questions JSON)")
    if net.classifier is None:
        raise EnsemblabError(f"{run_dir}: this model has no answer head (trained without VQA)")
    if resume:
        print("--resume: a questions file is answered whole; answering every question",
              flush=True)
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


def caption_folder(images: list[Path], read, caption, overlay, out: Path, resume: bool = False,
                   workers: int = DEFAULT_WORKERS, every: float = 30.0) -> Path:
    """Caption ``images`` batch by batch into ``OUT/captions.json`` and ``OUT/captions.csv``.

    Args:
        images: the image files, sorted.
        read: path -> the model's input tensor (run in the loader; picklable).
        caption: ``(paths, tensors)`` of one batch -> their captions.
        overlay: ``(path, caption)`` -> writes the image's attention overlay (first
            :data:`MAX_OVERLAYS` images).
        out: the output folder.
        resume: skip the batches whose part exists and names the same images.
        workers: loader workers asked for (capped by the thread budget).
        every: seconds between two progress lines.

    Returns:
        ``OUT/captions.json``.
    """
    parts = Parts(out / "captions.json")
    batches = [list(range(i, min(i + BATCH, len(images)))) for i in range(0, len(images), BATCH)]

    def key(b: int) -> str:
        return f"batch_{b:06d}"

    def finished(b: int) -> bool:
        """The batch's part exists and holds its images (the folder may have changed)."""
        if not parts.path(key(b)).is_file():
            return False
        return [name for name, _ in parts.read(key(b))] == [images[i].name for i in batches[b]]

    todo = [b for b in range(len(batches)) if not (resume and finished(b))]
    skipped = len(images) - sum(len(batches[b]) for b in todo)
    if resume:
        print(f"resume: {skipped} of {len(images)} images already predicted, skipped",
              flush=True)
    progress = Progress(len(images), done=skipped, every=every)
    n_workers = loader_workers(workers) if len(todo) > 1 else 0
    loader = DataLoader(FileDataset(images, read), batch_sampler=[batches[b] for b in todo],
                        collate_fn=_batch, num_workers=n_workers,
                        prefetch_factor=2 if n_workers else None)
    for b, batch in zip(todo, loader):
        for _, item in batch:
            if isinstance(item, _Failure):
                item.raise_()
        paths = [path for path, _ in batch]
        caps = caption(paths, [item for _, item in batch])
        for i, path, cap in zip(batches[b], paths, caps):
            if i < MAX_OVERLAYS:
                overlay(path, cap)
        parts.write(key(b), [[path.name, cap] for path, cap in zip(paths, caps)])
        progress.step(len(batch))
    progress.close()

    def pairs():
        for b in range(len(batches)):
            yield from parts.read(key(b))

    write_json_object(parts.final, pairs())
    write_csv(out / "captions.csv", ["image", "caption"], pairs())
    parts.remove()
    return parts.final
