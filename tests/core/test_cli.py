"""The console script: help, project registration, one-line errors."""

import subprocess
import sys

from ensemblab import PROJECTS
from ensemblab.cli import build_parser, main


def test_help_lists_demo_and_installed_projects(capsys):
    parser = build_parser()
    text = parser.format_help()
    assert "demo" in text
    for name in PROJECTS:
        assert name in text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 1
    assert "usage: ensemblab" in capsys.readouterr().out


def test_user_errors_are_one_line_with_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ensemblab.cli", "battery_crystal", "evaluate",
         "--run", str(tmp_path / "nope"), "--data", str(tmp_path / "missing.csv")],
        capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ensemblab: error:")
    assert "Traceback" not in proc.stderr


def _parser_with(verb):
    """A parser whose ``boom --out DIR`` verb creates DIR and then runs ``verb(out)``."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="ensemblab")
    sub = parser.add_subparsers(dest="command")
    boom = sub.add_parser("boom")
    boom.add_argument("--out", required=True)

    def run(args):
        out = Path(args.out)
        out.mkdir()
        (out / "partial.json").write_text("{")
        return verb(out)

    boom.set_defaults(func=run)
    return parser


def test_a_crash_is_one_line_with_a_crash_log_and_exit_1(tmp_path, capsys, monkeypatch):
    import ensemblab.cli

    def crash(out):
        return 1 / 0

    monkeypatch.setattr(ensemblab.cli, "build_parser", lambda: _parser_with(crash))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)
    assert main(["boom", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("ensemblab: internal error: ZeroDivisionError: division by zero")
    log = lines[0].split("(traceback in ")[1].rstrip(")")
    assert log.startswith(str(tmp_path / "tmp"))
    text = open(log).read()
    assert "Traceback" in text and "1 / 0" in text and "boom --out" in text
    assert not (tmp_path / "run").exists()  # the half-written output is gone


def test_user_error_removes_created_output_but_keeps_checkpoints(tmp_path, capsys, monkeypatch):
    import ensemblab.cli
    from ensemblab.errors import DataError

    def bad_data(out):
        raise DataError(out / "x.csv", "row 3: text in a numeric column")

    monkeypatch.setattr(ensemblab.cli, "build_parser", lambda: _parser_with(bad_data))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)
    assert main(["boom", "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()
    assert capsys.readouterr().err.strip().endswith("row 3: text in a numeric column")

    def crash_after_checkpoint(out):
        (out / "last.ckpt").write_bytes(b"weights")
        raise RuntimeError("late failure")

    monkeypatch.setattr(ensemblab.cli, "build_parser",
                        lambda: _parser_with(crash_after_checkpoint))
    assert main(["boom", "--out", str(tmp_path / "run2")]) == 1
    assert (tmp_path / "run2" / "last.ckpt").is_file()  # resumable work is kept


def test_print_config_shows_resolved_values_with_comments(capsys):
    import yaml

    from ensemblab.config import find_config, load_config

    assert main(["battery_crystal", "train", "--config", "cpu_quick", "--print-config",
                 "seed=5"]) == 0
    text = capsys.readouterr().out
    from ensemblab.projects.battery_crystal.commands import CONFIG_DIR

    expected = load_config(find_config("cpu_quick", CONFIG_DIR), ["seed=5"])
    assert yaml.safe_load(text) == expected and expected["seed"] == 5
    assert sum(" # " in line for line in text.splitlines()) >= 5


def test_print_config_finds_a_config_in_a_sub_folder_of_configs(capsys):
    # sartorius_cells keeps its member configs in configs/members/
    assert main(["sartorius_cells", "train", "--config", "cpu_maskrcnn_r18",
                 "--print-config"]) == 0
    assert "backbone: resnet18" in capsys.readouterr().out


def test_config_typo_on_the_command_line_names_key_and_file(tmp_path, capsys):
    code = main(["battery_crystal", "train", "--config", "cpu_quick", "--out",
                 str(tmp_path / "run"), "sed=5"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown key 'sed'" in err and "cpu_quick.yaml" in err and "closest: seed" in err
    assert not (tmp_path / "run").exists()


def test_building_every_parser_imports_no_torch():
    code = (
        "import sys\n"
        "from ensemblab.cli import build_parser\n"
        "parser = build_parser()\n"
        "for action in parser._subparsers._group_actions:\n"
        "    for sub in action.choices.values():\n"
        "        sub.format_help()\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'numpy'})\n"
        "print(','.join(heavy))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def _verb_flags(project_parser):
    verbs = project_parser._subparsers._group_actions[0].choices
    return {verb: [a.option_strings or [a.dest] for a in verbs[verb]._actions]
            for verb in ("train", "evaluate", "predict", "export")}


def test_every_project_has_the_common_verbs_with_the_same_flags():
    import argparse

    from ensemblab.project import Project, register_project

    bare = Project()
    bare.name = "sixth_paper"
    reference = _verb_flags(register_project(argparse.ArgumentParser().add_subparsers(), bare))
    projects = build_parser()._subparsers._group_actions[0].choices
    for name in PROJECTS:
        for verb, flags in _verb_flags(projects[name]).items():
            # the shared flags first, in one order; a project's own options after them
            assert flags[:len(reference[verb])] == reference[verb], (name, verb, flags)
    assert ["--threads"] in reference["train"] and ["--split"] in reference["evaluate"]
