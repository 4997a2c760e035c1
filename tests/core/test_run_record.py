"""Run records: every run folder names its project and kind (``RUN/run.json``), and every verb
that takes a run folder refuses a run of another project or kind with one line (exit 2, no
traceback, no crash log) before it reads anything else in the folder.

Run folders are built by hand, as each project's ``train`` writes them (record + resolved
config), so no test trains or loads a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ensemblab import __version__
from ensemblab.cli import main
from ensemblab.config import find_config, load_config, save_config
from ensemblab.engine import prepare_run_dir
from ensemblab.errors import ConfigError, DataError
from ensemblab.installed_projects import PAPER_ORDER
from ensemblab.run_record import (
    RUN_RECORD,
    RunRecord,
    check_run,
    infer_project,
    read_run_record,
    write_run_record,
)
from ensemblab.synthetic.battery import write_battery_csv

PROJECTS = Path(__file__).resolve().parents[2] / "projects"
# project -> (a bundled config, the kind of run its train records)
TRAINED = {"sartorius_cells": ("cpu_maskrcnn_r18", "member"),
           "mineral_ruel": ("synthetic_quick", "learner"),
           "fre_unet": ("cpu_quick", "model"),
           "crossattn_vl": ("cpu_quick", "model"),
           "battery_crystal": ("cpu_quick", "model")}


def _config(project: str) -> dict:
    return load_config(find_config(TRAINED[project][0], PROJECTS / project / "configs"))


def _run(root: Path, project: str, recorded: bool = True, name: str | None = None) -> Path:
    """A trained run folder of ``project`` as its ``train`` leaves it (no checkpoint needed:
    the check comes first); ``recorded=False``: without a record (config only)."""
    run = root / (name or f"{project}_run")
    if recorded:
        return prepare_run_dir(run, _config(project), project=project,
                               kind=TRAINED[project][1])
    save_config(_config(project), run)
    return run


def _foreign(project: str) -> str:
    """Another project than ``project`` (the next paper), so each project's run is offered
    to each other's verbs in turn."""
    return PAPER_ORDER[(PAPER_ORDER.index(project) + 1) % len(PAPER_ORDER)]


def _one_line_error(argv: list[str], tmp_path: Path, capsys, monkeypatch) -> str:
    """Run the CLI; assert exit 2, one ``ensemblab: error:`` line, no traceback, no crash
    log; return the line."""
    crash_logs = tmp_path / "crash_logs"
    crash_logs.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(crash_logs))
    monkeypatch.setattr("tempfile.tempdir", None)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ensemblab: error: "), err
    assert not any(crash_logs.rglob("*")), "a crash log was written"
    return lines[0]


# ------------------------------------------------------------------------------- the core check
def test_a_new_run_records_its_project_and_kind(tmp_path):
    run = _run(tmp_path, "mineral_ruel")
    assert json.loads((run / RUN_RECORD).read_text()) == {
        "project": "mineral_ruel", "kind": "learner", "ensemblab": __version__}
    record = check_run(run, "mineral_ruel", ("learner",), "evaluate")
    assert record == RunRecord("mineral_ruel", "learner", __version__)
    assert check_run(run, "mineral_ruel") == record  # any kind


def test_a_run_of_another_project_or_kind_is_one_line_naming_both(tmp_path):
    run = _run(tmp_path, "battery_crystal")
    with pytest.raises(ConfigError) as info:
        check_run(run, "mineral_ruel", ("learner",), "evaluate")
    assert str(info.value) == (f"{run} is a battery_crystal run (model); mineral_ruel evaluate "
                               "needs a mineral_ruel run (learner)")
    ensemble = tmp_path / "ens"
    write_run_record(ensemble, "mineral_ruel", "ensemble")
    with pytest.raises(ConfigError, match=r"is a mineral_ruel run \(ensemble\); mineral_ruel "
                                          r"evaluate needs a mineral_ruel run \(learner\)$"):
        check_run(ensemble, "mineral_ruel", ("learner",), "evaluate")
    with pytest.raises(ConfigError, match=r"fre_unet needs a fre_unet run \(model or seeds\)$"):
        check_run(run, "fre_unet", ("model", "seeds"))


@pytest.mark.parametrize("project", PAPER_ORDER)
def test_a_run_without_record_is_known_by_its_config(project, tmp_path):
    """Every bundled config shows its project, so a run without a record is still checked."""
    folder = PROJECTS / project / "configs"
    for path in sorted(folder.rglob("*.yaml")):
        assert infer_project(load_config(path)) == [project], path
    run = _run(tmp_path, project, recorded=False)
    assert read_run_record(run) is None
    assert check_run(run, project, ("anything",)) == RunRecord(project, None)
    other = _foreign(project)
    with pytest.raises(ConfigError, match=f"is a {project} run; {other} evaluate needs"):
        check_run(run, other, None, "evaluate")


