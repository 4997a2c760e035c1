"""Readers for the caption and question formats the paper's datasets use.

* COCO captions JSON: ``{"images": [{"id", "file_name"}], "annotations": [{"image_id",
  "caption"}]}``;
* Karpathy split JSON (``dataset_coco.json`` / ``dataset_flickr8k.json``): ``{"images":
  [{"filename", "filepath"?, "split", "sentences": [{"raw"}]}]}``;
* Flickr-style CSV with columns ``image,caption`` (one row per caption);
* VQA v2 questions + annotations JSON (10 human answers per question).

Every reader validates what it reads and raises a one-line :class:`DataError` naming the file:
a missing image, a file without captions, an empty caption, a question without answers.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ensemblab.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass
class VLData:
    """A vision-language dataset in memory.

    Attributes:
        images: image key -> image file.
        captions: image key -> reference captions.
        questions: dicts ``{"question_id", "key", "question", "answers": [10 strings]}``.
        splits: image key -> ``train | val | test`` when the source fixes a split.
    """

    images: dict[str, Path] = field(default_factory=dict)
    captions: dict[str, list[str]] = field(default_factory=dict)
    questions: list[dict] = field(default_factory=list)
    splits: dict[str, str] = field(default_factory=dict)


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(path, "top level must be a JSON object")
    return data


def _objects(value, source: Path, what: str) -> list[dict]:
    """``value`` checked to be a list of JSON objects (``what`` names it in the message)."""
    if not isinstance(value, list):
        raise DataError(source, f"{what} must be a list of objects, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise DataError(source, f"{what}[{i}] must be an object, got {type(item).__name__}")
    return value


def _is_id(value) -> bool:
    """Question and image ids are integers or strings (never bools, floats or containers)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _image(image_dir: Path, name, source: Path, where: str) -> Path:
    if not isinstance(name, str) or not name:
        raise DataError(source, f"image file name {name!r} at {where} is not a non-empty string")
    if name.splitlines() != [name]:  # a quoted CSV field may hold line breaks
        raise DataError(source, f"image file name {name!r} at {where} holds a line break")
    path = image_dir / name
    if not path.is_file():
        raise DataError(path, f"image file not found (referenced by {source.name} {where})")
    return path


def _caption(text, source: Path, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(source, f"empty caption at {where}")
    return text.strip()


def read_flickr_csv(path: str | Path, image_dir: str | Path) -> VLData:
    """Flickr-style ``image,caption`` CSV -> :class:`VLData`."""
    path, image_dir = Path(path), Path(image_dir)
    if not path.is_file():
        raise DataError(path, "file not found")
    data = VLData()
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise DataError(path, "empty caption file (no header, no captions)")
            missing = {"image", "caption"} - set(reader.fieldnames)
            if missing:
                raise DataError(path, f"missing column(s) {sorted(missing)}; need image,caption")
            for row_no, row in enumerate(reader, start=2):
                key = (row["image"] or "").strip()
                if not key:
                    raise DataError(path, f"empty image name at row {row_no}")
                if key not in data.images:
                    data.images[key] = _image(image_dir, key, path, f"row {row_no}")
                data.captions.setdefault(key, []).append(
                    _caption(row["caption"], path, f"row {row_no}"))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"not a readable UTF-8 CSV ({exc})") from None
    if not data.captions:
        raise DataError(path, "empty caption file (no caption rows)")
    return data


def read_coco_captions(path: str | Path, image_dir: str | Path) -> VLData:
    """COCO captions JSON -> :class:`VLData` (keys are the COCO image ids as strings)."""
    path, image_dir = Path(path), Path(image_dir)
    coco = _load_json(path)
    if not coco.get("annotations"):
        raise DataError(path, "empty caption file (no 'annotations')")
    names = {}
    _objects(coco["annotations"], path, "'annotations'")
    for i, img in enumerate(_objects(coco.get("images", []), path, "'images'")):
        if "id" not in img or "file_name" not in img:
            raise DataError(path, f"images[{i}] lacks 'id' or 'file_name'")
        names[str(img["id"])] = img["file_name"]
    data = VLData()
    for i, ann in enumerate(coco["annotations"]):
        key = str(ann.get("image_id"))
        if key not in names:
            raise DataError(path, f"annotations[{i}] refers to unknown image_id {key}")
        if key not in data.images:
            data.images[key] = _image(image_dir, names[key], path, f"image_id {key}")
        data.captions.setdefault(key, []).append(
            _caption(ann.get("caption"), path, f"annotations[{i}]"))
    return data


