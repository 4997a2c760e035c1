"""``ensemblab battery_crystal train | evaluate | predict``: argument parsing only.

- ``train --config CFG --data DIR --out RUN``: fit the configured model (default: the DNN
  ensemble on ``honest`` features) on every row of the table.
- ``evaluate --run RUN --data DIR``: every configured model x protocol x feature set ->
  ``RUN/metrics.json``, ``RUN/results.md``, ``RUN/confusion.png``.
- ``predict --run RUN --input CSV --out DIR``: a table without the label column ->
  ``DIR/predictions.csv``.

The verbs' bodies are plain functions in :mod:`.commands`. The models are small: they run on the
CPU whatever ``--device`` says.
"""

from __future__ import annotations

import argparse

from ensemblab.cli_common import add_evaluate_args, add_predict_args, add_train_args


def _train(args: argparse.Namespace) -> int:
    from ensemblab.projects.battery_crystal.commands import train

    train(args.config, args.data, args.out, args.overrides, args.resume)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ensemblab.projects.battery_crystal.commands import evaluate

    evaluate(args.run, args.data)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ensemblab.projects.battery_crystal.commands import predict

    predict(args.run, args.input, args.out)
    return 0


def register(subparsers) -> None:
    """Add ``battery_crystal`` and its verbs to the ``ensemblab`` parser."""
    parser = subparsers.add_parser(
        "battery_crystal", help="crystal-system classification of Li-ion silicates (tabular)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("train", help="fit the configured model on the whole table")
    add_train_args(p)
    p.set_defaults(func=_train)
    p = verbs.add_parser("evaluate", help="all models x protocols x feature sets -> metrics.json")
    add_evaluate_args(p)
    p.set_defaults(func=_evaluate)
    p = verbs.add_parser("predict", help="class + probabilities for a CSV without labels")
    add_predict_args(p)
    p.set_defaults(func=_predict)
