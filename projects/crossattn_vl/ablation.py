"""``ablate``: train and evaluate every variant over several seeds, then tabulate mean ± std.

The paper's ablation (its Table 4) compares the full model with no cross-attention (pooled
features concatenated), no CBAM, visual only and text only. Each (variant, seed) is a run folder
``OUT/<variant>/seed<k>`` on the same data split (``data.split_seed`` is not varied: seeds
change the initialisation and the data order); a run whose ``metrics.json`` exists is not
retrained, so an interrupted ablation continues where it stopped. Frozen encoder outputs are
cached once in ``OUT/feature_cache`` (unless ``cache_dir`` is set) and shared by all runs.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from ensemblab.config import merge
from ensemblab.errors import ConfigError
from ensemblab.io import atomic_write_text, write_csv
from ensemblab.projects.crossattn_vl.commands import evaluate, train_run
from ensemblab.projects.crossattn_vl.network import VARIANTS

COLUMNS = ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "i2t_top1", "i2t_top5",
           "i2t_top10", "t2i_top1", "t2i_top5", "t2i_top10", "vqa_accuracy")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(runs: list[dict], name: str) -> str:
    """``mean ± std`` x 100 with one decimal (CIDEr too, as papers print it), or n/a."""
    values = [m[name] for m in runs if m.get(name) is not None]
    if not values:
        return "n/a"
    mean, std = mean_std([100 * v for v in values])
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {std:.1f}"


def write_table(results: dict[str, list[dict]], out: Path) -> Path:
    """``OUT/ablation.md`` (mean ± std over seeds) and ``OUT/ablation.csv`` (per run)."""
    columns = [c for c in COLUMNS if any(c in m for runs in results.values() for m in runs)]
    header = ["variant", "seeds"] + columns
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([v, str(len(runs))] + [_cell(runs, c) for c in columns]) + " |"
              for v, runs in results.items()]
    atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")
    rows = [[v, m.get("seed", ""), *[m.get(c, "") for c in columns]]
            for v, runs in results.items() for m in runs]
    write_csv(out / "ablation.csv", ["variant", "seed", *columns], rows)
    return out / "ablation.md"


def run_ablation(cfg: dict, data_dir, out, variants: Sequence[str] = VARIANTS,
                 seeds: Sequence[int] = (0,), device: str = "auto",
                 progress_bar: bool = False) -> Path:
    """Train + evaluate each (variant, seed); returns ``OUT/ablation.md``."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.get("cache_dir"):
        cfg = merge(cfg, {"cache_dir": str(out.resolve() / "feature_cache")})
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for seed in seeds:
        for variant in variants:
            run = out / variant / f"seed{seed}"
            if (run / "metrics.json").is_file():
                metrics = json.loads((run / "metrics.json").read_text())
            else:
                vcfg = merge(cfg, {"seed": seed, "model": {"variant": variant}})
                train_run(vcfg, data_dir, run, device, resume=(run / "config.yaml").is_file(),
                          progress_bar=progress_bar)
                metrics = evaluate(run, data_dir, device=device)
            results[variant].append({**metrics, "seed": seed})
            write_table(results, out)
    return out / "ablation.md"
