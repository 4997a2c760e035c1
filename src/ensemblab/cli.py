"""The ``ensemblab`` console script.

``ensemblab demo`` runs every project on synthetic data. ``ensemblab <project> <verb> ...``
dispatches to the project's own parser: each project package ``ensemblab.projects.<name>``
has a ``cli`` module with ``register(subparsers)`` that adds a ``<name>`` sub-parser whose verbs
set ``func(args) -> int``. Errors a user can fix (:class:`ensemblab.errors.EnsemblabError`)
print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from ensemblab import PROJECTS, __version__
from ensemblab.errors import EnsemblabError


def _project_cli(name: str):
    module = f"ensemblab.projects.{name}.cli"
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except ModuleNotFoundError:
        return None
    return importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with ``demo`` and one sub-parser per installed project."""
    parser = argparse.ArgumentParser(
        prog="ensemblab",
        description="Five papers, one toolkit: train, evaluate, ensemble, predict, submit.",
    )
    parser.add_argument("--version", action="version", version=f"ensemblab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run all five projects on built-in synthetic data")
    demo.add_argument("--out", default="demo_out", help="report folder (default: demo_out)")
    demo.add_argument("--only", nargs="*", default=None, choices=PROJECTS,
                      help="run only these projects")
    demo.add_argument("--device", default="auto", help="auto | cpu | cuda")
    demo.set_defaults(func=_run_demo)
    from ensemblab.backbones.cli import register as register_weights

    register_weights(sub)
    for name in PROJECTS:
        cli = _project_cli(name)
        if cli is not None:
            cli.register(sub)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from ensemblab.demo import run_demo

    run_demo(args.out, only=args.only, device=args.device)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    # Nothing may reach a model hub at run time; without this a missing model retries for minutes.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except EnsemblabError as exc:
        print(f"ensemblab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
