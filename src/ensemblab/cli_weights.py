"""The ``ensemblab weights`` command's parser.

Light on purpose: building it imports no torch; the verbs import
:mod:`ensemblab.backbones.check` when they run.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``weights`` command to the top-level parser."""
    p = sub.add_parser("weights", help="list image encoders and their offline weights")
    p.set_defaults(func=_list)
    verbs = p.add_subparsers(dest="weights_verb", metavar="VERB")
    check = verbs.add_parser("check", help="top-5 ImageNet classes of photos, per encoder")
    check.add_argument("images", nargs="+", help="photo files (JPEG/PNG)")
    check.add_argument("--encoders", nargs="*", default=None,
                       help="encoders to run (default: every one with packaged weights)")
    check.set_defaults(func=_check)


def _list(args: argparse.Namespace) -> int:
    from ensemblab.backbones.check import list_weights

    return list_weights(args)


def _check(args: argparse.Namespace) -> int:
    from ensemblab.backbones.check import check_photos

    return check_photos(args)
