"""Caption metrics reproduce the reference scores of the COCO caption code (nlg-eval vectors)."""

import json

import pytest

from ensemblab.metrics.captions import METRIC_NAMES, CaptionScorer, caption_scores
from ensemblab.testing import real_data


@pytest.fixture(scope="module")
def scorer():
    with CaptionScorer(tokenize=False) as s:  # one METEOR start for every case
        yield s


@pytest.mark.realdata
def test_reproduces_expected_scores(scorer):
    root = real_data("vl/metric_vectors/nlg_eval_example")
    expected = json.loads((root / "expected_scores.json").read_text())
    lines = {name: (root / f"{name}.txt").read_text().splitlines()
             for name in ("hyp", "ref1", "ref2")}
    gts = {i: [r1, r2] for i, (r1, r2) in enumerate(zip(lines["ref1"], lines["ref2"]))}
    res = {i: [h] for i, h in enumerate(lines["hyp"])}
    cases = [(gts, res, expected["corpus_hyp.txt_vs_ref1.txt+ref2.txt"])]
    for key in ("single_pair", "non_ascii_pair"):
        case = expected[key]
        cases.append(({0: case["refs"]}, {0: [case["hyp"]]}, case))
    for gts_i, res_i, want in cases:
        got = scorer.score(gts_i, res_i)
        for name in METRIC_NAMES:  # the source asserts 5 decimal places
            assert got[name] == pytest.approx(want[name], abs=1e-5), name


def test_ptb_tokenized_bleu_and_cider_without_java_metrics():
    # PTB tokenisation lower-cases and drops punctuation: identical captions score perfectly
    gts = {1: ["A dog runs.", "a dog runs"], 2: ["Two cats sleep!"]}
    res = {1: ["a dog runs"], 2: ["two cats sleep"]}
    out = caption_scores(gts, res, tokenize=True, metrics=("Bleu_1", "ROUGE_L"))
    assert out == pytest.approx({"Bleu_1": 1.0, "ROUGE_L": 1.0})


def test_bad_input():
    with pytest.raises(ValueError, match="same ids"):
        caption_scores({1: ["a"]}, {2: ["a"]}, tokenize=False, metrics=("Bleu_1",))
    with pytest.raises(ValueError, match="exactly one"):
        caption_scores({1: ["a"]}, {1: ["a", "b"]}, tokenize=False, metrics=("Bleu_1",))
    with pytest.raises(ValueError, match="unknown"):
        caption_scores({1: ["a"]}, {1: ["a"]}, metrics=("SPICE",))
