"""``ensemblab mineral_ruel {train,evaluate,predict,export,ensemble,seeds}``."""

from __future__ import annotations

import argparse

from ensemblab.cli_common import add_device_args
from ensemblab.project import Project, add_runtime_arg, register_project


class MineralRuel(Project):
    """Res-UNet learners and RUEL voting: the common verbs (``predict`` also of an ensemble)."""

    name = "mineral_ruel"
    help = "Res-UNet learners + RUEL voting ensembles (mineral microscopy)"
    verb_help = {"train": "train one learner (two-stage, Lightning)",
                 "evaluate": "score a learner on whole images -> RUN/metrics.json",
                 "predict": "full-resolution class-index PNGs + overlays from a run or an "
                            "ensemble"}
    splits = None  # a folder name under raw/ (val: the test split), or all
    predict_resumes = True
    predict_devices = True

    def train(self, config, data, out, overrides, device, resume):
        from ensemblab.projects.mineral_ruel.commands import train

        return train(config, data, out, overrides, device, resume)

    def evaluate(self, run, data, split, device):
        from ensemblab.projects.mineral_ruel.commands import evaluate

        return evaluate(run, data, split, device)

    def predict(self, run, input, out, device, scheme=None, precision=None, resume=False,
                runtime="torch", devices=1, num_nodes=1, strategy="auto"):
        from ensemblab.projects.mineral_ruel.commands import predict

        return predict(run, input, out, scheme, device, precision, resume=resume,
                       runtime=runtime, devices=devices, num_nodes=num_nodes,
                       strategy=strategy)

    def onnx_model(self, run):
        from ensemblab.projects.mineral_ruel.deploy import onnx_spec

        return onnx_spec(run)

    def add_options(self, verb, parser):
        if verb == "predict":
            parser.add_argument("--scheme", help="RUEL-<n>-PV|WV for an ensemble folder "
                                                 "(default: the one chosen on the hold-out)")
            parser.add_argument("--precision", choices=["fp32", "bf16"],
                                help="bf16: bfloat16 autocast, ~2x faster on CPUs with AVX-512 "
                                     "BF16 (default: bf16 for learners trained with "
                                     "train.bf16, else fp32)")
            add_runtime_arg(parser)

    def add_verbs(self, verbs):
        p = verbs.add_parser("ensemble", help="rank learners on the hold-out, score "
                                              "RUEL-n-PV/WV")
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

    def report(self, verb, result, args):
        if verb == "evaluate":
            m = result
            print(f"{m['split']}: mIoU {100 * m['miou']:.2f}  F1 {100 * m['f1_score']:.2f}  "
                  f"TPI {m['tpi_s']:.3f}s  ({m['n_images']} images) -> {args.run}/metrics.json")
        elif verb == "predict":
            print(f"{len(result)} label maps (+ overlays, predict_stats.json) -> {args.out}")
        else:
            super().report(verb, result, args)


def register(subparsers) -> None:
    """Add the ``mineral_ruel`` sub-parser and its verbs."""
    register_project(subparsers, MineralRuel())


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
