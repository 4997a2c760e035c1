"""tools/ruel_seeds_from_tables.py gives the rows of `seeds` from the tables.md files alone."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from ensemblab.projects.mineral_ruel.report import seed_summary, write_results

TOOL = Path(__file__).parents[2] / "tools" / "ruel_seeds_from_tables.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("ruel_seeds_from_tables", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tables_give_the_seed_summary(tmp_path, capsys):
    rng = np.random.default_rng(0)
    classes = ["a", "b"]
    names = ["l1", "l2", "l3", "RUEL-3-PV", "RUEL-3-WV"]
    folders = []
    for seed, (top, chosen) in enumerate([("l2", "RUEL-3-PV"), ("l1", "RUEL-3-WV"),
                                          ("l3", "RUEL-3-PV")]):
        rows = {}
        for n in names:
            miou, f1 = rng.uniform(0.3, 0.7, 2)
            rows[n] = {"f1": f1, "rank_iou": miou, "miou": miou, "tpi_s": 1.0, "vote_s": 0.1,
                       "iou": [miou, miou], "f1_per_class": [f1, f1], "n_images": 4}
        folder = tmp_path / f"s{seed}"
        ranking = ", ".join(f"{n} (50.00)" for n in [top] + [m for m in names[:3] if m != top])
        header = (f"## RUEL on data (ranked by miou on 2 hold-out training images; test = val "
                  f"split, 4 images)\n\nRanking: {ranking}. Scheme chosen on the hold-out: "
                  f"{chosen}.")
        write_results(folder, rows, classes, "mIoU", header)
        (folder / "ensemble.json").write_text(json.dumps(
            {"members": [f"runs/{top}"] + [f"runs/{m}" for m in names[:3] if m != top],
             "chosen_scheme": chosen}))
        folders.append(folder)
    expected = seed_summary(folders, tmp_path / "summary")
    tool = _load_tool()
    assert tool.main([str(f / "tables.md") for f in folders]) == 0
    out = capsys.readouterr().out
    for name, metrics in expected["rows"].items():
        values = 100 * np.array(metrics["miou"])
        line = next(x for x in out.splitlines() if x.startswith(f"| {name} |"))
        # tables.md rounds to 0.01, so the mean ± std agree to about that
        mean, std = (float(v) for v in line.split("|")[3].split("±"))
        assert abs(mean - values.mean()) < 0.011 and abs(std - values.std(ddof=1)) < 0.02
    gain = 100 * np.array(expected["gain_miou"])
    assert f"{gain.mean():+.2f}"[:-1] in out.split("mIoU: ")[1]
    assert tool.main([str(folders[0] / "tables.md"), str(tmp_path / "missing.md")]) == 1
