"""Independent ``ensemblab`` commands as parallel processes with one thread budget each.

Two training jobs on two cores run fastest as two single-thread processes: threads of one
process spin-wait on each other when another job holds a core (a Mask R-CNN step: 12.5 s with
2 threads beside another job, 1.9 s with 1). :func:`run_parallel` starts up to ``jobs`` commands
at a time, each with ``--threads`` set to its share of the cores, writes each command's output to
its log file, and prints one line when a job starts or ends and a heartbeat with every running
job's progress at least every ``heartbeat_s`` seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ensemblab.errors import EnsemblabError
from ensemblab.threads import thread_budget


@dataclass
class Job:
    """One ``ensemblab`` command to run in its own process.

    Attributes:
        name: shown in the progress lines, e.g. a member's name.
        argv: the command's arguments after ``ensemblab`` (``--threads`` is appended).
        log: file that receives the command's stdout and stderr.
        progress: returns a short status for the heartbeat (e.g. ``"epoch 3/10"``), or None.
    """

    name: str
    argv: list[str]
    log: Path
    progress: Callable[[], str | None] = field(default=lambda: None)


def default_jobs(tasks: int) -> int:
    """Jobs at a time for ``tasks`` independent tasks: one per thread of the budget."""
    return max(1, min(tasks, thread_budget()))


def threads_per_job(jobs: int) -> int:
    """Each job's share of this process's thread budget (at least 1)."""
    return max(1, thread_budget() // max(1, jobs))


def run_parallel(jobs: Sequence[Job], parallel: int, heartbeat_s: float = 30.0,
                 poll_s: float = 0.5) -> dict[str, float]:
    """Run ``jobs``, at most ``parallel`` at a time, each with ``threads_per_job(parallel)``.

    Args:
        jobs: the commands, started in this order.
        parallel: processes at a time (1 runs them one after another, still as processes).
        heartbeat_s: longest silence on the console while jobs run.
        poll_s: how often the processes are checked.

    Returns:
        ``{name: wall seconds}`` of every job.

    Raises:
        EnsemblabError: a job exited non-zero; the others are stopped, and the message names
            the job, its last log line and the log file.
    """
    threads = threads_per_job(parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    waiting = list(jobs)
    running: dict[str, tuple[Job, subprocess.Popen, float]] = {}
    seconds: dict[str, float] = {}
    last_line = time.monotonic()
    try:
        while waiting or running:
            while waiting and len(running) < max(1, parallel):
                job = waiting.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                with open(job.log, "w") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "ensemblab.cli", *job.argv,
                         "--threads", str(threads)],
                        stdout=log, stderr=subprocess.STDOUT, env=env)
                running[job.name] = (job, proc, time.monotonic())
                print(f"  started {job.name} ({threads} thread{'s' * (threads > 1)}; "
                      f"log {job.log})", flush=True)
                last_line = time.monotonic()
            for name, (job, proc, start) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[name]
                seconds[name] = time.monotonic() - start
                if code != 0:
                    raise EnsemblabError(f"{name} failed (exit {code}): {_last_line(job.log)} "
                                         f"(log: {job.log})")
                print(f"  finished {name} in {seconds[name]:.0f} s", flush=True)
                last_line = time.monotonic()
            if running and time.monotonic() - last_line >= heartbeat_s:
                now = time.monotonic()
                parts = []
                for name, (job, _, start) in running.items():
                    status = job.progress()  # reads the run's CSV log: once per heartbeat
                    parts.append(f"{name} {now - start:.0f} s" + (f", {status}" if status else ""))
                print("  running: " + "; ".join(parts), flush=True)
                last_line = now
            time.sleep(poll_s)
    finally:
        for _, proc, _ in running.values():
            proc.kill()
            proc.wait()
    return seconds


def _last_line(log: Path) -> str:
    """The last non-empty line of a log (progress-bar carriage returns split lines too)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    lines = [x.strip() for x in text.replace("\r", "\n").splitlines() if x.strip()]
    return lines[-1][:300] if lines else "no output"


def training_progress(run_dir: Path, epochs: int | None = None) -> Callable[[], str | None]:
    """A heartbeat status for a training run: the last epoch in ``RUN/logs/metrics.csv``."""

    def status() -> str | None:
        try:
            lines = (Path(run_dir) / "logs" / "metrics.csv").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 2 or not lines[-1].split(",")[0].isdigit():
            return None
        done = int(lines[-1].split(",")[0]) + 1
        return f"epoch {done}/{epochs}" if epochs else f"epoch {done}"

    return status
