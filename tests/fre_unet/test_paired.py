"""Paired-seed comparison: hand-computed interval, pairing by seed, the compare command."""

import json
import math

import pytest
import yaml

from ensemblab.cli import main
from ensemblab.errors import EnsemblabError
from ensemblab.projects.fre_unet.paired import paired_difference, paired_scores
from ensemblab.run_record import write_run_record

A = [0.70, 0.72, 0.71, 0.69, 0.73]
B = [0.72, 0.73, 0.74, 0.70, 0.76]


def test_paired_difference_hand_computed():
    r = paired_difference(A, B)
    # d = [.02, .01, .03, .01, .03]: mean .02, deviations 0, -.01, .01, -.01, .01,
    # s_d = sqrt(4e-4 / 4) = .01; t_{0.975, 4} = 2.776445 (t table);
    # half width = 2.776445 * .01 / sqrt(5) = .0124166.
    assert r["n"] == 5 and r["b_wins"] == 5
    assert r["diff"] == pytest.approx([0.02, 0.01, 0.03, 0.01, 0.03])
    assert r["diff_mean"] == pytest.approx(0.02)
    assert r["diff_std"] == pytest.approx(0.01)
    assert r["t_quantile"] == pytest.approx(2.776445, abs=1e-6)
    assert r["ci_low"] == pytest.approx(0.0075834, abs=1e-7)
    assert r["ci_high"] == pytest.approx(0.0324166, abs=1e-7)
    # Per variant: mean .71, std sqrt(1e-3 / 4) = .0158114; mean .73, std sqrt(2e-3 / 4).
    assert (r["a_mean"], r["a_std"]) == pytest.approx((0.71, 0.0158114), abs=1e-7)
    assert (r["b_mean"], r["b_std"]) == pytest.approx((0.73, math.sqrt(5e-4)), abs=1e-7)
    # t = .02 / (.01 / sqrt 5) = sqrt 20; for 4 degrees of freedom with tan(theta) = t / 2,
    # P(|T| > t) = 1 - sin(theta) (1 + cos^2(theta) / 2); cos^2 = 1/6 -> 1 - sqrt(5/6) 13/12.
    assert r["p_value"] == pytest.approx(1 - math.sqrt(5 / 6) * 13 / 12, abs=1e-9)


def test_unpaired_spread_is_wider_than_the_paired_interval():
    # The seeds' common offsets cancel in the differences: the paired interval excludes 0
    # although the two means lie within one std of each other.
    r = paired_difference(A, B)
    assert r["b_mean"] - r["a_mean"] < r["a_std"] + r["b_std"]
    assert r["ci_low"] > 0
    sign_flipped = paired_difference(A, [0.72, 0.71, 0.74, 0.68, 0.76])
    assert sign_flipped["ci_low"] < 0 < sign_flipped["ci_high"]
    assert sign_flipped["p_value"] > 0.05


def test_equal_differences_and_bad_input():
    r = paired_difference([0.5, 0.6, 0.7], [0.6, 0.7, 0.8], confidence=0.9)
    assert r["diff_std"] == pytest.approx(0.0, abs=1e-12)
    assert r["ci_low"] == pytest.approx(0.1) and r["ci_high"] == pytest.approx(0.1)
    with pytest.raises(EnsemblabError, match="at least 2 pairs"):
        paired_difference([0.5], [0.6])
    with pytest.raises(EnsemblabError, match="equal lengths"):
        paired_difference([0.5, 0.6], [0.6])


def _metrics(miou, membrane):
    return {"miou": miou, "iou": {"background": 0.9, "membrane": membrane}}


def test_paired_scores_pair_by_seed():
    a = {0: _metrics(0.70, 0.6), 1: _metrics(0.72, 0.7), 2: _metrics(0.71, 0.8)}
    b = {2: _metrics(0.74, 0.8), 0: _metrics(0.72, 0.7), 1: _metrics(0.73, 0.7), 7: _metrics(1, 1)}
    result = paired_scores(a, b)
    assert result["seeds"] == [0, 1, 2] and result["unpaired"] == [7]
    assert result["rows"]["miou"]["diff"] == pytest.approx([0.02, 0.01, 0.03])
    assert result["rows"]["iou_membrane"]["diff"] == pytest.approx([0.1, 0.0, 0.0])
    assert result["rows"]["iou_background"]["diff_mean"] == pytest.approx(0.0)
    with pytest.raises(EnsemblabError, match="only 1 seeds in both"):
        paired_scores({0: a[0]}, b)


def _seed_run(folder, seed, miou):
    folder.mkdir(parents=True)
    write_run_record(folder, "fre_unet", "model")
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
    (folder / "metrics.json").write_text(json.dumps(
        {"split": "test", "seed": seed, **_metrics(miou, miou)}))


def test_compare_command_writes_json_and_markdown(tmp_path, capsys):
    for seed, (a, b) in enumerate(zip(A, B)):
        _seed_run(tmp_path / "baseline" / f"seed{seed}", seed, a)
        _seed_run(tmp_path / "fre" / f"seed{seed}", seed, b)
    assert main(["fre_unet", "compare", "--runs-a", str(tmp_path / "baseline"),
                 "--runs-b", str(tmp_path / "fre"), "--out", str(tmp_path / "cmp")]) == 0
    assert "paired difference +2.00 [+0.76, +3.24]" in capsys.readouterr().out
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["seeds"] == [0, 1, 2, 3, 4]
    assert saved["rows"]["miou"]["ci_low"] == pytest.approx(0.0075834, abs=1e-7)
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| mIoU | 71.00 ± 1.58 | 73.00 ± 2.24 | +2.00 | [+0.76, +3.24] | 0.011 | 5/5 | 5 |" \
        in table
    assert "| 4 | 73.00 | 76.00 | +3.00 |" in table
