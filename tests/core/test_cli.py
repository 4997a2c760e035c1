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
