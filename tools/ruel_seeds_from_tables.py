"""Mean ± std over seeds from committed per-seed RUEL tables (no run folders needed).

``ensemblab mineral_ruel seeds`` summarises the ``ensemble`` output folders of several seeds;
this tool gives the same rows (F1 and mIoU of every learner and scheme, the learner ranked
first on the hold-out, the scheme chosen on the hold-out, and their paired gain) from the
``tables.md`` files those folders wrote, e.g. the copies in ``projects/mineral_ruel/results``:

    cd projects/mineral_ruel/results
    python ../../../tools/ruel_seeds_from_tables.py lumenstone_s{0,1,2}_tables.md

The std is the sample std (ddof 1), as in ``seeds``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ensemblab.projects.mineral_ruel.report import mean_std, seed_table, with_holdout_picks


def read_table5(path: Path) -> tuple[dict[str, dict[str, float]], str, str]:
    """``({row: {"f1", "miou"} as fractions}, top-ranked learner, chosen scheme)`` of one
    ``tables.md``, with the two hold-out rows of ``seeds`` added."""
    text = path.read_text()
    rank = re.search(r"Ranking: (\S+) \(", text)
    chosen = re.search(r"Scheme chosen on the hold-out: (\S+)\.", text)
    if rank is None or chosen is None or "### Table 5" not in text:
        raise ValueError(f"{path}: not a RUEL tables.md (no ranking line or Table 5)")
    rows = {}
    for line in text.split("### Table 5")[1].split("###")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"[\d.]+", cells[1]):
            rows[cells[0]] = {"f1": float(cells[1]) / 100, "miou": float(cells[3]) / 100}
    return with_holdout_picks(rows, rank.group(1), chosen.group(1)), rank.group(1), chosen.group(1)


def summary(paths: list[Path]) -> str:
    seeds = [read_table5(p) for p in paths]
    table, gain = seed_table([rows for rows, *_ in seeds], ("f1", "miou"))
    lines = ["Top-ranked learner / chosen scheme per seed: " + "; ".join(
        f"{p.name}: {top} / {scheme}" for p, (_, top, scheme) in zip(paths, seeds)) + ".", "",
        "| model | F1 (%) | mIoU (%) |", "|---|---|---|"]
    for name, metrics in table.items():
        lines.append(f"| {name} | {mean_std(metrics['f1'])} | {mean_std(metrics['miou'])} |")
    lines += ["", f"Chosen scheme minus top-ranked learner, mIoU: {mean_std(gain, sign=True)} "
              f"points (per seed: {', '.join(f'{100 * g:+.2f}' for g in gain)})."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", type=Path, help="tables.md of each seed")
    args = parser.parse_args(argv)
    if len(args.tables) < 2:
        parser.error("give the tables of at least two seeds")
    try:
        print(summary(args.tables))
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
