"""One interface for every project's common verbs: ``train``, ``evaluate``, ``predict``, ``export``.

A project's ``cli`` module subclasses :class:`Project` and calls :func:`register_project` from
its ``register(subparsers)``. The four verbs get the same flags, in the same order, in every
project (built here, once); a project adds only its own options (:meth:`Project.add_options`)
and its own verbs (:meth:`Project.add_verbs`: ``submit``, ``ensemble``, ``search`` ...). The
verb methods take the same argument names and order everywhere (Lightning's
``Trainer.fit / validate / predict`` habit), import their implementation when they run, and
return what they wrote; :meth:`Project.report` prints it.

Light on purpose: building the parsers imports no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ensemblab.cli_common import (
    HELD_OUT_SPLIT,
    add_evaluate_args,
    add_predict_args,
    add_split_arg,
    add_train_args,
)
from ensemblab.errors import ConfigError, EnsemblabError

COMMON_VERBS = ("train", "evaluate", "predict", "export")
EXPORT_FORMATS = ("weights", "onnx")
RUNTIMES = ("torch", "onnx")


class Project:
    """A paper's project as the CLI sees it.

    Class attributes:
        name: the sub-command (``mineral_ruel``).
        help: one line for ``ensemblab --help``.
        verb_help: one line per common verb for ``ensemblab <name> --help``.
        splits: the named splits ``evaluate --split`` accepts besides ``auto`` (None: any name
            the data holds).
        held_out: the split ``auto`` scores on the run's own data.
        predict_resumes: ``predict`` writes one output per input item, each atomically (or,
            where it writes one file for all items, one part per item merged at the end:
            :class:`ensemblab.streaming.Parts`), and takes ``resume``: with ``--resume`` it
            skips the items whose outputs exist. False where ``predict`` writes one file for
            all items at once: ``--resume`` is then accepted, said to have no effect, and not
            passed on.
        predict_devices: ``predict`` takes ``devices``, ``num_nodes`` and ``strategy`` and
            predicts on several devices or nodes, each rank a shard of the items
            (:mod:`ensemblab.engine.predict_ddp`), writing the files one process writes.
            False: ``--devices``/``--num-nodes`` above 1 stop with one line naming the
            projects that can; the flags are not passed on.
    """

    name: str = ""
    help: str = ""
    verb_help: dict[str, str] = {}
    splits: tuple[str, ...] | None = (HELD_OUT_SPLIT, "all")
    held_out: str = HELD_OUT_SPLIT
    predict_resumes: bool = False
    predict_devices: bool = False

    def train(self, config: str, data: str | None, out: str, overrides: list[str],
              device: str, resume: bool, **options: Any) -> Any:
        """Train into the run folder ``out``; returns what :meth:`report` prints."""
        raise EnsemblabError(f"{self.name} has no train verb")

    def evaluate(self, run: str, data: str | None, split: str, device: str,
                 **options: Any) -> Any:
        """Score a run; writes ``RUN/metrics.json`` and returns the metrics."""
        raise EnsemblabError(f"{self.name} has no evaluate verb")

    def predict(self, run: str, input: str, out: str, device: str, **options: Any) -> Any:
        """Predict every item of ``input`` into ``out`` (``resume`` among the options where
        :attr:`predict_resumes`; ``devices``, ``num_nodes``, ``strategy`` where
        :attr:`predict_devices`)."""
        raise EnsemblabError(f"{self.name} has no predict verb")

    def export(self, run: str, out: str | None, **options: Any) -> Any:
        """A weights-only file of the run's best checkpoint and its config."""
        from ensemblab.engine.export import export_weights

        return export_weights(run, out)

    def onnx_model(self, run: str) -> Any:
        """The network of a run and its deployment settings for ``export --format onnx``.

        A project that supports ONNX returns an :class:`ensemblab.engine.onnx_export.OnnxSpec`
        built from the run's best weights; the default refuses with one line naming the
        projects that do.
        """
        names = ", ".join(onnx_projects()) or "none"
        raise ConfigError(f"{self.name} has no ONNX export (projects with one: {names}); "
                          "use --format weights")

    def export_onnx(self, run: str, out: str | None) -> tuple[Path, Path]:
        """Write the run's network as ONNX (default ``RUN/model.onnx``) and its settings
        (``RUN/model.json``); returns ``(checkpoint read, ONNX file)``."""
        from ensemblab.engine.onnx_export import ONNX_NAME, export_onnx
        from ensemblab.engine.runs import best_checkpoint

        spec = self.onnx_model(run)
        target, _ = export_onnx(spec, out if out is not None else Path(run) / ONNX_NAME, run)
        return best_checkpoint(run), target

    def add_options(self, verb: str, parser: argparse.ArgumentParser) -> None:
        """Add the project's own options of a common verb (none by default)."""

    def add_verbs(self, verbs: argparse._SubParsersAction) -> None:
        """Add the project's own verbs (none by default)."""

    def report(self, verb: str, result: Any, args: argparse.Namespace) -> None:
        """Print a common verb's result (one line by default)."""
        if verb == "export":
            from ensemblab.engine.export import megabytes

            source, target = result
            print(f"exported {source} ({megabytes(source)}) -> {target} ({megabytes(target)})")
            if getattr(args, "format", "weights") == "onnx":
                from ensemblab.engine.onnx_export import settings_path

                print(f"settings -> {settings_path(target)}")
        elif verb == "train":
            print(f"run: {result}")
        elif verb == "evaluate":
            print(f"-> {Path(args.run) / 'metrics.json'}")
        else:
            print(f"-> {args.out}")


