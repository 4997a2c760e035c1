"""``ensemblab crossattn_vl train|evaluate|predict|export|ablate``: argument parsing only.

The verbs' bodies are plain functions in :mod:`.commands` (``predict``: :mod:`.predict`).
"""

from __future__ import annotations

import json

from ensemblab.cli_common import add_device_args
from ensemblab.errors import ConfigError
from ensemblab.project import Project, register_project


def _names(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def _seeds(text: str) -> list[int]:
    return [int(t) for t in _names(text)]


def _need_data(data) -> None:
    if not data:
        raise ConfigError("--data DIR is required")


def _ablate(args) -> int:
    from ensemblab.projects.crossattn_vl.commands import ablate

    _need_data(args.data)
    table = ablate(args.config, args.data, args.out, args.overrides, args.variants, args.seeds,
                   args.device)
    print(table.read_text())
    return 0


class CrossAttnVL(Project):
    """Captioning, image-text matching and VQA with cross-attention fusion."""

    name = "crossattn_vl"
    help = "cross-attention vision-language model"
    verb_help = {"train": "train a model",
                 "evaluate": "metrics on a dataset folder -> RUN/metrics.json",
                 "predict": "caption an image folder / answer a JSON"}
    # the run's test split: validation picked the checkpoint (commands._eval_keys)
    splits = ("test", "val", "train", "all")
    held_out = "test"
    predict_resumes = True

    def train(self, config, data, out, overrides, device, resume):
        from ensemblab.projects.crossattn_vl.commands import train

        _need_data(data)
        return train(config, data, out, overrides, device, resume)

    def evaluate(self, run, data, split, device):
        from ensemblab.projects.crossattn_vl.commands import evaluate

        _need_data(data)
        return evaluate(run, data, split, device)

    def predict(self, run, input, out, device, resume=False):
        from ensemblab.projects.crossattn_vl.predict import predict

        return predict(run, input, out, device, resume=resume)

    def report(self, verb, result, args):
        if verb == "evaluate":
            print(json.dumps(result, indent=2))
        elif verb == "predict":
            print(f"wrote {result}")
        else:
            super().report(verb, result, args)

    def add_verbs(self, verbs):
        ablate = verbs.add_parser("ablate", help="train+evaluate every variant and seed, tabulate")
        ablate.add_argument("--config", required=True, help="base config (file or name)")
        ablate.add_argument("--data", required=True, help="dataset folder")
        ablate.add_argument("--out", required=True, help="folder for the variant runs + table")
        add_device_args(ablate, "auto | cpu | cuda")
        ablate.add_argument("--variants", type=_names, default=None,
                            help="comma-separated variants (default: full,no_cross_attention,"
                                 "no_cbam,visual_only,text_only)")
        ablate.add_argument("--seeds", type=_seeds, default=[0],
                            help="comma-separated seeds per variant, e.g. 0,1,2 "
                                 "(table: mean ± std)")
        ablate.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                            help="config overrides")
        ablate.set_defaults(func=_ablate)


def register(subparsers) -> None:
    """Add the ``crossattn_vl`` parser and its verbs."""
    register_project(subparsers, CrossAttnVL())
