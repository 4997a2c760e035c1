"""CPU threads for one process: ``--threads N`` on every verb that trains, predicts or scores.

Two jobs that share two cores must not each run two OpenMP threads: the threads spin-wait on
each other and a step costs several times over (a Mask R-CNN step beside another job: 12.5 s
with 2 threads, 1.9 s with 1). The precedence is the ``--threads`` flag, then
``$OMP_NUM_THREADS`` when the user set it, then a config's ``train.threads`` (a positive
number), then every core this process may use (``os.sched_getaffinity``). Light on purpose:
the parser imports it, torch only on use.
"""

from __future__ import annotations

import os

# Set by the CLI when ``--threads`` is given, so a config's ``train.threads`` does not override
# it and child processes (data loader workers, DDP ranks, ``ensemble --jobs``) inherit it.
FLAG_ENV = "ENSEMBLAB_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _threads_from_env() -> int | None:
    """``--threads`` (as the CLI recorded it), else ``$OMP_NUM_THREADS``; None when neither."""
    for name in (FLAG_ENV, "OMP_NUM_THREADS"):
        if os.environ.get(name, "").isdigit() and int(os.environ[name]) > 0:
            return int(os.environ[name])
    return None


def thread_budget() -> int:
    """Threads this process may use: ``--threads``, else ``$OMP_NUM_THREADS``, else its cores."""
    return _threads_from_env() or available_cores()


def set_threads(threads: int | None = None, configured: int | None = None) -> int:
    """Set torch's intra-op threads for this process; returns the number set.

    Args:
        threads: the ``--threads`` flag (None: not given; ``$ENSEMBLAB_THREADS`` when set).
        configured: a config's ``train.threads`` (None or 0: not set).

    Returns:
        The flag, else ``$OMP_NUM_THREADS``, else the configured value, else
        :func:`available_cores`.
    """
    import torch

    n = int(threads or _threads_from_env() or configured or available_cores())
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    return n


def loader_workers(configured: int) -> int:
    """Data loader worker processes: the configured number, at most one less than the threads.

    With ``--threads 1`` a loader runs in the main process: a worker would take a core from the
    job beside it.
    """
    import torch

    return max(0, min(int(configured), torch.get_num_threads() - 1))


def add_threads_arg(parser) -> None:
    """``--threads N``: CPU threads for this process (default: every core it may use)."""
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="CPU threads for torch (default: a config's train.threads, else every core this "
             "process may use); give 1 per job when two jobs share two cores")


def apply_threads_flag(threads: int | None) -> None:
    """Record ``--threads`` for this process and its children (called once by the CLI)."""
    if threads is None:
        return
    if threads < 1:
        from ensemblab.errors import EnsemblabError

        raise EnsemblabError(f"--threads must be at least 1, got {threads}")
    os.environ[FLAG_ENV] = str(threads)
    # OpenMP and MKL in child processes (loader workers, DDP ranks) read these at start.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
