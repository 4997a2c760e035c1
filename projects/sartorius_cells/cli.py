"""``ensemblab sartorius_cells train|evaluate|predict|submit|validate-submission|ensemble``.

Argument parsing only; every verb's body is a plain function in ``commands.py``.
"""

from __future__ import annotations

from ensemblab.cli_common import add_evaluate_args, add_predict_args, add_train_args


def _train(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    commands.train(args.config, args.data, args.out, args.device, args.resume, args.overrides)
    return 0


def _evaluate(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    commands.evaluate(args.run, args.data, args.split, args.device, args.untrained)
    return 0


def _predict(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    return commands.predict(args.run, args.input, args.out, args.device, args.overlays)


def _submit(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    if args.manifest:
        return commands.submit_manifest(args.manifest, args.images, args.out, args.device)
    return commands.submit_run(args.run, args.images, args.out, args.device)


def _validate(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    return commands.validate(args.csv, args.images, args.sizes)


def _ensemble(args) -> int:
    from ensemblab.projects.sartorius_cells import commands

    commands.ensemble(args.manifest, args.data, args.out, args.device)
    return 0


def register(subparsers) -> None:
    """Add the ``sartorius_cells`` parser and its verbs to the top-level CLI."""
    parser = subparsers.add_parser(
        "sartorius_cells", help="neuronal cell instance segmentation (Kaggle Sartorius)",
        description="YOLOX + Mask R-CNN + UPerNet members, their ensemble, Kaggle score and "
                    "submissions.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    p = verbs.add_parser("train", help="train a member (model.kind of the config)")
    add_train_args(p)
    p.set_defaults(func=_train)

    p = verbs.add_parser("evaluate", help="score a member on its validation split")
    add_evaluate_args(p)
    p.add_argument("--split", choices=("val", "all"), default="val",
                   help="score the run's validation split (default) or every image")
    p.add_argument("--untrained", action="store_true",
                   help="score the member's initialisation (the learning baseline); "
                        "writes metrics_untrained.json")
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("predict", help="instances + overlays for a folder of images")
    add_predict_args(p)
    p.add_argument("--overlays", type=int, default=4, help="overlay PNGs to draw (default 4)")
    p.set_defaults(func=_predict)

    p = verbs.add_parser("submit", help="write a Kaggle submission CSV (id,predicted)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run folder of a trained member")
    src.add_argument("--manifest", help="ensemble manifest (a file or a name in "
                                        "configs/ensembles/), e.g. OUT/manifest_fitted.yaml")
    p.add_argument("--images", required=True, help="folder of test images")
    p.add_argument("--out", required=True, help="submission CSV to write")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
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
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=_ensemble)
