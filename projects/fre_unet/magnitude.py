"""Feature magnitudes of the deep layer vs the skip connection over training (Figs. 2 and 9).

The paper's motivation: the encoder-end features of a U-Net stay small next to the features
carried by the skip connections, so the decoder relies on the skips and the deep layers are
barely used; FRE raises the deep features' magnitude. This callback measures, at every
validation epoch (eval mode, so FRE itself is off), the mean absolute activation

    m = mean_{n,c,h,w} |f[n, c, h, w]|

of the encoder-end stage output (``deep``) and of the shallowest encoder stage output, which
feeds the last skip connection (``skip``); it logs them as ``mag/deep`` and ``mag/skip`` and
writes ``RUN/feature_magnitude.csv`` and ``RUN/feature_magnitude.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from ensemblab.io import save_figure, write_csv  # noqa: E402


class FeatureMagnitudeTracker(Callback):
    """Logs the mean |activation| of ``model.deep_stage`` and ``model.skip_stage`` per epoch.

    Args:
        run_dir: where the CSV and the plot go.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.rows: list[tuple[int, float, float]] = []
        self._sums: dict[str, list[float]] = {}
        self._handles: list = []

    def _hook(self, key: str):
        def record(_module, _inputs, output):
            acc = self._sums.setdefault(key, [0.0, 0.0])
            acc[0] += float(output.detach().abs().mean()) * len(output)
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

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.rows:
            write_csv(self.run_dir / "feature_magnitude.csv", ["epoch", "deep", "skip"], self.rows)
            plot_feature_magnitudes({"this run": self.rows}, self.run_dir / "feature_magnitude.png")


def plot_feature_magnitudes(series: dict[str, list[tuple[int, float, float]]],
                            path: str | Path) -> Path:
    """Plot ``{label: [(epoch, deep, skip), ...]}``: deep solid, skip dashed (Figs. 2/9 style)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, rows) in enumerate(series.items()):
        epochs = [r[0] for r in rows]
        color = f"C{i}"
        ax.plot(epochs, [r[1] for r in rows], "-o", ms=3, color=color, label=f"{label}: deep")
        ax.plot(epochs, [r[2] for r in rows], "--", color=color, label=f"{label}: skip")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean |activation|")
    ax.set_yscale("log")
    ax.set_title("encoder-end (deep) vs skip-connection features")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return Path(path)
