"""Data formats of crossattn_vl: real VQA v2 sample, Flickr CSV, COCO JSON and bad input."""

import json

import pytest

from ensemblab.errors import DataError
from ensemblab.metrics.vqa import vqa_accuracy
from ensemblab.projects.crossattn_vl.data import answer_vocab, soft_target, split_keys
from ensemblab.projects.crossattn_vl.readers import (
    load_vl_data,
    read_coco_captions,
    read_flickr_csv,
    read_vqa,
)
from ensemblab.synthetic.shapes import write_shapes_dataset
from ensemblab.testing import real_data


@pytest.mark.realdata
def test_vqav2_sample_through_loader():
    root = real_data("vl/qa_fixtures")
    data = read_vqa(root / "vqav2/questions.json", root / "vqav2/annotations.json",
                    root / "images/vqav2")
    assert len(data.questions) == 3 and set(data.images) == {"458752"}
    assert data.images["458752"].name == "COCO_train2014_000000458752.jpg"
    vocab = answer_vocab(data.questions)
    assert vocab[:2] == ["orange", "pitcher"]  # 10 + 1 orange, 9 + 1 pitcher
    index = {a: i for i, a in enumerate(vocab)}
    target = soft_target(data.questions[0]["answers"], index)
    assert target[index["net"]] == 1.0 and target[index["netting"]] == pytest.approx(1 / 3)
    answers = [q["answers"] for q in data.questions]
    assert vqa_accuracy(["net", "pitcher", "orange"], answers) == pytest.approx(1.0)
    # 'netting' was said once: 9 of 10 leave-one-out subsets score 1/3 -> 0.3
    assert vqa_accuracy(["netting"], answers[:1]) == pytest.approx(0.3)


@pytest.mark.realdata
def test_flickr8k_sample_reads():
    root = real_data("vl/flickr8k")
    data = load_vl_data(root)
    assert len(data.images) == 800 and all(len(c) == 5 for c in data.captions.values())
    splits = split_keys(data, (0.75, 0.125, 0.125), seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [600, 100, 100]


def test_missing_image_is_a_data_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "captions.csv").write_text("image,caption\nnope.jpg,a dog\n")
    with pytest.raises(DataError, match="nope.jpg: image file not found"):
        load_vl_data(tmp_path)


def test_empty_caption_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty caption file"):
        read_flickr_csv(tmp_path / "empty.csv", tmp_path)
    (tmp_path / "header.csv").write_text("image,caption\n")
    with pytest.raises(DataError, match="empty caption file"):
        read_flickr_csv(tmp_path / "header.csv", tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "blank.csv").write_text("image,caption\na.jpg,  \n")
    with pytest.raises(DataError, match="empty caption at row 2"):
        read_flickr_csv(tmp_path / "blank.csv", tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError, match="empty caption file"):
        read_coco_captions(tmp_path / "c.json", tmp_path)


def test_question_without_answers(tmp_path):
    (tmp_path / "1.jpg").write_bytes(b"")
    q = {"questions": [{"image_id": 1, "question": "what?", "question_id": 7}]}
    a = {"annotations": [{"question_id": 7, "answers": []}]}
    (tmp_path / "q.json").write_text(json.dumps(q))
    (tmp_path / "a.json").write_text(json.dumps(a))
    with pytest.raises(DataError, match="a.json: question 7 has no answers"):
        read_vqa(tmp_path / "q.json", tmp_path / "a.json", tmp_path)


def test_shapes_generator_is_deterministic_and_readable(tmp_path):
    a = write_shapes_dataset(tmp_path / "a", n_images=12, size=32, seed=3)
    b = write_shapes_dataset(tmp_path / "b", n_images=12, size=32, seed=3)
    for name in ("captions.json", "questions.json", "annotations.json"):
        assert (a / name).read_text() == (b / name).read_text()
    data = load_vl_data(a)
    assert len(data.images) == 12 and len(data.questions) == 36
    assert all(len(c) == 3 for c in data.captions.values())
