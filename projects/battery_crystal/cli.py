"""``ensemblab battery_crystal train | evaluate | predict``: argument parsing only.

- ``train --config CFG --data DIR --out RUN``: fit the configured model (default: the DNN
  ensemble on ``honest`` features) on every row of the table.
- ``evaluate --run RUN --data DIR``: every configured model x protocol x feature set ->
  ``RUN/metrics.json``, ``RUN/results.md``, ``RUN/confusion.png``.
- ``predict --run RUN --input CSV --out DIR``: a table without the label column ->
  ``DIR/predictions.csv``.

The verbs' bodies are plain functions in :mod:`.commands`. The models are small: they run on the
CPU whatever ``--device`` says.
"""

from __future__ import annotations

from ensemblab.cli_common import ALL_ITEMS
from ensemblab.errors import EnsemblabError
from ensemblab.project import Project, register_project


class BatteryCrystal(Project):
    """Crystal-system classification of Li-ion silicates: the DNN and its baselines."""

    name = "battery_crystal"
    help = "crystal-system classification of Li-ion silicates (tabular)"
    verb_help = {"train": "fit the configured model on the whole table",
                 "evaluate": "all models x protocols x feature sets -> metrics.json",
                 "predict": "class + probabilities for a CSV without labels",
                 "export": "not needed: a run is already weights-only (model.json + model.npz)"}
    # evaluate cross-validates on the whole table: every split is all of it
    splits = (ALL_ITEMS,)
    held_out = ALL_ITEMS

    def train(self, config, data, out, overrides, device, resume):
        from ensemblab.projects.battery_crystal.commands import train

        return train(config, data, out, overrides, resume)

    def evaluate(self, run, data, split, device):
        from ensemblab.projects.battery_crystal.commands import evaluate

        return evaluate(run, data)

    def predict(self, run, input, out, device):
        from ensemblab.projects.battery_crystal.commands import predict

        return predict(run, input, out)

    def export(self, run, out):
        raise EnsemblabError(f"{run}: a battery_crystal run is already weights-only "
                             "(model.json + model.npz, no pickle); copy those two files")

    def report(self, verb, result, args):
        if verb == "predict":
            print(f"-> {result}")
        elif verb != "evaluate":  # evaluate prints its tables itself
            super().report(verb, result, args)


def register(subparsers) -> None:
    """Add ``battery_crystal`` and its verbs to the ``ensemblab`` parser."""
    register_project(subparsers, BatteryCrystal())