def test_folders_that_show_no_project_or_no_run(tmp_path):
    unclear = tmp_path / "unclear"
    save_config({"seed": 0, "train": {"epochs": 2}}, unclear)  # fits every project alike
    with pytest.raises(ConfigError, match=f"{unclear} holds no ensemblab run record "
                                          r"\(run.json\) and its config.yaml does not show"):
        check_run(unclear, "fre_unet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"not a run folder \(no run.json, no config.yaml\)"):
        check_run(tmp_path / "empty", "fre_unet")
    with pytest.raises(DataError, match="run folder not found"):
        check_run(tmp_path / "missing", "fre_unet")
    (tmp_path / "empty" / RUN_RECORD).write_text('{"project": "fre_unet"')
    with pytest.raises(DataError, match="run.json: not a valid run record"):
        check_run(tmp_path / "empty", "fre_unet")
    (tmp_path / "empty" / RUN_RECORD).write_text('{"project": "fre_unet"}')
    with pytest.raises(DataError, match="needs the strings 'project' and 'kind'"):
        check_run(tmp_path / "empty", "fre_unet")


def test_markers_name_the_kind_of_an_unrecorded_folder_of_runs(tmp_path):
    folder = tmp_path / "ens"
    folder.mkdir()
    (folder / "ensemble.json").write_text("{}")
    markers = {"ensemble.json": "ensemble"}
    assert check_run(folder, "mineral_ruel", ("ensemble",), "seeds", markers) == RunRecord(
        "mineral_ruel", "ensemble")
    with pytest.raises(ConfigError, match=r"mineral_ruel evaluate needs a mineral_ruel run "
                                          r"\(learner\)"):
        check_run(folder, "mineral_ruel", ("learner",), "evaluate", markers)


def test_resume_checks_the_run_and_records_an_unrecorded_one(tmp_path):
    old = _run(tmp_path, "fre_unet", recorded=False)
    assert prepare_run_dir(old, {}, resume=True, project="fre_unet") == old
    assert read_run_record(old) == RunRecord("fre_unet", "model", __version__)
    foreign = _run(tmp_path, "crossattn_vl")
    with pytest.raises(ConfigError, match="fre_unet train --resume needs a fre_unet run"):
        prepare_run_dir(foreign, {}, resume=True, project="fre_unet")
    assert prepare_run_dir(tmp_path / "plain", {"seed": 0}).is_dir()  # no project: no record
    assert not (tmp_path / "plain" / RUN_RECORD).exists()


# --------------------------------------------------------------------- every project's verbs
def _verb_argv(project: str, verb: str, run: Path, tmp: Path) -> list[str]:
    if verb == "evaluate":
        data = ["--data", str(tmp)] if project in ("sartorius_cells", "crossattn_vl") else []
        return [project, "evaluate", "--run", str(run), *data]
    return [project, "predict", "--run", str(run), "--input", str(tmp / "in"),
            "--out", str(tmp / "pred")]


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "unrecorded"])
@pytest.mark.parametrize("verb", ["evaluate", "predict"])
@pytest.mark.parametrize("project", PAPER_ORDER)
def test_evaluate_and_predict_refuse_another_projects_run(project, verb, recorded, tmp_path,
                                                          capsys, monkeypatch):
    other = _foreign(project)
    run = _run(tmp_path, other, recorded)
    line = _one_line_error(_verb_argv(project, verb, run, tmp_path), tmp_path, capsys,
                           monkeypatch)
    assert f"{run} is a {other} run" in line
    assert f"{project} {verb} needs a {project} run" in line
    assert not (tmp_path / "pred").exists()


def _mineral_ensemble(tmp: Path, members: list[Path]) -> Path:
    folder = tmp / "ensemble"
    folder.mkdir()
    (folder / "ensemble.json").write_text(json.dumps(
        {"members": [str(m) for m in members], "chosen_scheme": "RUEL-3-PV"}))
    return folder


def _seeds_folder(tmp: Path, projects: list[str]) -> Path:
    """A multi-seed folder without a record: ``seed<i>/`` runs of ``projects``."""
    folder = tmp / "seeds"
    for i, project in enumerate(projects):
        _run(folder, project, recorded=False, name=f"seed{i}")
    return folder


