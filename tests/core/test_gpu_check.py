"""``tools/gpu_check.py`` on CPU at smoke sizes: every installed project's members train and
predict, DDP runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ensemblab.installed_projects import installed_projects

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.py"
# the projects found through the entry points that train one model each
SINGLE = set(installed_projects()) - {"sartorius_cells"}
ENSEMBLES = {"sartorius_cells set-up 3", "mineral_ruel RUEL-5-WV"}
TRAIN_LINE = re.compile(r"train\s+(\S+) \(\S+\): step ([\d.e-]+) s \| ([\d.e+-]+) (\S+)/s \| "
                        r"peak RSS ([\d.]+) GiB \| paper schedule (\d+) ep x (\d+) \S+: "
                        r"([\d.]+) (min|h) \| (?:32-true|cpu float32), 2 steps$")
INFER_LINE = re.compile(r"infer\s+(.+?) \(.*\): ([\d.e-]+) s/call \| ([\d.e+-]+) .+/s \| peak RSS")


def _sartorius_kinds() -> dict[str, str]:
    """``sartorius_cells/<member name>`` -> kind, for every member of the paper manifest."""
    from ensemblab.ensemble.manifest import load_manifest
    from ensemblab.projects.sartorius_cells.commands import resolve_manifest

    manifest = load_manifest(resolve_manifest("paper_ensemble"))
    return {f"sartorius_cells/{m.name}": m.kind for m in manifest.members}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", *args],
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # every paper-scale member built and stepped: about a minute of CPU
def test_every_member_trains_predicts_and_projects_its_schedule():
    proc = _run("--steps", "2", "--smoke")
    report = proc.stdout + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    lines = proc.stdout.splitlines()
    trained = {}
    for line in (x for x in lines if x.startswith("train ")):
        m = TRAIN_LINE.match(line)
        assert m, line
        name, step, rate, epochs, samples, total, unit = (
            m[1], float(m[2]), float(m[3]), int(m[6]), int(m[7]), float(m[8]), m[9])
        assert step > 0 and rate > 0, line
        # the projection is the paper's epochs x samples at the measured rate
        expected = epochs * samples / rate / (60 if unit == "min" else 3600)
        assert abs(total - expected) <= 0.05 + 0.01 * expected, line
        trained[name] = line
    kinds = _sartorius_kinds()
    cells = {name for name in trained if name.startswith("sartorius_cells/")}
    assert set(trained) - cells == SINGLE, report
    # every member kind of the paper ensemble is trained (seed variants once)
    assert cells <= set(kinds) and {kinds[n] for n in cells} == set(kinds.values()), report
    inferred = {INFER_LINE.match(x)[1] for x in lines if x.startswith("infer ")}
    assert inferred == set(trained) | ENSEMBLES, report
    ddp = [x for x in lines if x.startswith("ddp ")]
    assert len(ddp) == 1 and "2 process(es), gloo" in ddp[0], report


def test_parts_past_the_budget_report_skipped():
    proc = _run("--budget-s", "0", "--only", "battery_crystal")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [x.split(":")[1].strip() for x in proc.stdout.splitlines()[1:]] == [
        "skipped (budget spent)"] * 2, proc.stdout
