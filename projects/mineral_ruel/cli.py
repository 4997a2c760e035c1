"""``ensemblab mineral_ruel {train,evaluate,ensemble,seeds,predict}``."""

from __future__ import annotations

import argparse

from ensemblab.cli_common import (
    add_device_args,
    add_evaluate_args,
    add_predict_args,
    add_split_arg,
    add_train_args,
)


def register(subparsers) -> None:
    """Add the ``mineral_ruel`` sub-parser and its verbs."""
    parser = subparsers.add_parser(
        "mineral_ruel", help="Res-UNet learners + RUEL voting ensembles (mineral microscopy)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("train", help="train one learner (two-stage, Lightning)")
    add_train_args(p)
    p.set_defaults(func=_train)

    p = verbs.add_parser("evaluate", help="score a learner on whole images -> RUN/metrics.json")
    add_evaluate_args(p)
    add_split_arg(p, splits=None)  # a folder name under raw/ (val: the test split), or all
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("ensemble", help="rank learners on the hold-out, score RUEL-n-PV/WV")
    p.add_argument("--runs", nargs="+", required=True, help="run folders of trained learners")
    p.add_argument("--rank-by", default="miou", help="miou | iou:<class name or index>")
    p.add_argument("--data", help="dataset folder (default: the learners' data.root)")
    p.add_argument("--out", required=True, help="output folder (ensemble.json, tables.md)")
    p.add_argument("--test-split", default="val", help="test split (default: val)")
    add_device_args(p)
    p.set_defaults(func=_ensemble)

    p = verbs.add_parser("seeds", help="mean ± std over seeds of several ensemble folders")
    p.add_argument("--ensembles", nargs="+", required=True,
                   help="one `ensemble` output folder per seed (same learner names)")
    p.add_argument("--out", required=True, help="output folder (seeds.json, seeds.md)")
    p.set_defaults(func=_seeds)

    p = verbs.add_parser("predict", help="full-resolution class-index PNGs + overlays from a "
                                         "run or an ensemble")
    add_predict_args(p)
    p.add_argument("--scheme", help="RUEL-<n>-PV|WV for an ensemble folder (default: the one "
                                    "chosen on the hold-out)")
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   help="bf16: bfloat16 autocast, ~2x faster on CPUs with AVX-512 BF16 "
                        "(default: bf16 for learners trained with train.bf16, else fp32)")
    p.set_defaults(func=_predict)


def _train(args: argparse.Namespace) -> int:
    from ensemblab.projects.mineral_ruel.commands import train

    run_dir = train(args.config, args.data, args.out, args.overrides, args.device, args.resume)
    print(f"run: {run_dir}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ensemblab.projects.mineral_ruel.commands import evaluate

    m = evaluate(args.run, args.data, args.split, args.device)
    print(f"{m['split']}: mIoU {100 * m['miou']:.2f}  F1 {100 * m['f1_score']:.2f}  "
          f"TPI {m['tpi_s']:.3f}s  ({m['n_images']} images) -> {args.run}/metrics.json")
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from ensemblab.projects.mineral_ruel.commands import ensemble

    manifest = ensemble(args.runs, args.data, args.out, args.rank_by, args.test_split,
                        args.device)
    print(f"chosen on hold-out: {manifest['chosen_scheme']}; tables: {args.out}/tables.md")
    return 0


def _seeds(args: argparse.Namespace) -> int:
    from ensemblab.projects.mineral_ruel.report import seed_summary

    summary = seed_summary(args.ensembles, args.out)
    print(f"{summary['sentence']} -> {args.out}/seeds.md")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ensemblab.projects.mineral_ruel.commands import predict

    written = predict(args.run, args.input, args.out, args.scheme, args.device,
                      args.precision)
    print(f"{len(written)} label maps (+ overlays, predict_stats.json) -> {args.out}")
    return 0