def _other_verbs():
    """``{case: build(tmp) -> (argv, words the line must hold)}`` for the other verbs that take
    run folders: members, seed folders, resume, export, and runs of another kind."""
    cases = {}

    def case(fn):
        cases[fn.__name__] = fn
        return fn

    @case
    def sartorius_submit(tmp):
        run = _run(tmp, "fre_unet")
        return (["sartorius_cells", "submit", "--run", str(run), "--input", str(tmp),
                 "--out", str(tmp / "sub.csv")], ["fre_unet run", "sartorius_cells submit"])

    @case
    def sartorius_export_detectron2(tmp):
        run = _run(tmp, "mineral_ruel")
        return (["sartorius_cells", "export-detectron2", "--run", str(run), "--out",
                 str(tmp / "m.pth")], ["mineral_ruel run", "sartorius_cells export-detectron2"])

    @case
    def sartorius_train_init(tmp):
        run = _run(tmp, "mineral_ruel", recorded=False)
        return (["sartorius_cells", "train", "--config", "cpu_maskrcnn_r18", "--data",
                 str(tmp), "--out", str(tmp / "out"), "--init", str(run)],
                ["mineral_ruel run", "sartorius_cells train --init"])

    @case
    def mineral_ensemble_member(tmp):
        runs = [_run(tmp, "mineral_ruel", name=f"l{i}") for i in range(2)]
        runs.append(_run(tmp, "battery_crystal"))
        return (["mineral_ruel", "ensemble", "--runs", *map(str, runs), "--out",
                 str(tmp / "ens")], [f"{runs[2]} is a battery_crystal run",
                                     "mineral_ruel ensemble"])

    @case
    def mineral_predict_ensemble_member(tmp):
        runs = [_run(tmp, "mineral_ruel", name=f"l{i}") for i in range(2)]
        runs.append(_run(tmp, "fre_unet"))
        folder = _mineral_ensemble(tmp, runs)
        return (["mineral_ruel", "predict", "--run", str(folder), "--input", str(tmp),
                 "--out", str(tmp / "pred")], [f"{runs[2]} is a fre_unet run",
                                               "mineral_ruel predict"])

    @case
    def mineral_seeds(tmp):
        run = _run(tmp, "sartorius_cells")
        return (["mineral_ruel", "seeds", "--ensembles", str(run), "--out", str(tmp / "s")],
                ["sartorius_cells run (member)", "mineral_ruel seeds needs a mineral_ruel run "
                                                 "(ensemble)"])

    @case
    def mineral_evaluate_an_ensemble_folder(tmp):
        folder = tmp / "ens"
        write_run_record(folder, "mineral_ruel", "ensemble")
        return (["mineral_ruel", "evaluate", "--run", str(folder)],
                ["mineral_ruel run (ensemble)", "needs a mineral_ruel run (learner)"])

    @case
    def fre_evaluate_seeds_folder_with_a_foreign_seed(tmp):
        folder = _seeds_folder(tmp, ["fre_unet", "crossattn_vl"])
        return (["fre_unet", "evaluate", "--run", str(folder)],
                [f"{folder / 'seed1'} is a crossattn_vl run", "fre_unet evaluate"])

    @case
    def fre_predict_a_seeds_folder(tmp):
        folder = tmp / "seeds"
        write_run_record(folder, "fre_unet", "seeds")
        return (["fre_unet", "predict", "--run", str(folder), "--input", str(tmp),
                 "--out", str(tmp / "pred")],
                ["fre_unet run (seeds)", "fre_unet predict needs a fre_unet run (model)"])

    @case
    def fre_compare(tmp):
        run = _run(tmp, "battery_crystal")
        return (["fre_unet", "compare", "--runs-a", str(run), "--runs-b", str(run), "--out",
                 str(tmp / "cmp")], ["battery_crystal run", "fre_unet compare"])

    @case
    def fre_table(tmp):
        run = _run(tmp, "mineral_ruel")
        (run / "metrics.json").write_text(json.dumps({"miou": 0.5, "iou": {"a": 0.5}}))
        return (["fre_unet", "table", str(run)], ["mineral_ruel run", "fre_unet table"])

    @case
    def fre_magnitudes(tmp):
        run = _run(tmp, "sartorius_cells")
        return (["fre_unet", "magnitudes", str(run), "--out", str(tmp / "m.png")],
                ["sartorius_cells run", "fre_unet magnitudes"])

    @case
    def fre_train_seeds_into_another_projects_folder(tmp):
        folder = tmp / "seeds"
        write_run_record(folder, "mineral_ruel", "ensemble")
        return (["fre_unet", "train", "--config", "cpu_quick", "--data", str(tmp), "--out",
                 str(folder), "--seeds", "0,1"], ["mineral_ruel run", "fre_unet train --seeds"])

    @case
    def battery_train_resume(tmp):
        run = _run(tmp, "mineral_ruel")
        csv = write_battery_csv(tmp / "b.csv", n_rows=12, seed=0)
        return (["battery_crystal", "train", "--config", "cpu_quick", "--data", str(csv),
                 "--out", str(run), "--resume"],
                ["mineral_ruel run (learner)", "battery_crystal train --resume needs"])

    @case
    def crossattn_export(tmp):
        run = _run(tmp, "fre_unet")
        return (["crossattn_vl", "export", "--run", str(run)],
                ["fre_unet run (model)", "crossattn_vl export needs a crossattn_vl run"])

    return cases


OTHER_VERBS = _other_verbs()


@pytest.mark.parametrize("name", sorted(OTHER_VERBS))
def test_every_verb_that_reads_runs_refuses_a_foreign_one(name, tmp_path, capsys, monkeypatch):
    argv, words = OTHER_VERBS[name](tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    line = _one_line_error(argv, tmp_path, capsys, monkeypatch)
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    after = sorted(str(p) for p in tmp_path.rglob("*") if "crash_logs" not in str(p))
    assert after == before  # nothing written into the runs or beside them


def test_the_record_is_a_file_of_its_own(tmp_path):
    """The record is plain JSON beside the config, which stays the resolved config only."""
    run = _run(tmp_path, "crossattn_vl")
    assert "project" not in yaml.safe_load((run / "config.yaml").read_text())
    assert set(json.loads((run / RUN_RECORD).read_text())) == {"project", "kind", "ensemblab"}
