"""``mineral_ruel predict --devices 2``: two CPU (gloo) ranks, each a shard of the images,
write the PNGs one process writes, and rank 0 merges ``predict_times.csv`` in input order
(a hand-built, untrained learner run)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.data.images import write_png
from ensemblab.projects.mineral_ruel import LEARNER, PROJECT
from ensemblab.projects.mineral_ruel.commands import CHOICES, resolve_config
from ensemblab.projects.mineral_ruel.inference import module_from_config
from ensemblab.testing import write_weights_run

# The synthetic learner on 16-px tiles: 32x32 inputs are 4 blended tiles each.
OVERRIDES = ["data.tile=16", "data.overlap=4", "model.decoder_channels=[8,8,8,8]"]


@pytest.fixture(scope="module")
def learner_run(tmp_path_factory):
    """A learner run folder with random weights, as ``train`` lays it out."""
    run = tmp_path_factory.mktemp("mineral_devices") / "learner"
    cfg = load_config(resolve_config("synthetic_quick"), OVERRIDES, choices=CHOICES)
    torch.manual_seed(0)
    return write_weights_run(run, cfg, module_from_config(cfg).state_dict(), PROJECT, LEARNER)



def _images(folder, n, size=32):
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(folder / f"{i:04d}.png", rng.integers(0, 256, (size, size, 3), np.uint8))
    return folder


def _times(out):
    with (out / "predict_times.csv").open() as fh:
        return [(r["image"], r["height"], r["width"]) for r in csv.DictReader(fh)]


def predict_two_ranks(run, images, out, *extra, status=0):
    """``python -m ensemblab.cli mineral_ruel predict --devices 2`` (Lightning re-runs the
    command line for rank 1, so it cannot run inside pytest's own process)."""
    cmd = [sys.executable, "-m", "ensemblab.cli", PROJECT, "predict", "--run", str(run),
           "--input", str(images), "--out", str(out), "--device", "cpu", "--devices", "2",
           "--threads", "2", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == status, proc.stderr[-3000:]
    return proc.stdout if status == 0 else proc.stderr


@pytest.mark.slow  # two processes, each importing torch and Lightning: ~15 s (CI's slow step)
def test_two_ranks_write_the_pngs_of_one_process(learner_run, tmp_path, one_thread):
    images = _images(tmp_path / "in", 7)  # odd: rank 0 predicts 4 images, rank 1 predicts 3
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([PROJECT, "predict", "--run", str(learner_run), "--input", str(images),
                 "--out", str(one), "--device", "cpu", *one_thread]) == 0
    printed = predict_two_ranks(learner_run, images, two)
    assert "predicted 4/4 images on rank 0 of 2" in printed
    assert "7 label maps" in printed and printed.count("label maps") == 1  # rank 0 reports
    names = sorted(p.name for p in one.glob("*.png"))
    assert len(names) == 14 and sorted(p.name for p in two.glob("*.png")) == names
    for name in names:  # class-index maps and overlays, byte for byte
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert _times(two) == _times(one) == [(f"{i:04d}.png", "32", "32") for i in range(7)]
    stats = json.loads((two / "predict_stats.json").read_text())
    assert (stats["images"], stats["skipped"]) == (7, 0) and stats["peak_rss_mb"] > 0
    assert not (two / ".shards").exists()
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


@pytest.mark.slow
def test_two_ranks_resume_the_images_left(learner_run, tmp_path):
    images = _images(tmp_path / "in", 5)
    out = tmp_path / "out"
    assert main([PROJECT, "predict", "--run", str(learner_run), "--input", str(images),
                 "--out", str(out), "--device", "cpu"]) == 0
    for stem in ("0001", "0003", "0004"):  # as if stopped before these three
        (out / f"{stem}.png").unlink()
    kept = (out / "0000.png").stat().st_mtime_ns
    printed = predict_two_ranks(learner_run, images, out, "--resume")
    assert "resume: 2 of 5 images already predicted, skipped" in printed
    assert "predicted 2/2 images on rank 0 of 2" in printed
    assert (out / "0000.png").stat().st_mtime_ns == kept
    assert len(list(out.glob("*_overlay.png"))) == 5 and (out / "0004.png").is_file()
    rows = _times(out)
    assert [r[0] for r in rows] == [f"{i:04d}.png" for i in range(5)] + [
        "0001.png", "0003.png", "0004.png"]
    stats = json.loads((out / "predict_stats.json").read_text())
    assert (stats["images"], stats["skipped"]) == (3, 2)



@pytest.mark.slow
def test_a_bad_image_on_rank_1_stops_both_ranks_with_one_line_each(learner_run, tmp_path):
    images = _images(tmp_path / "in", 4)
    (images / "0001.png").write_bytes(b"not a png")  # item 1: rank 1's first
    err = predict_two_ranks(learner_run, images, tmp_path / "out", status=2)
    assert "0001.png: cannot read image" in err
    assert "another rank stopped before writing its shard" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
