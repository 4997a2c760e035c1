"""Hold-out and test (``seg/val``) mask values checked against the training masks before a run
folder exists: a value that is no class, or a class the training masks lack, stops ``train``."""

import numpy as np
import pytest
from PIL import Image

from ensemblab.cli import main
from ensemblab.errors import DataError
from ensemblab.projects.mineral_ruel.data import holdout_split, split_pairs
from ensemblab.projects.mineral_ruel.module import MineralDataModule
from ensemblab.synthetic.minerals import MINERAL_CLASSES, write_mineral_dataset


def _plant(mask_path, value: int) -> None:
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[10:15, 20:25] = value
    Image.fromarray(mask).save(mask_path)


def _drop_class(mask_paths, value: int) -> None:
    for path in mask_paths:
        mask = np.asarray(Image.open(path)).copy()
        mask[mask == value] = 1
        Image.fromarray(mask).save(path)


@pytest.fixture
def minerals(tmp_path):
    return write_mineral_dataset(tmp_path / "minerals", n_train=4, n_val=1, size=64, seed=0)


def test_value_outside_the_classes_in_a_val_mask_stops_train(minerals, tmp_path, capsys):
    _plant(minerals / "seg" / "val" / "000.png", 201)
    out = tmp_path / "run"
    code = main(["mineral_ruel", "train", "--config", "synthetic_quick", "--data", str(minerals),
                 "--out", str(out), "--device", "cpu"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "seg/val/000.png" in lines[0] and "label value 201 (25 px)" in lines[0]
    assert "not a class" in lines[0] and "0 background" in lines[0]  # the values found
    assert not out.exists()


def test_class_missing_from_training_stops_unless_declared(minerals, tmp_path):
    _drop_class([m for _, m in split_pairs(minerals, "all")], 8)
    _plant(minerals / "seg" / "val" / "000.png", 8)
    out = tmp_path / "run"
    assert main(["mineral_ruel", "train", "--config", "synthetic_quick", "--data", str(minerals),
                 "--out", str(out), "--device", "cpu"]) == 2
    assert not out.exists()
    dm = MineralDataModule(minerals, 9, tile=32, holdout=0.25)
    dm.setup()
    with pytest.raises(DataError, match=r"000.png: test label value 8 \(sphalerite, 25 px\) "
                                        r"never occurs in the training masks"):
        dm.check_labels(MINERAL_CLASSES, [])
    dm.check_labels(MINERAL_CLASSES, [8])  # declared in data.allow_unseen: passes


def test_class_only_in_the_holdout_stops(minerals):
    train, rank = holdout_split(split_pairs(minerals, "train"), 0.25)
    _drop_class([m for _, m in train], 8)
    _plant(rank[0][1], 8)
    dm = MineralDataModule(minerals, 9, tile=32, holdout=0.25)
    dm.setup()
    with pytest.raises(DataError, match=rf"{rank[0][1].name}: hold-out label value 8 "
                                        r"\(sphalerite, 25 px\)"):
        dm.check_labels(MINERAL_CLASSES, [])
