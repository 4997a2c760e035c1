"""``ensemblab fre_unet {train,evaluate,predict,export,search,table,magnitudes,compare}``.

Argument parsing only: the verbs' bodies are plain functions in :mod:`.commands` (``table``:
:mod:`.report`, ``compare``: :mod:`.paired`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ensemblab.cli_common import add_device_args, add_split_arg
from ensemblab.project import Project, add_runtime_arg, register_project
from ensemblab.projects.fre_unet import HELD_OUT_SPLIT


def _seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of ints") from None


def _search(args: argparse.Namespace) -> int:
    from ensemblab.projects.fre_unet.commands import search

    study = search(args.config, args.data, args.out, args.overrides, space=args.space,
                   trials=args.trials, study=args.study, device=args.device, seed=args.seed)
    values = [t.value for t in study.trials if t.value is not None]
    print(f"best {study.best_params} val mIoU {study.best_value:.4f}; trials span "
          f"{min(values):.4f}-{max(values):.4f} over {len(values)} (compare with the seed noise "
          f"of the config); config: {Path(args.out) / f'best_{args.space}.yaml'}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from ensemblab.projects.fre_unet.report import results_table

    print(results_table(args.runs, args.paper, args.out))
    return 0


def _magnitudes(args: argparse.Namespace) -> int:
    from ensemblab.projects.fre_unet.commands import magnitudes

    print(magnitudes(args.runs, args.out))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ensemblab.projects.fre_unet.paired import compare_runs

    result = compare_runs(args.runs_a, args.runs_b, args.out, split=args.split, data=args.data,
                          device=args.device, confidence=args.confidence)
    r = result["rows"]["miou"]
    print(f"{result['split']} mIoU over seeds {result['seeds']}: "
          f"{Path(args.runs_a).name} {100 * r['a_mean']:.2f} ± {100 * r['a_std']:.2f}, "
          f"{Path(args.runs_b).name} {100 * r['b_mean']:.2f} ± {100 * r['b_std']:.2f}; "
          f"paired difference {100 * r['diff_mean']:+.2f} "
          f"[{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}] "
          f"({round(100 * args.confidence)}% CI), p = {r['p_value']:.3f}; "
          f"{Path(args.out) / 'compare.md'}")
    return 0


class FreUnet(Project):
    """SE-U-Net with the train-only Feature Random Enhancement module."""

    name = "fre_unet"
    help = "SE-U-Net + Feature Random Enhancement"
    verb_help = {"train": "train a variant (one run, or --seeds for several)",
                 "evaluate": "per-class IoU and mIoU; mean ± std over seed runs",
                 "predict": "class-index PNGs for a folder of images"}
    splits = None  # any part of data.split, or all
    held_out = HELD_OUT_SPLIT
    predict_resumes = True

    def train(self, config, data, out, overrides, device, resume, seeds=None):
        from ensemblab.projects.fre_unet.commands import train

        return train(config, data, out, overrides, device, resume, seeds)

    def evaluate(self, run, data, split, device):
        from ensemblab.projects.fre_unet.commands import evaluate

        return evaluate(run, data, device=device, split=split)

    def predict(self, run, input, out, device, resume=False, runtime="torch"):
        from ensemblab.projects.fre_unet.commands import predict

        return predict(run, input, out, device=device, resume=resume, runtime=runtime)

    def onnx_model(self, run):
        from ensemblab.projects.fre_unet.deploy import onnx_spec

        return onnx_spec(run)

    def add_options(self, verb, p):
        if verb == "train":
            p.add_argument("--seeds", type=_seed_list, default=None,
                           help="comma-separated seeds, e.g. 0,1,2: one run per seed in "
                                "OUT/seed<N>")
        elif verb == "predict":
            add_runtime_arg(p)

    def report(self, verb, result, args):
        m = result
        if verb == "evaluate" and "miou_mean" in m:
            print(f"{m['split']} mIoU {100 * m['miou_mean']:.2f} ± {100 * m['miou_std']:.2f} "
                  f"over seeds {m['seeds']}")
        elif verb == "evaluate":
            print(f"{m['split']} mIoU {100 * m['miou']:.2f}  " + "  ".join(
                f"{k} {100 * v:.2f}" for k, v in m["iou"].items()))
        elif verb == "predict":
            print(f"wrote {len(result)} class-index PNGs to {args.out}")
        elif verb != "train":
            super().report(verb, result, args)

    def add_verbs(self, verbs):
        p = verbs.add_parser("search", help="TPE search of FRE (B, X) or supervision lambda; "
                                            "an existing study is always resumed")
        p.add_argument("--config", required=True, help="YAML config (file or name in configs/)")
        p.add_argument("--data", required=False, help="dataset folder")
        p.add_argument("--out", required=True, help="search folder (trials, plot, best config)")
        add_device_args(p)
        p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                       help="config overrides for every trial, e.g. train.epochs=3")
        p.add_argument("--space", default="fre",
                       help="registered search space (search_spaces.py): fre = FRE's B and X "
                            "(default), supervision = the supervision weight lambda")
        p.add_argument("--trials", type=int, default=50, help="completed trials wanted in total")
        p.add_argument("--study", default=None, help="optuna storage, default sqlite:///OUT/study.db")
        p.add_argument("--seed", type=int, default=0, help="TPE sampler seed")
        p.set_defaults(func=_search)

        p = verbs.add_parser("table", help="markdown table of evaluated variants vs the paper")
        p.add_argument("runs", nargs="+", help="evaluated multi-seed folders (one per variant)")
        p.add_argument("--paper", default="drosophila", help="paper column: drosophila | none")
        p.add_argument("--out", default=None, help="also write the table to this .md file")
        p.set_defaults(func=_table)

        p = verbs.add_parser("magnitudes", help="plot deep vs skip feature magnitudes of runs")
        p.add_argument("runs", nargs="+", help="run folders holding feature_magnitude.csv, or "
                                               "folders of seed runs (averaged over the seeds)")
        p.add_argument("--out", required=True, help="PNG to write (and the series as .csv)")
        p.set_defaults(func=_magnitudes)

        p = verbs.add_parser("compare", help="paired-seed comparison of two variants: mean ± std, "
                                             "paired difference and its t interval")
        p.add_argument("--runs-a", required=True, help="folder of variant A's seed runs (seed*/)")
        p.add_argument("--runs-b", required=True, help="folder of variant B's seed runs (seed*/)")
        p.add_argument("--out", required=True, help="folder for compare.json and compare.md")
        p.add_argument("--data", required=False, help="dataset folder (default: the runs' own)")
        add_device_args(p)
        add_split_arg(p, splits=None, held_out=HELD_OUT_SPLIT)
        p.add_argument("--confidence", type=float, default=0.95, help="interval level")
        p.set_defaults(func=_compare)


def register(subparsers) -> None:
    """Add the ``fre_unet`` command and its verbs."""
    register_project(subparsers, FreUnet())
