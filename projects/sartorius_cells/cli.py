"""``ensemblab sartorius_cells train|evaluate|predict|submit|validate-submission``.

Part 2 of the project (YOLOX, UPerNet, the ensemble) plugs in without editing this file: when
the module ``ensemblab.projects.sartorius_cells.cli_ensemble`` exists, its
``register_verbs(subparsers)`` adds its verbs, ``MEMBER_KINDS[cfg.model.kind]`` trains and
evaluates other members, and ``submit --manifest`` calls its ``submit_manifest(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from pathlib import Path

from ensemblab.cli_common import add_evaluate_args, add_predict_args, add_train_args
from ensemblab.config import find_config, load_config
from ensemblab.errors import ConfigError, EnsemblabError

CONFIG_DIR = Path(__file__).parent / "configs"
ENSEMBLE_MODULE = "ensemblab.projects.sartorius_cells.cli_ensemble"


def _ensemble_cli():
    try:
        if importlib.util.find_spec(ENSEMBLE_MODULE) is None:
            return None
    except ModuleNotFoundError:
        return None
    return importlib.import_module(ENSEMBLE_MODULE)


def resolve_config(name: str) -> Path:
    """A config file path, or a bare name of a file in ``configs/``."""
    return find_config(name, CONFIG_DIR)


def _member_kind(cfg: dict):
    kind = cfg.get("model", {}).get("kind", "maskrcnn")
    if kind == "maskrcnn":
        return None
    ext = _ensemble_cli()
    if ext is None or kind not in getattr(ext, "MEMBER_KINDS", {}):
        raise ConfigError(f"model.kind {kind!r} is not available (only 'maskrcnn' is built in)")
    return ext.MEMBER_KINDS[kind]


def _train(args: argparse.Namespace) -> int:
    from ensemblab.engine import prepare_run_dir
    from ensemblab.projects.sartorius_cells.workflow import train_run

    if args.data is None:
        raise ConfigError("train needs --data DIR")
    cfg = load_config(resolve_config(args.config), args.overrides)
    member = _member_kind(cfg)
    if member is not None:
        run_dir = prepare_run_dir(args.out, cfg, resume=args.resume)
        return int(member.train(cfg, run_dir, args))
    return train_run(cfg, args.data, args.out, args.device, args.resume)


def _evaluate(args: argparse.Namespace) -> int:
    from ensemblab.engine import open_run
    from ensemblab.projects.sartorius_cells.workflow import evaluate_run

    _, cfg = open_run(args.run)
    member = _member_kind(cfg)
    if member is not None:
        return int(member.evaluate(Path(args.run), args))
    if args.data is None:
        raise ConfigError("evaluate needs --data DIR")
    return evaluate_run(args.run, args.data, args.split, args.device, args.untrained)


def _predict(args: argparse.Namespace) -> int:
    from ensemblab.projects.sartorius_cells.workflow import predict_run

    return predict_run(args.run, args.input, args.out, args.device, args.overlays)


def _submit(args: argparse.Namespace) -> int:
    from ensemblab.projects.sartorius_cells.workflow import submit_run

    if args.manifest:
        ext = _ensemble_cli()
        if ext is None or not hasattr(ext, "submit_manifest"):
            raise EnsemblabError("submit --manifest needs the ensemble part "
                                 "(ensemblab.projects.sartorius_cells.cli_ensemble)")
        return int(ext.submit_manifest(args))
    return submit_run(args.run, args.images, args.out, args.device)


def _validate(args: argparse.Namespace) -> int:
    from ensemblab.projects.sartorius_cells.workflow import validate_run

    return validate_run(args.csv, args.images, args.sizes)


def register(subparsers) -> None:
    """Add the ``sartorius_cells`` parser and its verbs to the top-level CLI."""
    parser = subparsers.add_parser(
        "sartorius_cells", help="neuronal cell instance segmentation (Kaggle Sartorius)",
        description="Mask R-CNN member, Kaggle score, submissions (paper: YOLOX + Mask R-CNN "
                    "+ UPerNet ensemble).")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    p = verbs.add_parser("train", help="train a member (Mask R-CNN by default)")
    add_train_args(p)
    p.set_defaults(func=_train)

    p = verbs.add_parser("evaluate", help="Kaggle score, per cell type, COCO mask AP")
    add_evaluate_args(p)
    p.add_argument("--split", choices=("val", "all"), default="val",
                   help="score the run's validation split (default) or every image")
    p.add_argument("--untrained", action="store_true",
                   help="score the randomly initialised model (the learning baseline); "
                        "writes metrics_untrained.json")
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("predict", help="instances + overlays for a folder of images")
    add_predict_args(p)
    p.add_argument("--overlays", type=int, default=4, help="overlay PNGs to draw (default 4)")
    p.set_defaults(func=_predict)

    p = verbs.add_parser("submit", help="write a Kaggle submission CSV (id,predicted)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run folder of a trained member")
    src.add_argument("--manifest", help="ensemble manifest (part 2)")
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

    ext = _ensemble_cli()
    if ext is not None and hasattr(ext, "register_verbs"):
        ext.register_verbs(verbs)
