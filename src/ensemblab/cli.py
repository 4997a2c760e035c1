"""The ``ensemblab`` console script.

``ensemblab demo`` runs every project on synthetic data. ``ensemblab <project> <verb> ...``
dispatches to the project's own parser: each project found in the ``ensemblab.projects``
entry-point group (:mod:`ensemblab.installed_projects`) names a ``cli`` module with
``register(subparsers)`` that adds a ``<name>`` sub-parser whose verbs set
``func(args) -> int``. The core then adds the verbs every project shares
(:func:`ensemblab.cli_common.add_common_verbs`) where the project has not defined its own.

Exit status: 0 on success; 2 with one line on stderr for an error a user can fix
(:class:`ensemblab.errors.EnsemblabError`: bad data, config or path); 1 for any other exception,
with one line naming the exception and a crash log holding the traceback. Either way an output
folder or file (``--out``) that the command created is removed again, unless it holds a
checkpoint (which ``--resume`` can continue from).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ensemblab import __version__
from ensemblab.cli_common import add_common_verbs, add_device_args
from ensemblab.errors import EnsemblabError
from ensemblab.installed_projects import installed_projects
from ensemblab.threads import apply_threads_flag, set_threads


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
    projects = installed_projects()
    demo.add_argument("--only", nargs="*", default=None, choices=tuple(projects),
                      help="run only these projects")
    add_device_args(demo, "auto | cpu | cuda")
    demo.set_defaults(func=_run_demo)
    from ensemblab.cli_weights import register as register_weights

    register_weights(sub)
    for name, entry in projects.items():
        cli = entry.load_cli()
        if cli is not None:
            cli.register(sub)
            add_common_verbs(sub.choices[name])
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from ensemblab.demo import run_demo

    run_demo(args.out, only=args.only, device=args.device)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (0 ok, 2 user error, 1 crash)."""
    # Nothing may reach a model hub at run time; without this a missing model retries for minutes.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    apply_threads_flag(getattr(args, "threads", None))
    if hasattr(args, "threads"):
        set_threads(args.threads)
    out = Path(args.out) if getattr(args, "out", None) else None
    out_existed = out is not None and out.exists()
    try:
        if getattr(args, "print_config", False):
            return _print_config(args)
        if getattr(args, "out", "") is None and getattr(args, "out_required", False):
            parser.error(f"{args.command}: the following arguments are required: --out")
        return int(args.func(args) or 0)
    except EnsemblabError as exc:
        _remove_partial_output(out, out_existed)
        print(f"ensemblab: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else is a bug: keep the traceback out of the way
        log = write_crash_log(argv if argv is not None else sys.argv[1:])
        _remove_partial_output(out, out_existed)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"ensemblab: internal error: {type(exc).__name__}: {message} "
              f"(traceback in {log})", file=sys.stderr)
        return 1


def _print_config(args: argparse.Namespace) -> int:
    """Print the resolved config (after ``key=value`` overrides) with its comments."""
    from ensemblab.config import find_config, load_config
    from ensemblab.config_print import render_config

    if not args.config:
        raise EnsemblabError("--print-config needs --config")
    path = find_config(args.config, installed_projects()[args.command].config_dir())
    cfg = load_config(path, list(getattr(args, "overrides", [])))
    print(render_config(cfg, path), end="")
    return 0


def write_crash_log(argv: list[str]) -> Path:
    """Write the traceback of the exception being handled to a log file; returns its path.

    The log goes to ``$TMPDIR/ensemblab-crashes/crash-<time>-<pid>.log`` so that it survives the
    removal of a half-written output folder.
    """
    folder = Path(tempfile.gettempdir()) / "ensemblab-crashes"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    log.write_text(f"ensemblab {__version__}\ncommand: ensemblab {' '.join(argv)}\n\n"
                   + traceback.format_exc())
    return log


def _remove_partial_output(out: Path | None, existed: bool) -> None:
    """Remove an output the failed command created, unless it holds a checkpoint."""
    if out is None or existed or not out.exists():
        return
    if out.is_dir():
        if not any(out.rglob("*.ckpt")):
            shutil.rmtree(out, ignore_errors=True)
    else:
        out.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
