"""``ensemblab crossattn_vl train|evaluate|predict|ablate``: argument parsing only.

The verbs' bodies are plain functions in :mod:`.commands` (``predict``: :mod:`.predict`).
"""

from __future__ import annotations

import json

from ensemblab.cli_common import (
    add_device_args,
    add_evaluate_args,
    add_predict_args,
    add_split_arg,
    add_train_args,
)
from ensemblab.errors import ConfigError


def _names(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def _seeds(text: str) -> list[int]:
    return [int(t) for t in _names(text)]


def _need_data(args) -> None:
    if not args.data:
        raise ConfigError("--data DIR is required")


def _train(args) -> int:
    from ensemblab.projects.crossattn_vl.commands import train

    _need_data(args)
    run = train(args.config, args.data, args.out, args.overrides, args.device, args.resume)
    print(f"run: {run}")
    return 0


def _evaluate(args) -> int:
    from ensemblab.projects.crossattn_vl.commands import evaluate_run

    _need_data(args)
    metrics = evaluate_run(args.run, args.data, args.device, args.split)
    print(json.dumps(metrics, indent=2))
    return 0


def _predict(args) -> int:
    from ensemblab.projects.crossattn_vl.predict import predict_run

    print(f"wrote {predict_run(args.run, args.input, args.out, args.device)}")
    return 0


def _ablate(args) -> int:
    from ensemblab.projects.crossattn_vl.commands import ablate

    _need_data(args)
    table = ablate(args.config, args.data, args.out, args.overrides, args.variants, args.seeds,
                   args.device)
    print(table.read_text())
    return 0


def register(subparsers) -> None:
    """Add the ``crossattn_vl`` parser and its verbs."""
    parser = subparsers.add_parser("crossattn_vl", help="cross-attention vision-language model")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    train = verbs.add_parser("train", help="train a model")
    add_train_args(train)
    train.set_defaults(func=_train)
    evaluate = verbs.add_parser("evaluate", help="metrics on a dataset folder -> RUN/metrics.json")
    add_evaluate_args(evaluate)
    # the run's test split: validation picked the checkpoint (commands._eval_keys)
    add_split_arg(evaluate, ("test", "val", "train", "all"), held_out="test")
    evaluate.set_defaults(func=_evaluate)
    predict = verbs.add_parser("predict", help="caption an image folder / answer a JSON")
    add_predict_args(predict)
    predict.set_defaults(func=_predict)
    ablate = verbs.add_parser("ablate", help="train+evaluate every variant and seed, tabulate")
    ablate.add_argument("--config", required=True, help="base config (file or name)")
    ablate.add_argument("--data", required=True, help="dataset folder")
    ablate.add_argument("--out", required=True, help="folder for the variant runs + table")
    add_device_args(ablate, "auto | cpu | cuda")
    ablate.add_argument("--variants", type=_names, default=None,
                        help="comma-separated variants (default: full,no_cross_attention,"
                             "no_cbam,visual_only,text_only)")
    ablate.add_argument("--seeds", type=_seeds, default=[0],
                        help="comma-separated seeds per variant, e.g. 0,1,2 (table: mean ± std)")
    ablate.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="config overrides")
    ablate.set_defaults(func=_ablate)
