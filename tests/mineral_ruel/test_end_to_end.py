"""Synthetic minerals through the CLI: three different learners learn, RUEL-3 beats its worst
member and votes exactly as specified, copies vote as one learner, predict writes full maps."""

import json
import shutil

import numpy as np
import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_run_config
from ensemblab.data.images import read_label_png
from ensemblab.projects.mineral_ruel.commands import evaluate
from ensemblab.projects.mineral_ruel.data import load_image, split_pairs, to_tensor
from ensemblab.projects.mineral_ruel.demo import LEARNERS
from ensemblab.projects.mineral_ruel.inference import (
    Learner,
    module_from_config,
    tiled_probabilities,
)
from ensemblab.synthetic.minerals import write_mineral_dataset

# 6 of synthetic_quick's 16 epochs: every margin below still holds, in a third of the time.
SCHEDULE = ["train.epochs=6"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The demo's three learners on 12 training images (3 held out for ranking), 4 test: the
    two pretrained U-Nets reach ~0.6 mIoU, the random-init Res-UNet ~0.33."""
    root = tmp_path_factory.mktemp("mineral")
    data = write_mineral_dataset(root / "data", n_train=12, n_val=4, size=128, seed=1)
    runs = {}
    for name, overrides in LEARNERS.items():
        runs[name] = root / name
        assert main(["mineral_ruel", "train", "--config", "synthetic_quick", "--data", str(data),
                     "--out", str(runs[name]), "--device", "cpu", *overrides, *SCHEDULE]) == 0
    return data, runs


def test_each_learner_beats_its_untrained_self(trained, tmp_path):
    data, runs = trained
    truth = np.concatenate([read_label_png(p).ravel()
                            for p in sorted((data / "seg" / "val").glob("*.png"))])
    for name, run in runs.items():
        assert main(["mineral_ruel", "evaluate", "--run", str(run), "--device", "cpu"]) == 0
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["split"] == "val" and metrics["n_images"] == 4
        # The same network with its initial weights is the chance baseline.
        untrained = tmp_path / name
        shutil.copytree(run, untrained)
        ckpt_path = untrained / "checkpoints" / "best.ckpt"
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        torch.manual_seed(0)
        ckpt["state_dict"] = module_from_config(load_run_config(untrained)).state_dict()
        torch.save(ckpt, ckpt_path)
        base = evaluate(str(untrained), None, "val", "cpu")
        assert metrics["miou"] > base["miou"] + 0.1, (name, metrics["miou"], base["miou"])
        # The pretrained learners also beat all-background guessing and find the
        # background-like gangue. The random-init Res-UNet is not there after 6 epochs in every
        # run (pixel accuracy 0.73 against 0.75, gangue IoU 0.0 in two CI runs): only its mIoU
        # margin above is asserted.
        if name.startswith("lite0"):
            assert metrics["pixel_accuracy"] > np.mean(truth == 0), name
            assert metrics["iou"][1] > 0.2, name


def test_ruel_beats_its_worst_member_and_votes_as_specified(trained, tmp_path):
    data, runs = trained
    out = tmp_path / "ens"
    assert main(["mineral_ruel", "ensemble", "--runs", *map(str, runs.values()), "--rank-by",
                 "iou:gangue", "--out", str(out), "--device", "cpu"]) == 0
    manifest = json.loads((out / "ensemble.json").read_text())
    rows = json.loads((out / "results.json").read_text())["rows"]
    members = [rows[name]["miou"] for name in runs]
    pv = rows["RUEL-3-PV"]
    assert pv["miou"] > min(members) + 0.02, (pv["miou"], members)
    assert pv["miou"] >= np.mean(members), (pv["miou"], members)
    assert pv["pixel_accuracy"] > np.mean([rows[n]["pixel_accuracy"] for n in runs])
    # RUEL-3-WV (weights 3/6, 2/6, 1/6, ties to the higher rank) always follows rank 1.
    top = manifest["members"][0].rsplit("/", 1)[-1]
    assert rows["RUEL-3-WV"]["miou"] == pytest.approx(rows[top]["miou"])
    assert "| RUEL-3-PV |" in (out / "tables.md").read_text()
    # The written PV map equals a per-pixel count of the ranked members' votes, ties going to
    # the best-ranked member.
    pred = tmp_path / "pred"
    assert main(["mineral_ruel", "predict", "--run", str(out), "--scheme", "RUEL-3-PV",
                 "--input", str(data / "raw" / "val"), "--out", str(pred), "--device",
                 "cpu"]) == 0
    image = load_image(data / "raw" / "val" / "001.jpg")
    maps = [Learner(m, "cpu").predict(image)[0] for m in manifest["members"]]
    expected = np.empty_like(maps[0])
    for (y, x), _ in np.ndenumerate(expected):
        votes = [int(m[y, x]) for m in maps]
        counts = {c: votes.count(c) for c in votes}
        expected[y, x] = next(c for c in votes if counts[c] == max(counts.values()))
    written = read_label_png(pred / "001.png")
    assert written.shape == (128, 128) and np.array_equal(written, expected)
    assert (pred / "001_overlay.png").is_file()
    stats = json.loads((pred / "predict_stats.json").read_text())
    assert stats["images"] == 4 and stats["peak_rss_mb"] > 0


def test_an_ensemble_of_copies_votes_as_the_learner(trained, tmp_path):
    _, runs = trained
    run = runs["lite0_ce"]
    copies = []
    for name in ("a", "b", "c"):
        shutil.copytree(run, tmp_path / name)
        copies.append(str(tmp_path / name))
    out = tmp_path / "ens"
    assert main(["mineral_ruel", "ensemble", "--runs", *copies, "--out", str(out),
                 "--device", "cpu"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    for scheme in ("RUEL-3-PV", "RUEL-3-WV"):
        assert rows[scheme]["miou"] == pytest.approx(rows["a"]["miou"])
    assert rows["RUEL-3-PV"]["tpi_s"] > rows["a"]["tpi_s"]


def test_tiled_prediction_of_a_trained_learner_matches_the_untiled_network(trained):
    data, runs = trained
    learner = Learner(runs["lite0_ce"], "cpu", precision="fp32")
    for image_path, _ in split_pairs(data, "val")[:2]:
        image = load_image(image_path)
        with torch.no_grad():
            whole = learner.module(to_tensor(image)[None]).softmax(1)[0].numpy()
        tiled = tiled_probabilities(learner.module, image, tile=64, overlap=32)
        assert np.abs(tiled - whole).sum(0).mean() < 0.06
        assert (tiled.argmax(0) == whole.argmax(0)).mean() > 0.97
