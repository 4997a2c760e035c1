"""Feature magnitudes of the deep layer vs the skip connection over training (Figs. 2 and 9).

The paper's motivation: the encoder-end features of a U-Net stay small next to the features
carried by the skip connections, so the decoder relies on the skips and the deep layers are
barely used; FRE raises the deep features' magnitude. This callback measures, at every
validation epoch (eval mode, so FRE itself is off), the mean absolute activation

    m = mean_{n,c,h,w} |f[n, c, h, w]|

of the encoder-end stage output (``deep``) and of the shallowest encoder stage output, which
feeds the last skip connection (``skip``); it logs them as ``mag/deep`` and ``mag/skip`` and
writes ``RUN/feature_magnitude.csv`` (every epoch; a resumed run appends to it) and
``RUN/feature_magnitude.png``.
:func:`read_magnitudes` averages a folder of seed runs, so one plot shows Fig. 2 (baseline)
and Fig. 9 (with FRE) from the runs of the paired comparison.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from ensemblab.errors import DataError  # noqa: E402
from ensemblab.io import save_figure, write_csv  # noqa: E402


class FeatureMagnitudeTracker(Callback):
    """Logs the mean |activation| of ``model.deep_stage`` and ``model.skip_stage`` per epoch.

    Args:
        run_dir: where the CSV and the plot go.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        # A resumed run keeps the epochs recorded before it stopped.
        csv_path = self.run_dir / "feature_magnitude.csv"
        self.rows: list[tuple[int, float, float]] = (
            read_magnitudes(self.run_dir) if csv_path.is_file() else [])
        self._sums: dict[str, list[float]] = {}
        self._handles: list = []

    def _hook(self, key: str):
        def record(_module, _inputs, output):
            acc = self._sums.setdefault(key, [0.0, 0.0])
            acc[0] += float(output.detach().float().abs().mean()) * len(output)
            acc[1] += len(output)
        return record

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._sums = {}
        net = pl_module.model
        self._handles = [net.deep_stage.register_forward_hook(self._hook("deep")),
                         net.skip_stage.register_forward_hook(self._hook("skip"))]

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if trainer.sanity_checking or "deep" not in self._sums:
            return
        deep, skip = (self._sums[k][0] / max(self._sums[k][1], 1.0) for k in ("deep", "skip"))
        pl_module.log("mag/deep", deep)
        pl_module.log("mag/skip", skip)
        self.rows = [r for r in self.rows if r[0] != trainer.current_epoch]
        self.rows.append((trainer.current_epoch, deep, skip))
        if trainer.is_global_zero:
            write_csv(self.run_dir / "feature_magnitude.csv", ["epoch", "deep", "skip"],
                      sorted(self.rows))

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.rows:
            plot_feature_magnitudes({"this run": sorted(self.rows)},
                                    self.run_dir / "feature_magnitude.png")


def read_magnitudes(run: str | Path) -> list[tuple[int, float, float]]:
    """``[(epoch, deep, skip), ...]`` of a run, or the mean over a folder of seed runs.

    Raises:
        DataError: no ``feature_magnitude.csv`` in the run or its ``*/`` sub-folders.
    """
    run = Path(run)
    files = ([run / "feature_magnitude.csv"] if (run / "feature_magnitude.csv").is_file()
             else sorted(run.glob("*/feature_magnitude.csv")))
    if not files:
        raise DataError(run / "feature_magnitude.csv",
                        "not found (train with train.track_magnitudes=true)")
    per_run = []
    for path in files:
        with open(path) as fh:
            per_run.append({int(r["epoch"]): (float(r["deep"]), float(r["skip"]))
                            for r in csv.DictReader(fh)})
    epochs = sorted(set.intersection(*(set(r) for r in per_run)))
    return [(e, sum(r[e][0] for r in per_run) / len(per_run),
             sum(r[e][1] for r in per_run) / len(per_run)) for e in epochs]


def plot_feature_magnitudes(series: dict[str, list[tuple[int, float, float]]],
                            path: str | Path) -> Path:
    """Plot ``{label: [(epoch, deep, skip), ...]}`` (Figs. 2/9 style).

    Left: deep solid, skip dashed; right: the ratio deep / skip.
    """
    fig, (ax, ratio) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, rows) in enumerate(series.items()):
        epochs = [r[0] for r in rows]
        color = f"C{i}"
        ax.plot(epochs, [r[1] for r in rows], "-o", ms=3, color=color, label=f"{label}: deep")
        ax.plot(epochs, [r[2] for r in rows], "--", color=color, label=f"{label}: skip")
        ratio.plot(epochs, [r[1] / max(r[2], 1e-12) for r in rows], "-o", ms=3, color=color,
                   label=label)
    ax.set_ylabel("mean |activation|")
    ax.set_yscale("log")
    ax.set_title("encoder-end (deep) vs skip-connection features")
    ratio.axhline(1.0, color="gray", lw=0.8)
    ratio.set_ylabel("deep / skip")
    ratio.set_title("magnitude ratio")
    for a in (ax, ratio):
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    save_figure(fig, path)
    return Path(path)
