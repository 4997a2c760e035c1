"""``ensemblab demo``: every project on built-in synthetic data, one markdown report.

Each installed project (:mod:`ensemblab.installed_projects`) may have a ``demo`` module beside
its ``cli`` with ``run_demo(out_dir, device)`` that generates its synthetic data under
``out_dir``, trains briefly, evaluates, predicts, and returns a markdown section (figures
referenced relative to ``out_dir``). This module runs them in the order of
:func:`~ensemblab.installed_projects.installed_projects` and writes ``OUT/report.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ensemblab.installed_projects import installed_projects
from ensemblab.io import atomic_write_text


def run_demo(out: str | Path, only: list[str] | None = None, device: str = "auto") -> Path:
    """Run the demos and write ``OUT/report.md``; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = ["# ensemblab demo report", "",
                "Every project trained briefly on built-in synthetic data (see each section).", ""]
    summary = ["| project | status | seconds |", "|---|---|---|"]
    projects = installed_projects()
    for name in only or projects:
        mod = projects[name].load_demo() if name in projects else None
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
