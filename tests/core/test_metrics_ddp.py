"""Evaluator reduction helpers, and a 2-process CPU (gloo) DDP smoke run of the engine."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ensemblab.engine.ddp_smoke import (
    NUM_CLASSES,
    PADDED_SAMPLES,
    padded_indices,
    rank_data,
    sample_data,
)
from ensemblab.metrics.evaluators import all_gather_objects, all_reduce_sum, dist_world
from ensemblab.metrics.semantic import confusion_matrix


def test_helpers_without_process_group():
    assert dist_world() == (0, 1)
    a = np.arange(4)
    out = all_reduce_sum(a)
    assert out.tolist() == [0, 1, 2, 3] and out is not a
    assert all_gather_objects({"x": 1}) == [{"x": 1}]


@pytest.mark.slow  # two processes, each importing torch and Lightning: ~15 s (CI's slow step)
def test_ddp_smoke_reduces_confusion_matrix(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ensemblab.engine.ddp_smoke", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=540, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "run" / "ddp_smoke.json").read_text())
    assert out["world_size"] == 2
    expected = [confusion_matrix(*rank_data(r), NUM_CLASSES) for r in (0, 1)]
    assert out["local"] == [e.tolist() for e in expected]
    assert out["local"][0] != out["local"][1]
    assert out["reduced"] == (expected[0] + expected[1]).tolist()
    # DistributedSampler padding: 5 samples over 2 ranks, rank 1 repeats sample 0; it counts once
    assert sorted(padded_indices(0, 2) + padded_indices(1, 2)) == [0, 0, 1, 2, 3, 4]
    once = sum(confusion_matrix(*sample_data(i), NUM_CLASSES) for i in range(PADDED_SAMPLES))
    assert out["padded"] == once.tolist()
    # Kaggle evaluator gathered: rank0 image 1.0, rank1 image 0.0, shared image 1.0 once
    assert out["kaggle"]["n_images"] == 3
    assert out["kaggle"]["kaggle_score"] == pytest.approx(2 / 3)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
