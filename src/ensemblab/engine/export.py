"""Weights-only export of a run for deployment.

A Lightning checkpoint holds the optimizer state (Adam keeps two moments per weight, so a
ResNet-50 checkpoint is about three times its weights), loop and callback state. The exported
file keeps only what inference needs: the model ``state_dict`` of ``best.ckpt`` (else
``last.ckpt``) and the run's resolved config as YAML text, so the model can be rebuilt from the
file alone. It is read back with :func:`ensemblab.engine.load_checkpoint` (``weights_only=True``)
and applied with :func:`ensemblab.engine.load_weights`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ensemblab.config import CONFIG_NAME
from ensemblab.engine.checkpoints import load_checkpoint
from ensemblab.engine.runs import best_checkpoint
from ensemblab.errors import ConfigError, DataError
from ensemblab.io import atomic_path

EXPORT_NAME = "weights.pt"
EXPORT_FORMAT = "ensemblab-weights"


def export_weights(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, Path]:
    """Write the weights-only file of a run, atomically.

    Args:
        run_dir: a run folder (``config.yaml`` and ``checkpoints/{best,last}.ckpt``).
        out: the file to write; ``RUN/weights.pt`` when None.

    Returns:
        ``(checkpoint read, file written)``. The file holds ``format`` (``"ensemblab-weights"``),
        ``state_dict``, ``config`` (the resolved config, YAML text), ``checkpoint`` (the source
        file's name), ``epoch`` and ``global_step``.

    Raises:
        DataError: the run folder does not exist or its checkpoint is unreadable.
        EnsemblabError: the run folder has no checkpoint.
        ConfigError: the run folder has no resolved config.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(run_dir, "run folder not found")
    source = best_checkpoint(run_dir)
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no {CONFIG_NAME})")
    ckpt = load_checkpoint(source)
    exported = {
        "format": EXPORT_FORMAT,
        "state_dict": ckpt["state_dict"],
        "config": config_path.read_text(),
        "checkpoint": source.name,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
    }
    target = Path(out) if out is not None else run_dir / EXPORT_NAME
    with atomic_path(target) as tmp:
        torch.save(exported, tmp)
    return source, target


def megabytes(path: str | Path) -> str:
    """File size as ``"12.3 MB"``."""
    return f"{Path(path).stat().st_size / 1e6:.1f} MB"
