"""Paired-seed comparison: does variant B (FRE) beat variant A (the same U-Net) seed by seed?

Two variants trained from the same seeds share their initial weights and batch order, so the
per-seed difference ``d_s = b_s - a_s`` removes most of the seed-to-seed spread. For ``n``
pairs the table reports each variant's mean ± sample std (``ddof=1``), the mean difference

    d = (1/n) sum_s d_s,    s_d = sqrt(sum_s (d_s - d)^2 / (n - 1)),

its two-sided ``confidence`` interval ``d ± t_{(1+confidence)/2, n-1} s_d / sqrt(n)`` (Student's
t, the paired t-test) and the p-value of ``d = 0``. Files: ``compare.json`` and
``compare.md`` in the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ensemblab.config import load_run_config
from ensemblab.errors import EnsemblabError
from ensemblab.io import atomic_write_text, write_json


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95
                      ) -> dict[str, Any]:
    """Summary of paired scores ``a[i]``, ``b[i]`` (the same seed ``i``).

    Args:
        a: scores of variant A, one per seed.
        b: scores of variant B, same order.
        confidence: level of the t interval of the mean difference.

    Returns:
        ``n``, ``a_mean``, ``a_std``, ``b_mean``, ``b_std``, ``diff`` (``b - a`` per pair),
        ``diff_mean``, ``diff_std``, ``t_quantile``, ``ci_low``, ``ci_high``, ``p_value``,
        ``b_wins`` (pairs with ``b > a``), ``confidence``.

    Raises:
        EnsemblabError: fewer than two pairs or sequences of different lengths.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise EnsemblabError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    n = len(a_arr)
    if n < 2:
        raise EnsemblabError(f"a confidence interval needs at least 2 pairs, got {n}")
    diff = b_arr - a_arr
    mean, std = float(diff.mean()), float(diff.std(ddof=1))
    t_q = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1))
    half = t_q * std / np.sqrt(n)
    p_value = 1.0 if std == 0 and mean == 0 else (
        0.0 if std == 0 else float(2 * stats.t.sf(abs(mean) / (std / np.sqrt(n)), df=n - 1)))
    return {"n": n, "confidence": confidence,
            "a_mean": float(a_arr.mean()), "a_std": float(a_arr.std(ddof=1)),
            "b_mean": float(b_arr.mean()), "b_std": float(b_arr.std(ddof=1)),
            "diff": diff.tolist(), "diff_mean": mean, "diff_std": std, "t_quantile": t_q,
            "ci_low": mean - half, "ci_high": mean + half, "p_value": p_value,
            "b_wins": int((diff > 0).sum())}


def paired_scores(metrics_a: dict[int, dict], metrics_b: dict[int, dict], confidence: float = 0.95
                  ) -> dict[str, Any]:
    """Pair two variants' per-seed ``metrics.json`` by seed; mIoU and every class IoU.

    Args:
        metrics_a: ``{seed: metrics}`` of variant A (``miou`` and ``iou: {class: value}``).
        metrics_b: the same for variant B.
        confidence: interval level.

    Returns:
        ``seeds`` (paired), ``unpaired`` (seeds in one variant only), ``a_miou`` and ``b_miou``
        (per paired seed) and ``rows``: ``{"miou": paired_difference(...), "iou_<class>": ...}``.
    """
    seeds = sorted(set(metrics_a) & set(metrics_b))
    unpaired = sorted(set(metrics_a) ^ set(metrics_b))
    if len(seeds) < 2:
        raise EnsemblabError(f"only {len(seeds)} seeds in both variants ({seeds}); "
                             f"a paired comparison needs at least 2")
    rows = {"miou": paired_difference([metrics_a[s]["miou"] for s in seeds],
                                      [metrics_b[s]["miou"] for s in seeds], confidence)}
    for name in metrics_a[seeds[0]]["iou"]:
        rows[f"iou_{name}"] = paired_difference([metrics_a[s]["iou"][name] for s in seeds],
                                                [metrics_b[s]["iou"][name] for s in seeds],
                                                confidence)
    return {"seeds": seeds, "unpaired": unpaired,
            "a_miou": [metrics_a[s]["miou"] for s in seeds],
            "b_miou": [metrics_b[s]["miou"] for s in seeds], "rows": rows}


