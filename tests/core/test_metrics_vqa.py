"""VQA v2 accuracy: hand-checked questions of the real VQA v2 fixture and the official quirks."""

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
    assert vqa_score("Net.", net) == 1.0  # lower-cased, period stripped
    pitcher = vqav2[458752001]  # pitcher x9, catcher x1
    assert vqa_score("catcher", pitcher) == pytest.approx(0.3)
    assert vqa_score("a pitcher", pitcher) == 1.0  # article dropped
    orange = vqav2[458752002]  # orange x10
    assert vqa_score("orange", orange) == 1.0
    preds = ["netting", "pitcher", "blue"]
    assert vqa_accuracy(preds, [net, pitcher, orange]) == pytest.approx((0.3 + 1 + 0) / 3)


def test_two_of_ten():
    answers = ["2"] * 2 + ["3"] * 8
    # dropping one of the two "2": 1 match -> 1/3 (x2); dropping a "3": 2 -> 2/3 (x8)
    assert vqa_score("two", answers) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)


def test_official_normalisation_quirks():
    assert normalize_answer("Two dogs") == "2 dogs"
    assert normalize_answer(" dont\t") == "don’t"
    assert normalize_answer("yes!") == "yes!"  # "!" is not in the official list
    assert normalize_answer("1,000") == "1000"  # digit comma: punctuation removed
    assert normalize_answer("3.5") == "3.5"  # a decimal point stays
    # unanimous human answers are not normalised, so "two" x10 never equals "2"
    assert vqa_score("two", ["two"] * 10) == 0.0
    with pytest.raises(ValueError, match="questions"):
        vqa_accuracy(["a"], [])
