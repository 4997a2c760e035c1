"""``sartorius_cells seeds``: mean ± std over the ``ensemble`` folders of several seeds."""

import json

import pytest

from ensemblab.cli import main
from ensemblab.projects.sartorius_cells import ENSEMBLE, MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.ensemble.seeds import mean_std, seed_summary
from ensemblab.run_record import write_run_record


def _ensemble_folder(path, setup1, setup3, heldout3, fold):
    """An ``ensemble`` output folder of one seed: scores.json, its members' manifest and the
    first member's config with its validation and held-out folds."""
    write_run_record(path, PROJECT, ENSEMBLE)
    scores = {
        "setup1_nms": {"kaggle_fit": setup1, "kaggle_crossfit": setup1 - 0.01,
                       "kaggle_heldout": setup1 - 0.05},
        "setup2_mask_vote": {"kaggle_fit": setup1 + 0.01, "kaggle_crossfit": setup1},
        "setup3_consensus": {"kaggle_fit": setup3, "kaggle_crossfit": setup3 - 0.01,
                             "kaggle_heldout": heldout3},
        "mrcnn_alone": {"kaggle_fit": setup1, "kaggle_heldout": setup1 - 0.05},
        "mrcnn_boxes": {"box_AP50": 0.6, "box_weight": 1.0},
        "mrcnn_masks_on_fused_boxes": {"kaggle_fit": 0.25},
        "train_seconds": {"mrcnn": 600.0, "yolox": None},
    }
    (path / "scores.json").write_text(json.dumps(scores))
    run = path / "members" / "mrcnn"
    write_run_record(run, PROJECT, MEMBER)
    (run / "config.yaml").write_text(
        f"data:\n  split:\n    val_ids: [set{int(fold[0][3:]) + 4}]\n    test_ids: {fold}\n")
    (path / "manifest_members.yaml").write_text(
        "name: e\nsetup: consensus\nmembers:\n"
        f"  - {{name: mrcnn, kind: maskrcnn, run: {run}, config: usiigaci_maskrcnn_lite0}}\n")
    return path


def test_mean_std_is_the_sample_std():
    assert mean_std([0.30, 0.32, 0.34]) == "0.320 ± 0.020"
    assert mean_std([0.25]) == "0.250 ± 0.000"
    assert mean_std([]) == "-"
    assert mean_std([16.96, 17.54], 1) == "17.2 ± 0.4"


def test_seeds_tabulate_set_ups_members_and_the_paired_gain(tmp_path, capsys):
    folders = [_ensemble_folder(tmp_path / f"s{i}", s1, s3, h3, fold) for i, (s1, s3, h3, fold)
               in enumerate([(0.24, 0.30, 0.26, ["set1"]), (0.26, 0.32, 0.28, ["set2"]),
                             (0.25, 0.24, 0.20, ["set3"])])]
    assert main(["sartorius_cells", "seeds", "--ensembles", *map(str, folders),
                 "--out", str(tmp_path / "table")]) == 0
    summary = json.loads((tmp_path / "table" / "seeds.json").read_text())
    assert summary["setups"]["setup3_consensus"]["kaggle_heldout"] == [0.26, 0.28, 0.20]
    assert summary["setups"]["setup2_mask_vote"]["kaggle_heldout"] == []
    assert summary["held_out"] == [["set1"], ["set2"], ["set3"]]
    assert summary["validation"] == [["set5"], ["set6"], ["set7"]]
    assert summary["members"]["mrcnn"]["train_minutes"] == [10.0, 10.0, 10.0]
    assert summary["members"]["yolox"]["train_minutes"] == []
    # set-up 3 - set-up 1, fitted: +0.06, +0.06, -0.01 -> 2 of 3 seeds, mean 0.037
    assert summary["sentence"].startswith("Set-up 3 beats set-up 1 in 2 of 3 seeds (fitted); "
                                          "gain fitted 0.037 ± 0.040")
    text = (tmp_path / "table" / "seeds.md").read_text()
    assert "| (3) consensus: YOLOX + Mask R-CNNs find, all masks vote | 0.287 ± 0.042 | " \
           "0.277 ± 0.042 | 0.247 ± 0.042 |" in text
    assert "| mrcnn | 0.250 ± 0.010 | 0.200 ± 0.010 | 0.250 ± 0.000 | 0.600 ± 0.000 | " \
           "10.0 ± 0.0 |" in text
    assert "Held-out images per seed: s0: set1; s1: set2; s2: set3." in text
    assert "Validation images per seed: s0: set5; s1: set6; s2: set7." in text
    assert text in capsys.readouterr().out


def test_a_folder_that_is_not_an_ensemble_is_one_line(tmp_path, capsys):
    write_run_record(tmp_path / "member", PROJECT, MEMBER)
    assert main(["sartorius_cells", "seeds", "--ensembles", str(tmp_path / "member"),
                 "--out", str(tmp_path / "table")]) == 2
    err = capsys.readouterr().err
    assert "member" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "table").exists()


def test_an_unfinished_ensemble_is_refused(tmp_path):
    from ensemblab.errors import ConfigError

    write_run_record(tmp_path / "e", PROJECT, ENSEMBLE)
    with pytest.raises(ConfigError, match="no scores.json"):
        seed_summary([tmp_path / "e"], tmp_path / "table")
