"""Argument helpers so every project's verbs share one vocabulary (see DESIGN.md, CLI)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ensemblab.threads import add_threads_arg

HELD_OUT_SPLIT = "val"
ALL_ITEMS = "all"
AUTO_SPLIT = "auto"


def add_device_args(parser: argparse.ArgumentParser, choices: str = "auto | cpu | cuda | cuda:N"
                    ) -> None:
    """``--device D --threads N``: where the verb runs, and how many CPU threads it uses."""
    parser.add_argument("--device", default="auto", help=choices)
    add_threads_arg(parser)


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
    add_device_args(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN/checkpoints/last.ckpt")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="config overrides, e.g. train.epochs=3")


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    """``--run RUN --data DIR [--device D]``; writes RUN/metrics.json."""
    parser.add_argument("--run", required=True, help="run folder of a trained model")
    parser.add_argument("--data", required=False, help="dataset folder")
    add_device_args(parser)


def add_split_arg(parser: argparse.ArgumentParser,
                  splits: tuple[str, ...] | None = (HELD_OUT_SPLIT, ALL_ITEMS),
                  held_out: str = HELD_OUT_SPLIT) -> None:
    """``--split``, default ``auto`` in every project (see :func:`resolve_split`).

    Args:
        parser: an ``evaluate`` (or other scoring) verb's parser.
        splits: the named splits the project can score besides ``auto``; None when the data
            names its splits (folders, config entries): any name is then accepted.
        held_out: the project's held-out split, the one ``auto`` scores on the run's own data
            (``"val"``; ``"test"`` where a validation split picked the checkpoint).
    """
    choices = None if splits is None else (AUTO_SPLIT, *splits)
    names = "a split of the data" if splits is None else ", ".join(splits)
    parser.add_argument(
        "--split", default=AUTO_SPLIT, choices=choices, metavar=None if choices else "SPLIT",
        help=f"items to score: {AUTO_SPLIT} (default: the run's held-out '{held_out}' split on "
             f"its own training data, every labelled item of any other folder) or {names}")


def resolve_split(split: str, data: str | Path | None, run_data: str | Path | None,
                  held_out: str = HELD_OUT_SPLIT) -> str:
    """The split ``evaluate`` scores; ``auto`` is the one default of every project.

    ``auto`` means ``held_out``, the run's held-out split, when the data given is the data the
    run was trained on (``data`` is None, or the same folder as ``run_data``): its training
    items must not be scored. On any other folder, which was never split, it means ``"all"``:
    every labelled item is scored. A run that did not record its data folder (``run_data``
    None) cannot show a folder is its own, so it gets ``"all"``. A named split is returned as
    given.

    Args:
        split: ``--split`` as given.
        data: ``--data`` as given (None: the run's own data).
        run_data: the training data folder recorded in the run's config.
        held_out: the project's held-out split (``"val"``, fre_unet's ``"test"``).

    Returns:
        The split name, e.g. ``"val"`` or ``"all"``.
    """
    if split != AUTO_SPLIT:
        return split
    if data is None:
        return held_out
    own = run_data is not None and Path(data).resolve() == Path(run_data).resolve()
    return held_out if own else ALL_ITEMS


def scored_items_line(count: int, data: str | Path, split: str) -> str:
    """The line ``evaluate`` prints before scoring, so a user sees how many items are scored.

    E.g. ``scoring 15 labelled items of DIR (split all)``.

    Args:
        count: items about to be scored.
        data: the dataset folder.
        split: the resolved split (:func:`resolve_split`).
    """
    noun = "item" if count == 1 else "items"
    return f"scoring {count} labelled {noun} of {data} (split {split})"


def add_predict_args(parser: argparse.ArgumentParser) -> None:
    """``--run RUN --input DIR --out DIR [--device D]``."""
    parser.add_argument("--run", required=True, help="run folder of a trained model")
    parser.add_argument("--input", required=True, help="input images / file")
    parser.add_argument("--out", required=True, help="output folder")
    add_device_args(parser)


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
    from ensemblab.run_record import check_run

    check_run(args.run, args.command, None, "export")
    source, target = export_weights(args.run, args.out)
    print(f"exported {source} ({megabytes(source)}) -> {target} ({megabytes(target)})")
    return 0
