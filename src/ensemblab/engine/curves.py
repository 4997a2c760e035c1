"""Plot the curves logged by Lightning's CSV logger (``RUN/logs/metrics.csv``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ensemblab.io import save_figure  # noqa: E402


def plot_curves(run_dir: str | Path, out_name: str = "curves.png") -> Path | None:
    """Draw every logged metric against epoch, losses and scores in separate panels.

    Returns:
        Path of the PNG, or None when nothing was logged.
    """
    run_dir = Path(run_dir)
    csv_path = run_dir / "logs" / "metrics.csv"
    if not csv_path.is_file():
        return None
    df = pd.read_csv(csv_path)
    if "epoch" not in df.columns or df.empty:
        return None
    cols = [c for c in df.columns if c not in ("epoch", "step") and df[c].notna().any()]
    if not cols:
        return None
    per_epoch = df.groupby("epoch")[cols].mean()
    losses = [c for c in cols if "loss" in c]
    scores = [c for c in cols if c not in losses and not c.startswith("lr")]
    panels = [p for p in (losses, scores) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, names, title in zip(axes[0], panels, ("loss", "metrics")):
        for name in names:
            series = per_epoch[name].dropna()
            ax.plot(series.index, series.values, marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    out = run_dir / out_name
    save_figure(fig, out)
    return out
