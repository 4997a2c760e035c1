"""Projects come from the ``ensemblab.projects`` entry-point group; a sixth needs no core edit."""

import textwrap

import pytest

import ensemblab
from ensemblab.cli import build_parser, main
from ensemblab.installed_projects import PAPER_ORDER, installed_projects


def _declare(root, monkeypatch, dist: str, project: str, cli_module: str) -> None:
    """Put a distribution ``dist`` on ``sys.path`` whose metadata declares ``project``."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ensemblab.projects]\n{project} = {cli_module}\n")
    monkeypatch.syspath_prepend(str(root))
    installed_projects.cache_clear()


@pytest.fixture
def sixth_project(tmp_path, monkeypatch):
    """A distribution on ``sys.path`` declaring project ``sixth_paper`` in its metadata only."""
    package = tmp_path / "sixth_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text(textwrap.dedent('''
        def register(subparsers):
            parser = subparsers.add_parser("sixth_paper", help="a project from another package")
            verbs = parser.add_subparsers(dest="verb", required=True)
            train = verbs.add_parser("train")
            train.add_argument("--epochs", type=int, default=1)
            train.set_defaults(func=lambda args: print(f"sixth trains {args.epochs}") or 0)
    '''))
    (package / "demo.py").write_text(textwrap.dedent('''
        def run_demo(out_dir, device="auto"):
            return "sixth paper: accuracy 0.93"
    '''))
    _declare(tmp_path, monkeypatch, "sixth_pkg", "sixth_paper", "sixth_pkg.cli")
    yield "sixth_paper"
    installed_projects.cache_clear()


def test_the_five_papers_are_found_in_the_demo_order():
    assert PAPER_ORDER == ("sartorius_cells", "mineral_ruel", "fre_unet", "crossattn_vl",
                           "battery_crystal")
    assert tuple(installed_projects()) == PAPER_ORDER
    assert ensemblab.PROJECTS == PAPER_ORDER
    entry = installed_projects()["battery_crystal"]
    assert entry.cli_module == "ensemblab.projects.battery_crystal.cli"
    assert entry.config_dir().parent.name == "battery_crystal"
    assert (entry.config_dir() / "cpu_quick.yaml").is_file()
    assert entry.load_demo().__name__ == "ensemblab.projects.battery_crystal.demo"
    assert entry.load_members() is None  # it trains no ensemble members


def test_help_and_demo_choices_list_every_project(capsys):
    parser = build_parser()
    top = parser.format_help()
    demo_help = parser._subparsers._group_actions[0].choices["demo"].format_help()
    for name in PAPER_ORDER:
        assert f"\n    {name}" in top
        assert name in demo_help


def test_a_sixth_project_is_found_through_its_entry_point(sixth_project, tmp_path, capsys):
    assert ensemblab.PROJECTS == PAPER_ORDER + (sixth_project,)
    assert main([sixth_project, "train", "--epochs", "3"]) == 0
    assert capsys.readouterr().out.strip() == "sixth trains 3"
    # the core's shared verbs reach it too
    assert main([sixth_project, "export", "--run", str(tmp_path / "no_run")]) == 2
    assert "run folder not found" in capsys.readouterr().err

    from ensemblab.demo import run_demo

    report = run_demo(tmp_path / "demo", only=[sixth_project]).read_text()
    assert "## sixth_paper" in report and "accuracy 0.93" in report
    assert "| sixth_paper | done |" in report


def test_a_missing_project_module_is_reported_not_installed(tmp_path, monkeypatch):
    _declare(tmp_path, monkeypatch, "gone", "gone_paper", "gone_pkg.cli")
    try:
        assert "gone_paper" in ensemblab.PROJECTS
        assert "gone_paper" not in build_parser().format_help()

        from ensemblab.demo import run_demo

        report = run_demo(tmp_path / "demo", only=["gone_paper"]).read_text()
        assert "| gone_paper | not installed | - |" in report
    finally:
        installed_projects.cache_clear()
