"""VQA v2 accuracy against the official evaluation (GT-Vision-Lab ``vqaEval.py``), by hand."""

import json

import pytest

from ensemblab.metrics.vqa import normalize_answer, vqa_accuracy, vqa_score
from ensemblab.testing import real_data


@pytest.fixture(scope="module")
def vqav2():
    root = real_data("vl/qa_fixtures/vqav2")
    anns = json.loads((root / "annotations.json").read_text())["annotations"]
    return {a["question_id"]: [x["answer"] for x in a["answers"]] for a in anns}


@pytest.mark.realdata
def test_fixture_questions_by_hand(vqav2):
    net = vqav2[458752000]  # net x6, netting, mesh, pitcher, orange
    # "net": leaving any one answer out still leaves >= 5 "net" -> min(5/3, 1) = 1 each
    assert vqa_score("net", net) == 1.0
    # "netting": the 9 subsets keeping it give 1/3, the one dropping it 0 -> 9/3/10 = 0.3
    assert vqa_score("netting", net) == pytest.approx(0.3)
    assert vqa_score("Net.", net) == 1.0  # answers differ: lower-cased, period stripped
    assert vqa_score("the mesh!", net) == pytest.approx(0.3)  # article and "!" dropped
    pitcher = vqav2[458752001]  # pitcher x9, catcher x1
    assert vqa_score("catcher", pitcher) == pytest.approx(0.3)
    assert vqa_score("a pitcher", pitcher) == 1.0  # article dropped
    orange = vqav2[458752002]  # orange x10: unanimous, compared as written
    assert vqa_score("orange", orange) == 1.0
    assert vqa_score(" orange\n", orange) == 1.0  # surrounding whitespace always stripped
    assert vqa_score("Orange", orange) == 0.0
    assert vqa_score("an orange", orange) == 0.0
    preds = ["netting", "pitcher", "blue"]
    assert vqa_accuracy(preds, [net, pitcher, orange]) == pytest.approx((0.3 + 1 + 0) / 3)


@pytest.mark.parametrize(("pred", "answers", "expected"), [
    # "!" is official punctuation: "yes!" -> "yes", 4 of 10 match -> every subset keeps >= 3
    ("yes!", ["yes"] * 4 + ["no"] * 6, 1.0),
    # "-" is spaced out in the human answers: 3 "x ray"; subsets dropping one keep 2 -> 2/3
    # (3 of 10), the other 7 keep 3 -> 1: (3 * 2/3 + 7) / 10 = 0.9
    ("x ray", ["x-ray"] * 3 + ["xray"] * 7, 0.9),
    # ":" is not official punctuation, so "3:00" stays and never equals "3 00"
    ("3 00", ["3:00"] * 3 + ["3"] * 7, 0.0),
    # unanimous answers: no normalisation on either side, "two" == "two"
    ("two", ["two"] * 10, 1.0),
    # answers differ: articles dropped from the human answers too -> 3 "dog" -> 0.9
    ("dog", ["a dog"] * 3 + ["cat"] * 7, 0.9),
])
def test_official_cases(pred, answers, expected):
    assert vqa_score(pred, answers) == pytest.approx(expected)


def test_two_of_ten():
    answers = ["2"] * 2 + ["3"] * 8
    # dropping one of the two "2": 1 match -> 1/3 (x2); dropping a "3": 2 -> 2/3 (x8)
    assert vqa_score("two", answers) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)


def test_official_normalisation():
    assert normalize_answer("Two dogs") == "2 dogs"
    assert normalize_answer(" dont\t") == "don't"
    assert normalize_answer("yes!") == "yes"
    assert normalize_answer("don't") == "don't"  # "'" is not official punctuation
    assert normalize_answer("1,000") == "1000"  # digit comma: punctuation removed
    assert normalize_answer("3.5") == "3.5"  # a decimal point stays
    assert normalize_answer("left-hand") == "left hand"
    assert normalize_answer("a - b") == "b"  # "-" beside a space is removed; "a" an article
    with pytest.raises(ValueError, match="questions"):
        vqa_accuracy(["a"], [])
