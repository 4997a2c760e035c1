"""Plot the curves logged by Lightning's CSV logger (``RUN/logs/metrics.csv``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ensemblab.io import save_figure  # noqa: E402


def read_metrics(run_dir: str | Path) -> pd.DataFrame | None:
    """All logged rows of a run, earlier parts (kept on resume) first; None if nothing logged."""
    log_dir = Path(run_dir) / "logs"
    parts = sorted(log_dir.glob("metrics.part*.csv"),
                   key=lambda p: int(p.stem[len("metrics.part"):]))
    parts += [p for p in [log_dir / "metrics.csv"] if p.is_file()]
    frames = [pd.read_csv(p) for p in parts if p.stat().st_size > 0]
    return pd.concat(frames, ignore_index=True) if frames else None


def plot_curves(run_dir: str | Path, out_name: str = "curves.png") -> Path | None:
    """Draw every logged metric against epoch, losses and scores in separate panels.

    Returns:
        Path of the PNG, or None when nothing was logged.
    """
    run_dir = Path(run_dir)
    df = read_metrics(run_dir)
    if df is None:
        return None
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