def read_karpathy(path: str | Path, image_root: str | Path) -> VLData:
    """Karpathy split JSON -> :class:`VLData` with ``splits`` (``restval`` counts as train)."""
    path, image_root = Path(path), Path(image_root)
    karpathy = _load_json(path)
    if not karpathy.get("images"):
        raise DataError(path, "empty caption file (no 'images')")
    data = VLData()
    for i, img in enumerate(_objects(karpathy["images"], path, "'images'")):
        name, folder = img.get("filename"), img.get("filepath")
        if not name:
            raise DataError(path, f"images[{i}] lacks 'filename'")
        if not isinstance(name, str) or not isinstance(folder or "", str):
            raise DataError(path, f"images[{i}]: 'filename' and 'filepath' must be strings")
        rel = f"{folder}/{name}" if folder else name
        key = name
        data.images[key] = _image(image_root, rel, path, f"images[{i}]")
        sents = _objects(img.get("sentences") or [], path, f"images[{i}].sentences")
        if not sents:
            raise DataError(path, f"images[{i}] ({name}) has no sentences")
        data.captions[key] = [_caption(s.get("raw"), path, f"images[{i}]") for s in sents]
        split = img.get("split", "train")
        if not isinstance(split, str):
            raise DataError(path, f"images[{i}]: 'split' {split!r} is not a string")
        data.splits[key] = "train" if split == "restval" else split
    return data


def _vqa_image(image_dir: Path, image_id: int, subtype: str | None) -> Path | None:
    candidates = []
    if subtype:
        candidates += [f"COCO_{subtype}_{image_id:012d}{e}" for e in IMAGE_EXTS]
    candidates += [f"{image_id}{e}" for e in IMAGE_EXTS]
    for name in candidates:
        if (image_dir / name).is_file():
            return image_dir / name
    hits = sorted(image_dir.glob(f"*_{image_id:012d}.*"))
    return hits[0] if hits else None


def read_vqa(questions_path: str | Path, annotations_path: str | Path,
             image_dir: str | Path) -> VLData:
    """VQA v2 questions + annotations JSON -> :class:`VLData` with ``questions``.

    Images are found as ``COCO_<data_subtype>_<id:012d>.jpg`` (the VQA v2 naming), ``<id>.jpg``
    or any ``*_<id:012d>.*`` in ``image_dir``.
    """
    qpath, apath, image_dir = Path(questions_path), Path(annotations_path), Path(image_dir)
    qjson, ajson = _load_json(qpath), _load_json(apath)
    if not qjson.get("questions"):
        raise DataError(qpath, "no 'questions'")
    answers = {}
    for i, ann in enumerate(_objects(ajson.get("annotations", []), apath, "'annotations'")):
        if "question_id" not in ann:
            raise DataError(apath, f"annotations[{i}] lacks 'question_id'")
        if not _is_id(ann["question_id"]):
            raise DataError(apath, f"annotations[{i}]: question_id {ann['question_id']!r} is "
                                   "not an integer or a string")
        human = _objects(ann.get("answers") or [], apath, f"annotations[{i}].answers")
        if not all(isinstance(a.get("answer", ""), str) for a in human):
            raise DataError(apath, f"annotations[{i}].answers: an 'answer' is not a string")
        answers[ann["question_id"]] = [a.get("answer", "") for a in human]
    data = VLData()
    subtype = qjson.get("data_subtype")
    for i, q in enumerate(_objects(qjson["questions"], qpath, "'questions'")):
        qid, image_id, text = q.get("question_id"), q.get("image_id"), q.get("question")
        if qid is None or image_id is None or not text:
            raise DataError(qpath, f"questions[{i}] lacks question_id, image_id or question")
        if not (_is_id(qid) and isinstance(text, str)
                and (isinstance(image_id, int) or str(image_id).isdecimal())
                and not isinstance(image_id, bool)):
            raise DataError(qpath, f"questions[{i}]: question_id must be an integer or a string, "
                                   "image_id an integer, question a string")
        human = [a for a in answers.get(qid, []) if a and a.strip()]
        if not human:
            raise DataError(apath, f"question {qid} has no answers")
        key = str(image_id)
        if key not in data.images:
            img = _vqa_image(image_dir, int(image_id), subtype)
            if img is None:
                raise DataError(image_dir / f"COCO_{subtype}_{int(image_id):012d}.jpg",
                                f"image file not found (image_id {image_id} in {qpath.name})")
            data.images[key] = img
        data.questions.append({"question_id": qid, "key": key, "question": text.strip(),
                               "answers": human})
    return data


def load_vl_data(root: str | Path, image_dir: str | Path | None = None) -> VLData:
    """Read every format found in a dataset folder and merge them.

    Looks for ``captions.csv`` (Flickr), ``captions.json`` (COCO), ``dataset_*.json``
    (Karpathy) and ``questions.json`` + ``annotations.json`` (VQA v2); images in
    ``image_dir`` (default ``root/images``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")
    image_dir = Path(image_dir) if image_dir else root / "images"
    parts = []
    if (root / "captions.csv").exists():
        parts.append(read_flickr_csv(root / "captions.csv", image_dir))
    if (root / "captions.json").exists():
        parts.append(read_coco_captions(root / "captions.json", image_dir))
    for karpathy in sorted(root.glob("dataset_*.json")):
        parts.append(read_karpathy(karpathy, image_dir))
    if (root / "questions.json").exists():
        parts.append(read_vqa(root / "questions.json", root / "annotations.json", image_dir))
    if not parts:
        raise DataError(root, "no captions.csv, captions.json, dataset_*.json or "
                              "questions.json found")
    merged = VLData()
    for part in parts:
        merged.images.update(part.images)
        for key, caps in part.captions.items():
            merged.captions.setdefault(key, []).extend(caps)
        merged.questions += part.questions
        merged.splits.update(part.splits)
    return merged
