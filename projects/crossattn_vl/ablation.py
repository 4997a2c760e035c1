"""``ablate``: train and evaluate every variant on the same data and split, then tabulate.

The paper's ablation (its Table 4) compares the full model with no cross-attention (pooled
features concatenated), no CBAM, visual only and text only. Each variant is a run folder
``OUT/<variant>``; a variant whose ``metrics.json`` exists is not retrained, so an interrupted
ablation continues where it stopped. Frozen-backbone features are cached once in
``OUT/feature_cache.pt`` and shared by all variants.
"""

from __future__ import annotations

import json
from pathlib import Path

from ensemblab.config import merge
from ensemblab.io import atomic_write_text, write_csv
from ensemblab.projects.crossattn_vl.network import VARIANTS
from ensemblab.projects.crossattn_vl.runner import evaluate_run, train_run

COLUMNS = (("captioning", "Bleu_1"), ("captioning", "Bleu_4"), ("captioning", "METEOR"),
           ("captioning", "ROUGE_L"), ("captioning", "CIDEr"), ("retrieval", "i2t_top1"),
           ("retrieval", "i2t_top5"), ("retrieval", "t2i_top1"), ("retrieval", "t2i_top5"),
           ("vqa", "vqa_accuracy"))


def _cell(metrics: dict, group: str, name: str) -> str:
    """A metric x 100 with one decimal (CIDEr too, as papers print it), or n/a."""
    value = metrics.get(group, {}).get(name)
    return "n/a" if value is None else f"{100 * value:.1f}"


def run_ablation(cfg: dict, data_dir, out, variants=VARIANTS, device: str = "auto",
                 progress_bar: bool = False) -> Path:
    """Train + evaluate each variant; writes ``OUT/ablation.csv`` and ``OUT/ablation.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant in variants:
        run = out / variant
        if (run / "metrics.json").is_file():
            results[variant] = json.loads((run / "metrics.json").read_text())
            continue
        vcfg = merge(cfg, {"model": {"variant": variant}})
        resume = (run / "config.yaml").is_file()
        train_run(vcfg, data_dir, run, device, resume=resume, progress_bar=progress_bar,
                  cache_path=out / "feature_cache.pt")
        results[variant] = evaluate_run(run, data_dir, device)
    header = ["variant"] + [name for _, name in COLUMNS]
    rows = [[v] + [_cell(m, g, n) for g, n in COLUMNS] for v, m in results.items()]
    write_csv(out / "ablation.csv", header, rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")
    return out / "ablation.md"
