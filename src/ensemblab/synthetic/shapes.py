"""Synthetic shapes scenes with captions, questions and answers (crossattn_vl).

Each image holds one or two coloured shapes (circle, square, triangle in red, green, blue or
yellow) on a noisy grey background. The generator writes the real formats the project reads:

    OUT/images/COCO_shapes_000000000001.png ...
    OUT/captions.json       COCO captions: {"images": [...], "annotations": [...]}
    OUT/questions.json      VQA v2 questions: {"data_subtype": "shapes", "questions": [...]}
    OUT/annotations.json    VQA v2 annotations with 10 human answers per question

Captions name the colours and shapes ("a red circle and a blue square"); questions ask for a
shape's colour, a colour's shape, the number of shapes, or whether a shape is present. The data
are deterministic given ``seed`` and learnable in a minute on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ensemblab.io import atomic_path, write_json

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230),
          "yellow": (235, 215, 40)}
SHAPES = ("circle", "square", "triangle")
NUMBERS = {1: "1", 2: "2"}  # VQA v2 annotations write numbers as digits
TEMPLATES = ("a {d}", "there is a {d}", "a picture of a {d}", "an image with a {d}")


def _draw(draw: ImageDraw.ImageDraw, shape: str, color, box) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=color)


def make_scene(rng: np.random.Generator, size: int) -> tuple[Image.Image, list[tuple[str, str]]]:
    """One image and its objects ``[(colour, shape), ...]`` left to right."""
    noise = rng.normal(128, 12, (size, size, 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(noise)
    draw = ImageDraw.Draw(img)
    n = int(rng.integers(1, 3))
    colors = rng.choice(list(COLORS), size=n, replace=False)
    shapes = rng.choice(SHAPES, size=n, replace=n > len(SHAPES))
    objects = []
    half = size // n
    for i in range(n):
        side = int(rng.integers(size // 4, max(size // 4 + 1, min(half, size) * 3 // 4)))
        x0 = i * half + int(rng.integers(0, max(1, half - side)))
        y0 = int(rng.integers(0, size - side))
        _draw(draw, str(shapes[i]), COLORS[str(colors[i])], (x0, y0, x0 + side, y0 + side))
        objects.append((str(colors[i]), str(shapes[i])))
    return img, objects


def describe(objects: list[tuple[str, str]]) -> str:
    """``[("red", "circle"), ("blue", "square")]`` -> ``"red circle and a blue square"``."""
    return " and a ".join(f"{c} {s}" for c, s in objects)


def questions_for(objects, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Three (question, answer) pairs about a scene."""
    colour, shape = objects[int(rng.integers(len(objects)))]
    absent = [s for s in SHAPES if s not in {o[1] for o in objects}]
    probe = str(rng.choice(absent)) if absent and rng.random() < 0.5 else shape
    qa = [(f"what color is the {shape}?", colour), (f"what shape is {colour}?", shape),
          ("how many shapes are there?", NUMBERS[len(objects)]),
          (f"is there a {probe}?", "yes" if probe in {o[1] for o in objects} else "no")]
    order = rng.permutation(len(qa))[:3]
    return [qa[i] for i in sorted(order)]


def write_shapes_dataset(out: str | Path, n_images: int = 200, size: int = 64,
                         seed: int = 0, captions_per_image: int = 3) -> Path:
    """Write ``n_images`` scenes with captions, questions and answers under ``out``."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    images, caps, questions, annotations = [], [], [], []
    for image_id in range(1, n_images + 1):
        img, objects = make_scene(rng, size)
        name = f"COCO_shapes_{image_id:012d}.png"
        with atomic_path(out / "images" / name) as tmp:
            img.save(tmp)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        desc = describe(objects)
        picks = rng.permutation(len(TEMPLATES))[:captions_per_image]
        for k in picks:
            caps.append({"id": len(caps) + 1, "image_id": image_id,
                         "caption": TEMPLATES[k].format(d=desc)})
        for j, (question, answer) in enumerate(questions_for(objects, rng)):
            qid = image_id * 10 + j
            questions.append({"image_id": image_id, "question": question, "question_id": qid})
            annotations.append({
                "question_id": qid, "image_id": image_id, "multiple_choice_answer": answer,
                "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": a + 1}
                            for a in range(10)]})
    write_json(out / "captions.json", {"images": images, "annotations": caps})
    write_json(out / "questions.json", {"data_subtype": "shapes", "questions": questions})
    write_json(out / "annotations.json", {"data_subtype": "shapes", "annotations": annotations})
    return out
