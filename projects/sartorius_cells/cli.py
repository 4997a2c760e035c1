"""``ensemblab sartorius_cells train|evaluate|predict|export|submit|validate-submission|ensemble|
seeds|import-detectron2|export-detectron2``.

Argument parsing only; every verb's body is a plain function in ``commands.py``.
"""

from __future__ import annotations

import argparse

from ensemblab.cli_common import add_device_args
from ensemblab.errors import ConfigError
from ensemblab.project import Project, add_devices_args, add_runtime_arg, register_project


def _submit(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    if args.manifest:
        if args.devices * args.num_nodes > 1:
            raise ConfigError("--devices/--num-nodes: submit --manifest runs in one process; "
                              "submit --run predicts on several")
        return commands.submit_manifest(args.manifest, args.input, args.out, args.device,
                                        args.resume)
    return commands.submit_run(args.run, args.input, args.out, args.device, args.devices,
                               args.num_nodes, args.strategy, args.resume)


def _import_detectron2(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    commands.import_detectron2(args.weights, args.d2_config, args.out, classes, args.config)
    return 0


def _export_detectron2(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    commands.export_detectron2(args.run, args.out)
    return 0


def _validate(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    return commands.validate(args.csv, args.images, args.sizes)


def _ensemble(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    commands.ensemble(args.manifest, args.data, args.out, args.device, jobs=args.jobs,
                      seed=args.seed, overrides=args.overrides)
    return 0


def _seeds(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    commands.seeds(args.ensembles, args.out)
    return 0


class SartoriusCells(Project):
    """Members (Mask R-CNN, YOLOX, UPerNet), their ensemble, Kaggle score and submissions."""

    name = "sartorius_cells"
    help = "neuronal cell instance segmentation (Kaggle Sartorius)"
    verb_help = {"train": "train a member (model.kind of the config)",
                 "evaluate": "score a member on its validation split",
                 "predict": "instances + overlays for a folder of images"}
    predict_resumes = True
    predict_devices = True

    def train(self, config, data, out, overrides, device, resume, init=None):
        from ensemblab.projects.sartorius_cells import commands

        return commands.train(config, data, out, device, resume, overrides, init=init)

    def evaluate(self, run, data, split, device, untrained=False):
        from ensemblab.projects.sartorius_cells import commands

        return commands.evaluate(run, data, split, device, untrained)

    def predict(self, run, input, out, device, overlays=4, format="kaggle", runtime="torch",
                precision="fp32", resume=False, devices=1, num_nodes=1, strategy="auto"):
        from ensemblab.projects.sartorius_cells import commands

        return commands.predict(run, input, out, device, overlays, fmt=format, runtime=runtime,
                                precision=precision, devices=devices, num_nodes=num_nodes,
                                strategy=strategy, resume=resume)

    def onnx_model(self, run):
        from ensemblab.projects.sartorius_cells.members.deploy import onnx_spec

        return onnx_spec(run)

    def add_options(self, verb, p):
        if verb == "train":
            p.add_argument("--init", help="start from this Mask R-CNN run's model and weights "
                                          "(e.g. an imported detectron2 checkpoint): fine-tuning")
        elif verb == "evaluate":
            p.add_argument("--untrained", action="store_true",
                           help="score the member's initialisation (the learning baseline); "
                                "writes metrics_untrained.json")
        elif verb == "predict":
            p.add_argument("--overlays", type=int, default=4,
                           help="overlay PNGs to draw (default 4)")
            p.add_argument("--format", choices=("kaggle", "coco"), default="kaggle",
                           help="kaggle: post-processed instances as predictions.csv (default); "
                                "coco: the detector's own instances as "
                                "coco_instances_results.json")
            add_runtime_arg(p)
            p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                           help="fp32: the exact path (default); bf16: Mask R-CNN members' fast "
                                "path, channels-last with the box and mask heads under bf16 "
                                "autocast where the CPU has AVX-512 BF16 / AMX (backbone, RPN, "
                                "RoIAlign, NMS, mask pasting stay fp32)")

    def report(self, verb, result, args):
        if verb in ("evaluate", "predict"):
            return  # the commands print their own summary
        super().report(verb, result, args)

    def add_verbs(self, verbs):
        p = verbs.add_parser("import-detectron2",
                             help="make a Mask R-CNN run from a detectron2 checkpoint + config")
        p.add_argument("--weights", required=True, help="detectron2 .pth or model-zoo .pkl")
        p.add_argument("--d2-config", required=True, help="the detectron2 YAML it was trained with")
        p.add_argument("--out", required=True, help="run folder to create")
        p.add_argument("--classes", help="comma-separated class names in the checkpoint's order "
                                         "(default class_0, class_1, ...)")
        p.add_argument("--config", default="paper_maskrcnn_r50",
                       help="member config for the split, training and post-processing settings "
                            "(default paper_maskrcnn_r50)")
        p.set_defaults(func=_import_detectron2)

        p = verbs.add_parser("export-detectron2",
                             help="write a Mask R-CNN run as a detectron2 checkpoint + config")
        p.add_argument("--run", required=True, help="run folder of a Mask R-CNN member")
        p.add_argument("--out", required=True, help="checkpoint to write (.pth or .pkl); the "
                                                    "config goes next to it as .yaml")
        p.set_defaults(func=_export_detectron2)

        p = verbs.add_parser("submit", help="write a Kaggle submission CSV (id,predicted)")
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--run", help="run folder of a trained member")
        src.add_argument("--manifest", help="ensemble manifest (a file or a name in "
                                            "configs/ensembles/), e.g. OUT/manifest_fitted.yaml")
        images = p.add_mutually_exclusive_group(required=True)
        images.add_argument("--input", help="folder of test images (the flag predict takes)")
        # hidden alias of --input
        images.add_argument("--images", dest="input", help=argparse.SUPPRESS)
        p.add_argument("--out", required=True, help="submission CSV to write")
        add_device_args(p)
        p.add_argument("--resume", action="store_true",
                       help="skip the images a killed submit finished (their results wait in "
                            ".<OUT name>.parts/ beside OUT); the number skipped is printed")
        add_devices_args(p)
        p.set_defaults(func=_submit)

        p = verbs.add_parser("validate-submission", help="check a submission against image sizes")
        p.add_argument("--csv", required=True, help="submission CSV")
        sizes = p.add_mutually_exclusive_group(required=True)
        sizes.add_argument("--images", help="folder of the test images (sizes read from them)")
        sizes.add_argument("--sizes", help="CSV with columns id,width,height (e.g. train.csv)")
        p.set_defaults(func=_validate)

        p = verbs.add_parser("ensemble", help="train the manifest's unfinished members, then fit "
                                              "and score the three set-ups")
        p.add_argument("--manifest", required=True,
                       help="ensemble manifest (a file or a name in configs/ensembles/)")
        p.add_argument("--data", help="dataset folder (the members' split is used)")
        p.add_argument("--out", required=True, help="output folder (scores, fitted manifest)")
        add_device_args(p)
        p.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="members trained at a time, each a process with its share of the "
                            "cores (--jobs 2 on 2 cores: two single-thread members; default 1)")
        p.add_argument("--seed", type=int, metavar="N",
                       help="train every member at seed N into OUT/members/NAME (default: "
                            "the members' own configs and runs)")
        p.add_argument("overrides", nargs="*", metavar="key=value",
                       help="config overrides for every member, e.g. a held-out fold "
                            "data.split.test_ids=[set1,set6]; members then train into "
                            "OUT/members/NAME")
        p.set_defaults(func=_ensemble)

        p = verbs.add_parser("seeds", help="mean ± std over seeds of several ensemble folders")
        p.add_argument("--ensembles", nargs="+", required=True,
                       help="one `ensemble` output folder per seed (same member names)")
        p.add_argument("--out", required=True, help="output folder (seeds.json, seeds.md)")
        p.set_defaults(func=_seeds)


def register(subparsers) -> None:
    """Add the ``sartorius_cells`` parser and its verbs to the top-level CLI."""
    register_project(subparsers, SartoriusCells())
