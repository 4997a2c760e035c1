"""``evaluate --split``: ``auto`` is the test folder (``val``) of the learner's own data and
every split folder (``all``) of another dataset; a named folder is scored as given."""

import json

import pytest

from ensemblab.cli import main
from ensemblab.errors import DataError
from ensemblab.projects.mineral_ruel.data import split_pairs
from ensemblab.synthetic.minerals import write_mineral_dataset


def test_all_is_every_split_folder(tmp_path):
    data = write_mineral_dataset(tmp_path / "d", n_train=3, n_val=2, size=64, seed=3)
    every = split_pairs(data, "all")
    assert len(every) == 5
    assert every == sorted(split_pairs(data, "train") + split_pairs(data, "val"))
    (tmp_path / "empty" / "raw").mkdir(parents=True)
    with pytest.raises(DataError, match="no split folders"):
        split_pairs(tmp_path / "empty", "all")


def test_auto_split_follows_the_data_given(tmp_path, capsys):
    data = write_mineral_dataset(tmp_path / "d", n_train=4, n_val=2, size=64, seed=3)
    other = write_mineral_dataset(tmp_path / "other", n_train=3, n_val=1, size=64, seed=4)
    run = tmp_path / "run"
    # Class 6 occurs in val/001.png but in none of the 3 training images: declared.
    assert main(["mineral_ruel", "train", "--config", "synthetic_quick", "--data", str(data),
                 "--out", str(run), "--device", "cpu", "train.epochs=2", "train.threads=1",
                 "data.allow_unseen=[6]"]) == 0

    def evaluate(*extra: str) -> tuple[dict, str]:
        capsys.readouterr()
        assert main(["mineral_ruel", "evaluate", "--run", str(run), "--device", "cpu",
                     *extra]) == 0
        return json.loads((run / "metrics.json").read_text()), capsys.readouterr().out

    metrics, out = evaluate()
    assert metrics["split"] == "val" and metrics["n_images"] == 2
    assert f"scoring 2 labelled items of {data} (split val)" in out
    metrics, out = evaluate("--data", str(other))
    assert metrics["split"] == "all" and metrics["n_images"] == 4
    assert f"scoring 4 labelled items of {other} (split all)" in out
    metrics, _ = evaluate("--split", "train")
    assert metrics["split"] == "train" and metrics["n_images"] == 4
