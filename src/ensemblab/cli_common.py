"""Argument helpers so every project's verbs share one vocabulary (see DESIGN.md, CLI)."""

from __future__ import annotations

import argparse


def add_train_args(parser: argparse.ArgumentParser, config_required: bool = True) -> None:
    """``--config CFG --data DIR --out RUN [--device D] [--resume] [--print-config] [key=value]``.

    ``--out`` is required unless ``--print-config`` is given (checked by ``ensemblab.cli``).
    """
    parser.add_argument("--config", required=config_required,
                        help="YAML config (a file, or a name from the project's configs/)")
    parser.add_argument("--data", required=False, help="dataset folder")
    parser.add_argument("--out", default=None, help="run folder to create (required)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config with its comments and exit")
    parser.set_defaults(out_required=True)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN/checkpoints/last.ckpt")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="config overrides, e.g. train.epochs=3")


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    """``--run RUN --data DIR [--device D]``; writes RUN/metrics.json."""
    parser.add_argument("--run", required=True, help="run folder of a trained model")
    parser.add_argument("--data", required=False, help="dataset folder")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def add_predict_args(parser: argparse.ArgumentParser) -> None:
    """``--run RUN --input DIR --out DIR [--device D]``."""
    parser.add_argument("--run", required=True, help="run folder of a trained model")
    parser.add_argument("--input", required=True, help="input images / file")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def add_common_verbs(project_parser: argparse.ArgumentParser) -> None:
    """Add the verbs every project shares to its sub-parser, unless it defines its own.

    Called by ``ensemblab.cli`` after the project's ``register(subparsers)``:

    - ``export --run RUN [--out FILE]``: a weights-only file for deployment
      (:func:`ensemblab.engine.export.export_weights`; ``RUN/weights.pt`` by default).

    Args:
        project_parser: the ``<project>`` parser; its verbs are its sub-parsers.
    """
    verbs = next((a for a in project_parser._actions
                  if isinstance(a, argparse._SubParsersAction)), None)
    if verbs is None or "export" in verbs.choices:
        return
    p = verbs.add_parser("export", help="weights-only file for deployment: the model state_dict "
                                        "of best.ckpt (else last.ckpt) and the resolved config, "
                                        "no optimizer state")
    p.add_argument("--run", required=True, help="run folder of a trained model")
    p.add_argument("--out", default=None, help="file to write (default: RUN/weights.pt)")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from ensemblab.engine.export import export_weights, megabytes

    source, target = export_weights(args.run, args.out)
    print(f"exported {source} ({megabytes(source)}) -> {target} ({megabytes(target)})")
    return 0
