"""Run folders: device choice, seeding, the run record and resolved config, checkpoints.

The run record (``RUN/run.json``: project and kind) and :func:`check_run`, the check every verb
that takes a run folder makes, live in :mod:`ensemblab.run_record` (no torch import) and are
re-exported here.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ensemblab.config import CONFIG_NAME, load_run_config, save_config
from ensemblab.errors import ConfigError, EnsemblabError
from ensemblab.run_record import (
    RUN_RECORD,
    RunRecord,
    check_run,
    read_run_record,
    write_run_record,
)

__all__ = [
    "RUN_RECORD", "RunRecord", "best_checkpoint", "check_run", "lightning_accelerator",
    "open_run", "prepare_run_dir", "read_run_record", "seed_everything", "select_device",
    "write_run_record",
]


def select_device(device: str = "auto") -> torch.device:
    """Resolve ``auto | cpu | cuda | cuda:N | mps`` to a :class:`torch.device`.

    ``auto`` picks CUDA when present, else CPU. Asking for CUDA on a machine without it is an
    error rather than a silent fallback.
    """
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EnsemblabError(f"device {device!r} requested but CUDA is not available")
    return dev


def lightning_accelerator(device: str = "auto") -> tuple[str, Any]:
    """Map our device string to Lightning's ``(accelerator, devices)``."""
    dev = select_device(device)
    if dev.type == "cuda":
        return "gpu", [dev.index] if dev.index is not None else "auto"
    return dev.type, 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_run_dir(out: str | Path, cfg: dict[str, Any], resume: bool = False,
                    project: str | None = None, kind: str = "model") -> Path:
    """Create (or reopen with ``resume``) a run folder; save its record and resolved config.

    Refuses to overwrite a finished or started run unless ``resume`` is set, so a typo does
    not destroy a checkpoint.

    Args:
        out: the run folder.
        cfg: the resolved config, saved as ``config.yaml``.
        resume: reopen an existing run; with ``project`` it must be a run of that project and
            ``kind`` (:func:`check_run`), and a run without a record gets one.
        project: the project training the run, recorded in ``run.json``
            (:func:`write_run_record`); None writes no record.
        kind: the kind of run, e.g. ``model`` or ``learner``.

    Returns:
        The run folder.
    """
    run_dir = Path(out)
    if resume:
        if not (run_dir / CONFIG_NAME).is_file():
            raise ConfigError(f"{run_dir}: --resume given but it is not a run folder")
        if project is not None:
            check_run(run_dir, project, (kind,), "train --resume")
            if not (run_dir / RUN_RECORD).is_file():
                write_run_record(run_dir, project, kind)
        return run_dir
    if (run_dir / CONFIG_NAME).exists():
        raise ConfigError(f"{run_dir}: run folder exists; use --resume or a new --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    if project is not None:
        write_run_record(run_dir, project, kind)
    save_config(cfg, run_dir)
    return run_dir


def open_run(run_dir: str | Path, base: str | Path | None = None
             ) -> tuple[Path, dict[str, Any]]:
    """Return ``(run_dir, resolved config)`` of an existing run folder; with ``base`` (the
    project's root config) keys the saved config lacks are filled from it
    (:func:`ensemblab.config.load_run_config`)."""
    run_dir = Path(run_dir)
    return run_dir, load_run_config(run_dir, base)


def best_checkpoint(run_dir: str | Path) -> Path:
    """The best checkpoint of a run (``checkpoints/best.ckpt``), else ``last.ckpt``."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    for name in ("best.ckpt", "last.ckpt"):
        if (ckpt_dir / name).is_file():
            return ckpt_dir / name
    raise EnsemblabError(f"{run_dir}: no checkpoint found in {ckpt_dir}")