_COMMON_DESTS = {
    "train": ("config", "data", "out", "overrides", "device", "resume"),
    "evaluate": ("run", "data", "split", "device"),
    "predict": ("run", "input", "out", "device"),
    "export": ("run", "out"),
}
# Set by argparse or the CLI itself, never passed to a verb.
_CLI_DESTS = {"command", "verb", "func", "threads", "print_config", "out_required"}
# The projects register_project has built, by name.
_REGISTERED: dict[str, Project] = {}


def onnx_projects() -> list[str]:
    """Names of the registered projects that export ONNX (override :meth:`Project.onnx_model`)."""
    return sorted(name for name, p in _REGISTERED.items()
                  if type(p).onnx_model is not Project.onnx_model)


def predict_device_projects() -> list[str]:
    """Names of the registered projects whose ``predict`` runs on several devices."""
    return sorted(name for name, p in _REGISTERED.items() if p.predict_devices)


def register_project(subparsers: argparse._SubParsersAction, project: Project
                     ) -> argparse.ArgumentParser:
    """Add ``<project.name>`` with the four common verbs and the project's own verbs.

    Returns:
        The project's parser.
    """
    _REGISTERED[project.name] = project
    parser = subparsers.add_parser(project.name, help=project.help)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    builders = {
        "train": add_train_args,
        "evaluate": lambda p: (add_evaluate_args(p),
                               add_split_arg(p, project.splits, project.held_out)),
        "predict": _add_resumable_predict_args,
        "export": _add_export_args,
    }
    for verb in COMMON_VERBS:
        p = verbs.add_parser(verb, help=project.verb_help.get(verb, _DEFAULT_HELP[verb]))
        builders[verb](p)
        project.add_options(verb, p)
        p.set_defaults(func=_runner(project, verb))
    project.add_verbs(verbs)
    return parser


_DEFAULT_HELP = {
    "train": "train a model into a run folder",
    "evaluate": "score a run -> RUN/metrics.json",
    "predict": "predict a folder or file with a run",
    "export": "weights-only file for deployment: the model state_dict of best.ckpt (else "
              "last.ckpt) and the resolved config, no optimizer state",
}


