"""TPE search: a search killed mid-trial resumes from its SQLite study and finishes."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from ensemblab.projects.fre_unet.search import run_search


def _states(url):
    study = optuna.load_study(study_name="fre_unet_fre", storage=url)
    return [t.state for t in study.get_trials(deepcopy=False)], study


@pytest.mark.slow  # a killed subprocess search, then a resumed one: ~12-15 s (CI's slow step)
def test_search_killed_then_resumed(em_stack, tiny_cfg, tmp_path):
    out = tmp_path / "search"
    url = f"sqlite:///{out / 'study.db'}"
    overrides = ["data.tile=32", "data.scale=1.0", "model.width=0.125", "train.epochs=2",
                 "train.track_magnitudes=false", "data.split={train: 0-4, val: '5', test: 6-7}"]
    cmd = [sys.executable, "-c", "from ensemblab.cli import main; import sys; sys.exit(main())",
           "fre_unet", "search", "--config", "cpu_quick", "--data", str(em_stack),
           "--out", str(out), "--device", "cpu", "--trials", "3", *overrides]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 150
    try:
        while time.time() < deadline and proc.poll() is None:
            if (out / "study.db").exists():
                try:
                    states, _ = _states(url)
                except Exception:  # the first process may still be creating the tables
                    states = []
                if TrialState.COMPLETE in states and states[-1] == TrialState.RUNNING:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "search ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    states, study = _states(url)
    # The kill lands a moment after the poll; a fast trial may finish in between, so the
    # expectations below follow the state the kill actually left.
    done_at_kill = states.count(TrialState.COMPLETE)
    killed_mid_trial = states[-1] == TrialState.RUNNING
    assert 1 <= done_at_kill < 3
    interrupted = study.get_trials(deepcopy=False)[-1].params if killed_mid_trial else None

    cfg = {**tiny_cfg, "data": {**tiny_cfg["data"], "split": {"train": "0-4", "val": 5}},
           "train": {**tiny_cfg["train"], "epochs": 2, "track_magnitudes": False}}
    resumed = run_search(cfg, em_stack, out, space="fre", trials=3, device="cpu")
    trials = resumed.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert [t.state for t in trials].count(TrialState.FAIL) == int(killed_mid_trial)
    if interrupted:
        assert any(t.params == interrupted for t in complete)
    assert (out / "search_fre.png").is_file()
    best = (out / "best_fre.yaml").read_text()
    assert f"num_enhanced: {resumed.best_params['B']}" in best
    assert (out / "trials.csv").read_text().count("\n") == 4
