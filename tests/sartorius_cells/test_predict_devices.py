"""``sartorius_cells predict --devices 2``: two CPU (gloo) ranks, each a shard of the images,
give the ``predictions.csv`` rows and COCO records of one process, in the same order (a
hand-built, untrained Mask R-CNN run that detects plenty on noise)."""

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
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.commands import resolve_config
from ensemblab.projects.sartorius_cells.members.maskrcnn import model_from_config
from ensemblab.testing import write_weights_run

TINY = ["model.classes=[shsy5y, astro, cort]", "model.image_size=64",
        "model.rpn_pre_nms_top_n_test=100", "model.rpn_post_nms_top_n_test=50",
        "model.box_detections_per_img=20", "model.box_score_thresh=0.0",
        "postprocess.score_thresh=0.0", "postprocess.min_area=0"]


@pytest.fixture(scope="module")
def member_run(tmp_path_factory):
    """A Mask R-CNN member run with random weights, as ``train`` lays it out."""
    run = tmp_path_factory.mktemp("sartorius_devices") / "maskrcnn"
    cfg = load_config(resolve_config("cpu_maskrcnn_r18"), TINY)
    torch.manual_seed(0)
    state = model_from_config(cfg["model"], pretrained=False).state_dict()
    return write_weights_run(run, cfg, state, PROJECT, MEMBER, prefix="model.")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sartorius_devices_in")
    rng = np.random.default_rng(0)
    for i in range(6):
        write_png(folder / f"img_{i}.png", rng.integers(60, 200, (48, 64), np.uint8))
    return folder



def _predict(run, images, out, *extra, devices=1):
    args = [PROJECT, "predict", "--run", str(run), "--input", str(images), "--out", str(out),
            "--device", "cpu", *extra]
    if devices == 1:
        assert main(args) == 0
        return ""
    # Lightning re-runs the command line for rank 1: a process of its own, not pytest's.
    proc = subprocess.run([sys.executable, "-m", "ensemblab.cli", *args, "--devices",
                           str(devices), "--threads", str(devices)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _rows(out):
    with (out / "predictions.csv").open() as fh:
        return list(csv.reader(fh))


@pytest.mark.slow
def test_two_ranks_write_the_predictions_csv_of_one_process(member_run, images, tmp_path,
                                                            one_thread):
    one, two = tmp_path / "one", tmp_path / "two"
    _predict(member_run, images, one, *one_thread)
    printed = _predict(member_run, images, two, devices=2)
    assert "predicted 3/3 images on rank 0 of 2" in printed
    assert printed.count(" instances in 6 images -> ") == 1  # rank 0 alone writes and reports
    rows = _rows(one)
    assert rows[0] == ["id", "predicted", "score", "cell_type"]
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])
    assert {r[0] for r in rows[1:]} == {f"img_{i}" for i in range(6)}
    assert sum(1 for r in rows[1:] if r[1]) >= 6  # instances, not only empty rows
    assert _rows(two) == rows
    overlays = sorted(p.name for p in (one / "overlays").iterdir())
    assert overlays == [f"img_{i}.png" for i in range(4)]
    for name in overlays:
        assert (two / "overlays" / name).read_bytes() == (one / "overlays" / name).read_bytes()
    assert sorted(p.name for p in two.iterdir()) == ["overlays", "predictions.csv"]


@pytest.mark.slow
def test_two_ranks_write_the_coco_results_of_one_process(member_run, images, tmp_path,
                                                         one_thread):
    one, two = tmp_path / "one", tmp_path / "two"
    _predict(member_run, images, one, "--format", "coco", *one_thread)
    _predict(member_run, images, two, "--format", "coco", devices=2)
    records = json.loads((one / "coco_instances_results.json").read_text())
    assert {r["image_id"] for r in records} == {f"img_{i}" for i in range(6)}
    assert json.loads((two / "coco_instances_results.json").read_text()) == records
    assert sorted(p.name for p in two.iterdir()) == ["coco_instances_results.json"]


@pytest.mark.slow
def test_two_ranks_write_the_submission_of_one_process(member_run, images, tmp_path,
                                                       one_thread):
    args = [PROJECT, "submit", "--run", str(member_run), "--input", str(images), "--device",
            "cpu"]
    assert main([*args, "--out", str(tmp_path / "one.csv"), *one_thread]) == 0
    proc = subprocess.run([sys.executable, "-m", "ensemblab.cli", *args, "--out",
                           str(tmp_path / "two.csv"), "--devices", "2", "--threads", "2"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("(validated)") == 1
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.csv", "two.csv"]


@pytest.mark.slow
def test_two_ranks_resume_the_parts_a_killed_run_left(member_run, images, tmp_path, one_thread,
                                                      monkeypatch):
    from ensemblab.projects.sartorius_cells.members.maskrcnn import LoadedMaskRCNN

    one, two = tmp_path / "one", tmp_path / "two"
    _predict(member_run, images, one, *one_thread)
    calls, original = [], LoadedMaskRCNN.raw

    def dies_on_the_third(self, image):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a one-process run stopped while the 3rd image runs
        return original(self, image)

    monkeypatch.setattr(LoadedMaskRCNN, "raw", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        _predict(member_run, images, two, *one_thread)
    printed = _predict(member_run, images, two, "--resume", devices=2)
    assert "resume: 2 of 6 images already predicted, skipped" in printed
    assert "predicted 2/2 images on rank 0 of 2" in printed  # the 4 left, 2 per rank
    assert (two / "predictions.csv").read_bytes() == (one / "predictions.csv").read_bytes()
    assert sorted(p.name for p in two.iterdir()) == ["overlays", "predictions.csv"]