def _add_resumable_predict_args(parser: argparse.ArgumentParser) -> None:
    """``--run RUN --input DIR --out DIR [--device D] [--resume] [--devices N ...]``."""
    add_predict_args(parser)
    parser.add_argument("--resume", action="store_true",
                        help="skip the items whose outputs exist in OUT (or, where one file "
                             "holds every item, whose parts a killed run left in OUT/.<file>"
                             ".parts/; both are written atomically, so an existing one is "
                             "complete); the number skipped is printed")
    add_devices_args(parser)


def add_devices_args(parser: argparse.ArgumentParser) -> None:
    """``--devices N --num-nodes M --strategy {auto,ddp}`` of a verb that predicts on several
    devices or nodes (every project's ``predict``; a project's own verbs may take them too)."""
    parser.add_argument("--devices", type=int, default=1, metavar="N",
                        help="processes per node, one per device (GPUs, or CPU processes), "
                             "each predicting a shard of the items through Lightning; rank 0 "
                             "merges the outputs (default 1; under torchrun: its "
                             "--nproc-per-node)")
    parser.add_argument("--num-nodes", type=int, default=1, metavar="M",
                        help="nodes for multi-node predict, started by torchrun or SLURM "
                             "(default 1)")
    parser.add_argument("--strategy", choices=("auto", "ddp"), default="auto",
                        help="auto: ddp for more than one process (default)")


def _add_export_args(parser: argparse.ArgumentParser) -> None:
    """``--run RUN [--out FILE] [--format {weights,onnx}]``."""
    parser.add_argument("--run", required=True, help="run folder of a trained model")
    parser.add_argument("--out", default=None, help="file to write (default: RUN/weights.pt; "
                                                    "onnx: RUN/model.onnx)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="weights",
                        help="weights: weights-only .pt (default); onnx: the eval network as "
                             "ONNX + its pre/post-processing settings as .json beside it "
                             "(needs ensemblab[onnx])")


def add_runtime_arg(parser: argparse.ArgumentParser) -> None:
    """``--runtime {torch,onnx}`` of ``predict`` in the projects that export ONNX."""
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="torch: the run's checkpoint (default); onnx: RUN/model.onnx "
                             "(export --format onnx) through onnxruntime on the CPU "
                             "(needs ensemblab[onnx])")


def _runner(project: Project, verb: str):
    def run(args: argparse.Namespace) -> int:
        given = vars(args)
        common = {k: given[k] for k in _COMMON_DESTS[verb]}
        options = {k: v for k, v in given.items()
                   if k not in common and k not in _CLI_DESTS}
        if verb == "predict" and not project.predict_resumes and options.pop("resume", False):
            print(f"--resume: {project.name} predict writes one file for all items; "
                  "predicting every item", flush=True)
        if verb == "predict":
            _check_predict_devices(project, options)
        if verb == "export":
            from ensemblab.run_record import check_run

            check_run(args.run, project.name, None, "export")  # another project's run: 1 line
        if verb == "export" and options.pop("format", "weights") == "onnx":
            result = project.export_onnx(**common)
        else:
            result = getattr(project, verb)(**common, **options)
        if verb == "predict" and options.get("devices", 1) * options.get("num_nodes", 1) > 1:
            from ensemblab.engine.predict_ddp import is_global_zero

            if not is_global_zero():
                return 0  # rank 0 reports the merged outputs
        project.report(verb, result, args)
        return 0

    return run


def _check_predict_devices(project: Project, options: dict[str, Any]) -> None:
    """Keep ``--devices/--num-nodes/--strategy`` for a project that predicts on several
    devices; drop them for one that does not, which refuses more than one process."""
    if project.predict_devices:
        return
    devices, nodes = options.pop("devices", 1), options.pop("num_nodes", 1)
    options.pop("strategy", None)
    if devices > 1 or nodes > 1:
        names = ", ".join(predict_device_projects()) or "none"
        raise ConfigError(f"--devices {devices} --num-nodes {nodes}: {project.name} predict "
                          f"runs in one process (projects that predict on several devices: "
                          f"{names})")
