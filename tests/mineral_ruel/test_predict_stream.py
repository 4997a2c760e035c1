"""``mineral_ruel predict`` streams a folder one image at a time, resumes where it stopped and
keeps memory flat in the number of images (a hand-built, untrained learner run)."""

import csv
import json

import numpy as np
import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.data.images import read_label_png, write_png
from ensemblab.projects.mineral_ruel import LEARNER, PROJECT
from ensemblab.projects.mineral_ruel.commands import CHOICES, predict, resolve_config
from ensemblab.projects.mineral_ruel.data import load_image
from ensemblab.projects.mineral_ruel.inference import Learner, module_from_config
from ensemblab.testing import assert_flat_peak_memory, write_weights_run

# The synthetic learner on 16-px tiles: 16x16 inputs are one tile each.
OVERRIDES = ["data.tile=16", "data.overlap=4", "model.decoder_channels=[8,8,8,8]"]


@pytest.fixture(scope="module")
def learner_run(tmp_path_factory):
    """A learner run folder with random weights, as ``train`` lays it out."""
    run = tmp_path_factory.mktemp("mineral_predict") / "learner"
    cfg = load_config(resolve_config("synthetic_quick"), OVERRIDES, choices=CHOICES)
    torch.manual_seed(0)
    module = module_from_config(cfg)
    return write_weights_run(run, cfg, module.state_dict(), PROJECT, LEARNER)


def _images(folder, n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_png(folder / f"{i:04d}.png", rng.integers(0, 256, (size, size, 3), np.uint8))
    return folder


def _predict(run, images, out, *extra):
    return main(["mineral_ruel", "predict", "--run", str(run), "--input", str(images),
                 "--out", str(out), "--device", "cpu", *extra])


def test_predict_writes_the_learners_maps_one_image_at_a_time(learner_run, tmp_path, capsys):
    images = _images(tmp_path / "in", 6, size=32)  # 4 blended tiles each
    out = tmp_path / "out"
    assert _predict(learner_run, images, out) == 0
    learner = Learner(learner_run, "cpu")
    for path in sorted(images.iterdir()):
        expected = learner.predict(load_image(path))[0]
        assert np.array_equal(read_label_png(out / path.name), expected), path.name
        assert (out / f"{path.stem}_overlay.png").is_file()
    with (out / "predict_times.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == sorted(p.name for p in images.iterdir())
    stats = json.loads((out / "predict_stats.json").read_text())
    assert (stats["images"], stats["skipped"]) == (6, 0) and stats["peak_rss_mb"] > 0
    printed = capsys.readouterr().out
    assert "predicted 6/6 images, " in printed and " img/s, took " in printed
    assert "6 label maps" in printed


def test_a_killed_predict_resumes_without_redoing_finished_images(learner_run, tmp_path,
                                                                   monkeypatch, capsys):
    images = _images(tmp_path / "in", 6, size=32)  # 4 blended tiles each
    out = tmp_path / "out"
    calls = []
    original = Learner.predict

    def dies_on_the_fourth(self, image):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the process is stopped while the 4th image runs
        return original(self, image)

    monkeypatch.setattr(Learner, "predict", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        _predict(learner_run, images, out)
    done = sorted(p.name for p in out.glob("*.png") if not p.stem.endswith("_overlay"))
    assert done == ["0000.png", "0001.png", "0002.png"]
    assert not list(out.glob(".*"))  # no temporary file left behind
    mtimes = {name: (out / name).stat().st_mtime_ns for name in done}

    calls.clear()
    monkeypatch.setattr(Learner, "predict", lambda self, image: (calls.append(1),
                                                                 original(self, image))[1])
    assert _predict(learner_run, images, out, "--resume") == 0
    assert len(calls) == 3  # only images 4 to 6 predicted again
    assert {name: (out / name).stat().st_mtime_ns for name in done} == mtimes
    assert len(list(out.glob("*_overlay.png"))) == 6
    printed = capsys.readouterr().out
    assert "resume: 3 of 6 images already predicted, skipped" in printed
    assert "predicted 6/6 images" in printed
    stats = json.loads((out / "predict_stats.json").read_text())
    assert (stats["images"], stats["skipped"]) == (3, 3)
    with (out / "predict_times.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 6


def _flat_memory(run, tmp_path, small, large):
    few, many = _images(tmp_path / "few", small), _images(tmp_path / "many", large, seed=1)
    def predict_into(images, out):
        predict(str(run), str(images), str(out), device="cpu")

    assert_flat_peak_memory(predict_into, _images(tmp_path / "warm_in", 2), few, many, tmp_path)
    assert len(list((tmp_path / "out_many").glob("*_overlay.png"))) == large


def test_peak_memory_does_not_grow_with_the_number_of_images(learner_run, tmp_path):
    _flat_memory(learner_run, tmp_path, 20, 200)


@pytest.mark.slow
def test_peak_memory_of_2000_images_is_that_of_20(learner_run, tmp_path):
    _flat_memory(learner_run, tmp_path, 20, 2000)
