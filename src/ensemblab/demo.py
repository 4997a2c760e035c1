"""``ensemblab demo``: every project on built-in synthetic data, one markdown report.

Each installed project (:mod:`ensemblab.installed_projects`) may have a ``demo`` module beside
its ``cli`` with ``run_demo(out_dir, device)`` that generates its synthetic data under
``out_dir``, trains briefly, evaluates, predicts, and returns a markdown section (figures
referenced relative to ``out_dir``). This module runs them in the order of
:func:`~ensemblab.installed_projects.installed_projects` and writes ``OUT/report.md``.
"""

from __future__ import annotations

import sys
import threading
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
        with _Heartbeat(name):
            section = mod.run_demo(out / name, device=device)
        freed = _keep_weights_only(out / name)
        seconds = time.perf_counter() - start
        summary.append(f"| {name} | done | {seconds:.0f} |")
        sections += [f"## {name}", "", section.strip(), ""]
        print(f"== {name} done in {seconds:.0f} s (training state removed from checkpoints: "
              f"{freed / 1e6:.0f} MB) ==", flush=True)
    report = out / "report.md"
    atomic_write_text(report, "\n".join(sections[:4] + summary + [""] + sections[4:]) + "\n")
    print(f"report: {report}")
    return report


def _keep_weights_only(folder: Path) -> int:
    """Weights-only checkpoints for every finished run under ``folder``; returns bytes freed.

    The demo keeps what a user looks at and can predict with, not optimizer state.
    """
    from ensemblab.engine.checkpoints import keep_weights_only

    return sum(keep_weights_only(ckpt_dir.parent) for ckpt_dir in folder.rglob("checkpoints")
               if ckpt_dir.is_dir())


class _Heartbeat:
    """At least one console line every ``every`` seconds while a project's demo runs.

    Wraps ``sys.stdout`` to note when anything was last printed; a daemon thread prints
    ``<name>: still running (N s)`` after ``every`` seconds of silence.
    """

    def __init__(self, name: str, every: float = 30.0) -> None:
        self.name, self.every = name, every
        self.stream = sys.stdout
        self.start = self.last = time.monotonic()
        self.done = threading.Event()

    def write(self, text: str) -> int:
        self.last = time.monotonic()
        return self.stream.write(text)

    def __getattr__(self, attr: str):  # flush, isatty, fileno ... of the real stream
        return getattr(self.stream, attr)

    def _beat(self) -> None:
        while not self.done.wait(1.0):
            if time.monotonic() - self.last >= self.every:
                self.write(f"  {self.name}: still running "
                           f"({time.monotonic() - self.start:.0f} s)\n")
                self.stream.flush()

    def __enter__(self) -> _Heartbeat:
        sys.stdout = self
        threading.Thread(target=self._beat, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        sys.stdout = self.stream
