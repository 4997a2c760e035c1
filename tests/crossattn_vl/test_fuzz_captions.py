"""Property-based tests of the vision-language readers (:mod:`ensemblab.projects.crossattn_vl.
readers`): Flickr-style caption CSV, COCO captions JSON, Karpathy split JSON and VQA v2
questions + annotations JSON.

Random valid files round-trip exactly (the captions, questions and answers read back are the
ones written); truncated or byte-flipped files and values of the wrong type either still read
or fail with one :class:`~ensemblab.errors.EnsemblabError` line naming the file.
Small and derandomized.
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ensemblab.projects.crossattn_vl.readers import (
    read_coco_captions,
    read_flickr_csv,
    read_karpathy,
    read_vqa,
)
from ensemblab.testing import corruptions, json_mutations, read_or_one_line_error

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WRONG_TYPES = settings(FUZZ, max_examples=100)
ROUND_TRIP = settings(FUZZ, max_examples=20)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_vl")


def _fresh(work: Path) -> Path:
    root = Path(tempfile.mkdtemp(dir=work))
    (root / "images").mkdir()
    return root


# Any text a caption may hold (commas, quotes, non-ASCII), stripped as the readers strip it.
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16
                ).map(str.strip).filter(bool)


@st.composite
def captioned_images(draw) -> dict[int, list[str]]:
    """``{image_id: [caption, ...]}`` for one to four images with one to three captions."""
    ids = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=4, unique=True))
    return {i: draw(st.lists(texts, min_size=1, max_size=3)) for i in ids}


def _touch_images(root: Path, names) -> None:
    for name in names:
        (root / "images" / name).write_bytes(b"\xff\xd8")  # the readers only check existence


# --------------------------------------------------------------------------- writers
def _flickr_csv(root: Path, captions: dict[int, list[str]]) -> Path:
    _touch_images(root, (f"{i}.jpg" for i in captions))
    path = root / "captions.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "caption"])
        writer.writerows((f"{i}.jpg", c) for i, caps in captions.items() for c in caps)
    return path


def _coco_doc(captions: dict[int, list[str]]) -> dict:
    return {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in captions],
            "annotations": [{"image_id": i, "caption": c, "id": n}
                            for n, (i, c) in enumerate((i, c) for i, caps in captions.items()
                                                       for c in caps)]}


def _karpathy_doc(captions: dict[int, list[str]], splits: list[str]) -> dict:
    return {"images": [{"filename": f"{i}.jpg", "split": s,
                        "sentences": [{"raw": c} for c in caps]}
                       for (i, caps), s in zip(captions.items(), splits)]}


def _vqa_docs(questions: dict[int, list[str]], answers: list[list[str]]) -> tuple[dict, dict]:
    rows = [(qid, image_id, q) for qid, (image_id, q) in enumerate(
        (i, q) for i, qs in questions.items() for q in qs)]
    return ({"data_subtype": "train2014",
             "questions": [{"question_id": qid, "image_id": i, "question": q}
                           for qid, i, q in rows]},
            {"annotations": [{"question_id": qid, "answers": [{"answer": a} for a in ans]}
                             for (qid, _, _), ans in zip(rows, answers)]})


def _write_json(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _read_vqa(root: Path):
    return read_vqa(root / "questions.json", root / "annotations.json", root / "images")


# --------------------------------------------------------------------------- round trips
def _by_key(captions: dict[int, list[str]], suffix: str = "") -> dict[str, list[str]]:
    return {f"{i}{suffix}": caps for i, caps in captions.items()}


@ROUND_TRIP
@given(captions=captioned_images())
def test_flickr_csv_round_trips(work, captions):
    root = _fresh(work)
    data = read_flickr_csv(_flickr_csv(root, captions), root / "images")
    assert data.captions == _by_key(captions, ".jpg")


@ROUND_TRIP
@given(captions=captioned_images())
def test_coco_captions_round_trip(work, captions):
    root = _fresh(work)
    _touch_images(root, (f"{i}.jpg" for i in captions))
    path = _write_json(root / "captions.json", _coco_doc(captions))
    assert read_coco_captions(path, root / "images").captions == _by_key(captions)


@ROUND_TRIP
@given(data=st.data(), captions=captioned_images())
def test_karpathy_round_trips(work, data, captions):
    splits = data.draw(st.lists(st.sampled_from(["train", "val", "test"]),
                                min_size=len(captions), max_size=len(captions)))
    root = _fresh(work)
    _touch_images(root, (f"{i}.jpg" for i in captions))
    read = read_karpathy(_write_json(root / "dataset_x.json", _karpathy_doc(captions, splits)),
                         root / "images")
    assert read.captions == _by_key(captions, ".jpg")
    assert list(read.splits.values()) == splits


@ROUND_TRIP
@given(data=st.data(), questions=captioned_images())
def test_vqa_round_trips(work, data, questions):
    n = sum(len(qs) for qs in questions.values())
    answers = data.draw(st.lists(st.lists(texts, min_size=1, max_size=10), min_size=n, max_size=n))
    root = _fresh(work)
    _touch_images(root, (f"{i}.jpg" for i in questions))
    qdoc, adoc = _vqa_docs(questions, answers)
    _write_json(root / "questions.json", qdoc)
    _write_json(root / "annotations.json", adoc)
    read = _read_vqa(root)
    assert [(q["key"], q["question"], q["answers"]) for q in read.questions] == [
        (str(q["image_id"]), q["question"], a) for q, a in zip(qdoc["questions"], answers)]


# --------------------------------------------------------------------------- corrupt files
def _json_case(root: Path, kind: str, captions: dict[int, list[str]]):
    """(files that may be corrupted, reader) for one JSON format."""
    _touch_images(root, (f"{i}.jpg" for i in captions))
    if kind == "coco":
        path = _write_json(root / "captions.json", _coco_doc(captions))
        return {path: _coco_doc(captions)}, lambda: read_coco_captions(path, root / "images")
    if kind == "karpathy":
        doc = _karpathy_doc(captions, ["train"] * len(captions))
        path = _write_json(root / "dataset_x.json", doc)
        return {path: doc}, lambda: read_karpathy(path, root / "images")
    qdoc, adoc = _vqa_docs(captions, [["yes", "two"]] * sum(map(len, captions.values())))
    return ({_write_json(root / "questions.json", qdoc): qdoc,
             _write_json(root / "annotations.json", adoc): adoc}, lambda: _read_vqa(root))


JSON_KINDS = st.sampled_from(["coco", "karpathy", "vqa"])


@WRONG_TYPES
@given(data=st.data(), kind=JSON_KINDS, captions=captioned_images())
def test_json_with_wrong_types_fails_in_one_line(work, data, kind, captions):
    docs, read = _json_case(_fresh(work), kind, captions)
    path = data.draw(st.sampled_from(sorted(docs)))
    _write_json(path, data.draw(json_mutations(docs[path])))
    read_or_one_line_error(read, *(p.name for p in docs))


@FUZZ
@given(data=st.data(), kind=JSON_KINDS, captions=captioned_images())
def test_corrupt_json_fails_in_one_line(work, data, kind, captions):
    docs, read = _json_case(_fresh(work), kind, captions)
    path = data.draw(st.sampled_from(sorted(docs)))
    path.write_bytes(data.draw(corruptions(path.read_bytes())))
    read_or_one_line_error(read, *(p.name for p in docs))


@FUZZ
@given(data=st.data(), captions=captioned_images())
def test_corrupt_flickr_csv_fails_in_one_line(work, data, captions):
    root = _fresh(work)
    path = _flickr_csv(root, captions)
    path.write_bytes(data.draw(corruptions(path.read_bytes())))
    read_or_one_line_error(lambda: read_flickr_csv(path, root / "images"), path.name)


@FUZZ
@given(data=st.data(), captions=captioned_images(),
       cell=st.sampled_from(["", " ", "missing.jpg", '"', "a,b", "\x00", "\u00e9"]))
def test_flickr_csv_with_a_bad_cell_fails_in_one_line(work, data, captions, cell):
    root = _fresh(work)
    path = _flickr_csv(root, captions)
    lines = path.read_text(encoding="utf-8").splitlines()
    row = data.draw(st.integers(0, len(lines) - 1))
    lines[row] = data.draw(st.sampled_from([f"{cell},x", f"1.jpg,{cell}", cell]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read_or_one_line_error(lambda: read_flickr_csv(path, root / "images"), path.name)
