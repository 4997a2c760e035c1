"""RUEL ranking, voting schemes, timing and tables on hand-made label maps."""

import json

import numpy as np
import pytest

from ensemblab.errors import EnsemblabError
from ensemblab.projects.mineral_ruel import ruel
from ensemblab.projects.mineral_ruel.report import seed_summary, summarise, write_results


class FakeLearner:
    """Returns fixed label maps (one per call, in order) and a fixed inference time."""

    def __init__(self, name, maps, seconds=0.5):
        self.name, self.maps, self.seconds, self.calls = name, list(maps), seconds, 0

    def predict(self, image):
        labels = self.maps[self.calls % len(self.maps)]
        self.calls += 1
        return labels, self.seconds


def test_pv_and_wv_follow_eq_5_7_and_break_ties_to_the_higher_rank():
    maps = np.array([1, 2, 3, 2], np.uint8).reshape(4, 1, 1)
    # WV weights 0.4, 0.3, 0.2, 0.1: class 1 = 0.4 and class 2 = 0.3 + 0.1 tie -> rank 0 wins.
    assert ruel.vote(maps, ruel.Scheme(4, "wv"), 4)[0, 0] == 1
    assert ruel.vote(maps, ruel.Scheme(4, "pv"), 4)[0, 0] == 2  # two votes beat one
    # top-3 only: [1, 2, 3]: all tied under PV -> the best-ranked learner's class.
    assert ruel.vote(maps, ruel.Scheme(3, "pv"), 4)[0, 0] == 1
    assert [s.name for s in ruel.all_schemes(4)] == [
        "RUEL-3-PV", "RUEL-3-WV", "RUEL-4-PV", "RUEL-4-WV"]


def test_parse_rank_by():
    classes = ["background", "gangue", "pyrite"]
    assert ruel.parse_rank_by("miou", classes) is None
    assert ruel.parse_rank_by("iou:gangue", classes) == 1
    assert ruel.parse_rank_by("iou:2", classes) == 2
    with pytest.raises(EnsemblabError, match="unknown class"):
        ruel.parse_rank_by("iou:quartz", classes)
    with pytest.raises(EnsemblabError, match="miou"):
        ruel.parse_rank_by("f1", classes)


def test_ranking_orders_by_class_iou_and_test_scores_and_times(tmp_path):
    truth = np.array([[0, 1], [1, 2]], np.uint8)
    image = np.zeros((2, 2, 3), np.uint8)
    perfect = truth.copy()
    no_gangue = np.array([[0, 0], [0, 2]], np.uint8)
    half = np.array([[0, 1], [0, 2]], np.uint8)
    learners = [FakeLearner("a", [no_gangue]), FakeLearner("b", [half]),
                FakeLearner("c", [perfect])]
    ranked, scores, maps = ruel.rank_learners(learners, [(image, truth)], 1, 3)
    assert [lr.name for lr in ranked] == ["c", "b", "a"]
    assert scores == pytest.approx([1.0, 0.5, 0.0])
    schemes = ruel.all_schemes(3)
    tallies = ruel.evaluate_test(ranked, schemes, [(image, truth)], 3)
    assert tallies["RUEL-3-PV"].seconds == [pytest.approx(1.5 + tallies["RUEL-3-PV"]
                                                          .vote_seconds[0])]
    # PV of (perfect, half, no_gangue): pixel (1,0) has votes 1, 0, 0 -> 0 (wrong);
    # WV weights 1/2, 1/3, 1/6: class 1 = 1/2 vs class 0 = 1/2 -> tie -> best rank -> 1.
    rows = summarise(tallies, ["background", "gangue", "pyrite"], 1)
    assert rows["RUEL-3-WV"]["miou"] == pytest.approx(1.0)
    assert rows["RUEL-3-PV"]["rank_iou"] == pytest.approx(0.5)
    assert rows["c"]["tpi_s"] == pytest.approx(0.5)
    md = write_results(tmp_path, rows, ["background", "gangue", "pyrite"], "gangue", "## t")
    text = md.read_text()
    assert "| RUEL-3-WV | 100.00 | 100.00 | 100.00 |" in text
    assert "Table 6" in text and "Table 7" in text and (tmp_path / "results.json").is_file()


def _seed_folder(root, seed, miou_a, miou_b, miou_scheme, chosen="RUEL-3-WV"):
    row = lambda m: {"f1": m, "rank_iou": m, "miou": m}  # noqa: E731
    folder = root / f"s{seed}"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"rank_label": "gangue", "rows": {
        "a": row(miou_a), "b": row(miou_b), chosen: row(miou_scheme)}}))
    top = "a" if seed != 2 else "b"  # the hold-out ranks b first in seed 2
    (folder / "ensemble.json").write_text(json.dumps({
        "members": [f"/runs/s{seed}/{top}", "/runs/x"], "chosen_scheme": chosen}))
    return folder


def test_seed_summary_pairs_the_chosen_scheme_with_the_top_ranked_learner(tmp_path):
    folders = [_seed_folder(tmp_path, 0, 0.50, 0.40, 0.56),
               _seed_folder(tmp_path, 1, 0.60, 0.50, 0.58),
               _seed_folder(tmp_path, 2, 0.70, 0.52, 0.64)]
    summary = seed_summary(folders, tmp_path / "out")
    # top-ranked (hold-out): a, a, b -> 0.50, 0.60, 0.52; chosen scheme 0.56, 0.58, 0.64.
    assert summary["rows"]["top-ranked learner (hold-out)"]["miou"] == [0.50, 0.60, 0.52]
    assert summary["gain_miou"] == pytest.approx([0.06, -0.02, 0.12])
    assert "in 2 of 3 seeds" in summary["sentence"]
    text = (tmp_path / "out" / "seeds.md").read_text()
    # a: 50, 60, 70 -> mean 60.00, sample std 10.00
    assert "| a | 60.00 ± 10.00 | 60.00 ± 10.00 | 60.00 ± 10.00 |" in text
    assert "seed 2: b / RUEL-3-WV" in text
