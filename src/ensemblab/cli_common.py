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
