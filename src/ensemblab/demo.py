"""``ensemblab demo``: every project on built-in synthetic data, one markdown report.

Each project package provides ``ensemblab.projects.<name>.demo.run_demo(out_dir, device)``
that generates its synthetic data under ``out_dir``, trains briefly, evaluates, predicts, and
returns a markdown section (figures referenced relative to ``out_dir``). This module runs
them in order and writes ``OUT/report.md``.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from pathlib import Path

from ensemblab import PROJECTS
from ensemblab.io import atomic_write_text


def _demo_module(name: str):
    module = f"ensemblab.projects.{name}.demo"
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except ModuleNotFoundError:
        return None
    return importlib.import_module(module)


def run_demo(out: str | Path, only: list[str] | None = None, device: str = "auto") -> Path:
    """Run the demos and write ``OUT/report.md``; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = ["# ensemblab demo report", "",
                "Every project trained briefly on built-in synthetic data (see each section).", ""]
    summary = ["| project | status | seconds |", "|---|---|---|"]
    for name in only or PROJECTS:
        mod = _demo_module(name)
        if mod is None:
            summary.append(f"| {name} | not installed | - |")
            continue
        print(f"== {name} ==", flush=True)
        start = time.perf_counter()
        section = mod.run_demo(out / name, device=device)
        seconds = time.perf_counter() - start
        summary.append(f"| {name} | done | {seconds:.0f} |")
        sections += [f"## {name}", "", section.strip(), ""]
        print(f"== {name} done in {seconds:.0f} s ==", flush=True)
    report = out / "report.md"
    atomic_write_text(report, "\n".join(sections[:4] + summary + [""] + sections[4:]) + "\n")
    print(f"report: {report}")
    return report
