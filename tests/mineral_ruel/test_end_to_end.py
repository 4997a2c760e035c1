"""Synthetic minerals: train -> evaluate -> ensemble -> predict through the CLI; it must learn."""

import json
import shutil

import numpy as np
import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_run_config
from ensemblab.data.images import read_label_png
from ensemblab.projects.mineral_ruel.commands import evaluate
from ensemblab.projects.mineral_ruel.inference import module_from_config
from ensemblab.synthetic.minerals import write_mineral_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mineral")
    data = write_mineral_dataset(root / "data", n_train=12, n_val=3, size=64, seed=1)
    run = root / "run"
    code = main(["mineral_ruel", "train", "--config", "synthetic_quick", "--data", str(data),
                 "--out", str(run), "--device", "cpu", "data.holdout=0.25", "data.tile=32",
                 "train.epochs=10"])
    assert code == 0
    return data, run


def test_learner_beats_its_untrained_self(trained, tmp_path):
    data, run = trained
    assert main(["mineral_ruel", "evaluate", "--run", str(run), "--device", "cpu"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["n_images"] == 3
    # The same network with its initial weights (epoch 0) is the chance baseline.
    untrained = tmp_path / "untrained"
    shutil.copytree(run, untrained)
    ckpt_path = untrained / "checkpoints" / "best.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    ckpt["state_dict"] = module_from_config(load_run_config(untrained)).state_dict()
    torch.save(ckpt, ckpt_path)
    base = evaluate(str(untrained), None, "val", "cpu")
    assert metrics["miou"] > base["miou"] + 0.1, (metrics["miou"], base["miou"])
    # The background-like gangue (class 1) is found, and pixels beat all-background guessing.
    assert metrics["iou"][1] > 0.2
    truth = np.concatenate([read_label_png(p).ravel()
                            for p in sorted((data / "seg" / "val").glob("*.png"))])
    assert metrics["pixel_accuracy"] > np.mean(truth == 0)


def test_ensemble_of_copies_equals_the_learner_and_predict_writes_maps(trained, tmp_path):
    data, run = trained
    runs = []
    for name in ("a", "b", "c"):
        shutil.copytree(run, tmp_path / name)
        runs.append(str(tmp_path / name))
    out = tmp_path / "ens"
    assert main(["mineral_ruel", "ensemble", "--runs", *runs, "--rank-by", "iou:gangue",
                 "--out", str(out), "--device", "cpu"]) == 0
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["chosen_scheme"] in ("RUEL-3-PV", "RUEL-3-WV")
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows["RUEL-3-WV"]["miou"] == pytest.approx(rows["a"]["miou"])
    assert rows["RUEL-3-PV"]["tpi_s"] > rows["a"]["tpi_s"]
    assert "| RUEL-3-WV |" in (out / "tables.md").read_text()
    pred = tmp_path / "pred"
    assert main(["mineral_ruel", "predict", "--run", str(out), "--input",
                 str(data / "raw" / "val"), "--out", str(pred), "--device", "cpu"]) == 0
    labels = read_label_png(pred / "000.png")
    assert labels.shape == (64, 64) and labels.max() < 9
    assert (pred / "000_overlay.png").is_file()
    # Three identical learners vote exactly as the learner alone.
    single = tmp_path / "single"
    assert main(["mineral_ruel", "predict", "--run", str(run), "--input",
                 str(data / "raw" / "val" / "000.jpg"), "--out", str(single),
                 "--device", "cpu"]) == 0
    assert np.array_equal(labels, read_label_png(single / "000.png"))
