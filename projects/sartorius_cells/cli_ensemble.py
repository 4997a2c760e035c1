"""Part 2 verbs of ``ensemblab sartorius_cells`` (hooked in by part 1's ``cli.py``).

- ``train`` / ``evaluate`` with ``model.kind: yolox | upernet`` dispatch to :data:`MEMBER_KINDS`;
- ``ensemble --manifest M --data DIR --out DIR``: fit weights / thresholds on the validation
  split and score the paper's three set-ups;
- ``submit --manifest M --images DIR --out submission.csv`` (part 1's ``submit``) calls
  :func:`submit_manifest`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace


def _train_yolox(cfg, run_dir, args) -> int:
    from ensemblab.projects.sartorius_cells.member_runs import train_yolox

    return train_yolox(cfg, Path(run_dir), args)


def _evaluate_yolox(run_dir, args) -> int:
    from ensemblab.projects.sartorius_cells.member_runs import evaluate_yolox

    print(json.dumps(evaluate_yolox(run_dir, args)))
    return 0


def _train_upernet(cfg, run_dir, args) -> int:
    from ensemblab.projects.sartorius_cells.member_runs import train_upernet

    return train_upernet(cfg, Path(run_dir), args)


def _evaluate_upernet(run_dir, args) -> int:
    from ensemblab.projects.sartorius_cells.member_runs import evaluate_upernet

    print(json.dumps(evaluate_upernet(run_dir, args)))
    return 0


MEMBER_KINDS = {
    "yolox": SimpleNamespace(train=_train_yolox, evaluate=_evaluate_yolox),
    "upernet": SimpleNamespace(train=_train_upernet, evaluate=_evaluate_upernet),
}


def _manifest_path(name: str) -> Path:
    """A manifest file, or the bare name of one in ``configs/`` (e.g. ``setup3_consensus``)."""
    from ensemblab.projects.sartorius_cells.cli import resolve_config

    return resolve_config(name)


def _ensemble(args: argparse.Namespace) -> int:
    from ensemblab.projects.sartorius_cells.ensemble_run import run_ensemble

    results = run_ensemble(_manifest_path(args.manifest), args.data, args.out, args.device)
    for entry, r in results.items():
        if isinstance(r, dict):
            shown = {k: round(v, 4) for k, v in r.items() if isinstance(v, float)}
            print(f"{entry:40s} {shown}")
    print(f"-> {Path(args.out) / 'scores.csv'}, {Path(args.out) / 'manifest_fitted.yaml'}")
    return 0


def submit_manifest(args: argparse.Namespace) -> int:
    """``submit --manifest M --images DIR --out CSV``: a validated submission of the ensemble."""
    from ensemblab.projects.sartorius_cells.ensemble_run import submit_ensemble

    return submit_ensemble(_manifest_path(args.manifest), args.images, args.out, args.device)


def register_verbs(verbs) -> None:
    """Add ``ensemble`` to the ``sartorius_cells`` verbs."""
    p = verbs.add_parser("ensemble", help="fit + score the three set-ups of a manifest")
    p.add_argument("--manifest", required=True,
                   help="ensemble manifest (YAML/JSON file or a name in configs/)")
    p.add_argument("--data", required=True, help="dataset folder (the members' split is used)")
    p.add_argument("--out", required=True, help="output folder (scores, fitted manifest)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=_ensemble)