def comparison_markdown(result: dict[str, Any], name_a: str, name_b: str) -> str:
    """Markdown table (percent) of :func:`paired_scores` output, then the per-seed mIoU."""
    level = round(100 * result["rows"]["miou"]["confidence"])
    lines = [f"| metric | {name_a} (mean ± std) | {name_b} (mean ± std) | "
             f"{name_b} − {name_a} | {level}% CI (paired t) | p | {name_b} better | pairs |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in result["rows"].items():
        label = "mIoU" if key == "miou" else f"IoU {key[4:]}"
        lines.append(f"| {label} | {100 * r['a_mean']:.2f} ± {100 * r['a_std']:.2f} | "
                     f"{100 * r['b_mean']:.2f} ± {100 * r['b_std']:.2f} | "
                     f"{100 * r['diff_mean']:+.2f} | [{100 * r['ci_low']:+.2f}, "
                     f"{100 * r['ci_high']:+.2f}] | {r['p_value']:.3f} | "
                     f"{r['b_wins']}/{r['n']} | {r['n']} |")
    lines += ["", f"| seed | {name_a} mIoU | {name_b} mIoU | {name_b} − {name_a} |",
              "|---|---|---|---|"]
    for seed, a, b in zip(result["seeds"], result["a_miou"], result["b_miou"]):
        lines.append(f"| {seed} | {100 * a:.2f} | {100 * b:.2f} | {100 * (b - a):+.2f} |")
    if result["unpaired"]:
        lines += ["", f"Seeds left out (trained in one variant only): {result['unpaired']}."]
    return "\n".join(lines) + "\n"


def compare_runs(runs_a: str | Path, runs_b: str | Path, out: str | Path,
                 split: str = "auto", data: str | Path | None = None, device: str = "auto",
                 confidence: float = 0.95) -> dict[str, Any]:
    """Compare two folders of seed runs; evaluates runs without ``metrics.json`` of ``split``.

    Args:
        runs_a: folder of variant A's seed runs (``seed*/``), e.g. ``sstem_cpu/baseline``.
        runs_b: folder of variant B's seed runs, e.g. ``sstem_cpu/fre``.
        out: folder for ``compare.json`` and ``compare.md``.
        split: the split scored: ``auto`` (the runs' pinned ``test`` slices on their own data,
            every slice of another folder) or a named one.
        data: dataset folder (default: each run's ``data.root``).
        device: evaluation device.
        confidence: interval level.
    """
    from ensemblab.projects.fre_unet.commands import (
        BASE_CONFIG,
        evaluate,
        run_split,
        seed_runs,
    )

    per_variant, scored = [], []
    for folder in (runs_a, runs_b):
        by_seed = {}
        for run in seed_runs(folder, "compare"):
            path = run / "metrics.json"
            metrics = json.loads(path.read_text()) if path.is_file() else {}
            scored.append(run_split(split, data, load_run_config(run, BASE_CONFIG)))
            if metrics.get("split") != scored[-1] or "miou" not in metrics:
                metrics = evaluate(run, data, device=device, split=split)
            by_seed[int(metrics["seed"])] = metrics
        per_variant.append(by_seed)
    result = paired_scores(*per_variant, confidence=confidence)
    name_a, name_b = Path(runs_a).name, Path(runs_b).name
    result.update({"split": scored[0], "a": str(runs_a), "b": str(runs_b)})
    out = Path(out)
    write_json(out / "compare.json", result)
    atomic_write_text(out / "compare.md", comparison_markdown(result, name_a, name_b))
    return result
