"""Checkpoint reading that fails with one line naming the file, never a traceback.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors, containers and plain
values only, no pickled code. A truncated file, a file that is not a torch checkpoint, or a
checkpoint of another project or member kind (its weights do not fit the model) is a
:class:`~ensemblab.errors.DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ensemblab.engine.runs import best_checkpoint
from ensemblab.errors import DataError
from ensemblab.io import atomic_path


def load_checkpoint(path: str | Path, required: tuple[str, ...] = ("state_dict",)
                    ) -> dict[str, Any]:
    """Read a checkpoint file with ``weights_only=True``.

    Args:
        path: ``.ckpt`` / ``.pt`` / ``.pth`` file.
        required: top-level keys the checkpoint must hold (Lightning's ``state_dict`` by
            default; ``()`` accepts a bare state dict).

    Returns:
        The loaded mapping, on the CPU.

    Raises:
        DataError: missing, truncated or foreign file, or a required key absent.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (zip, unpickling, EOF) for a bad file
        lines = str(exc).strip().splitlines()
        reason = lines[0].split(". ")[0][:100] if lines else type(exc).__name__
        raise DataError(path, f"not a readable torch checkpoint, truncated or another format "
                              f"({reason})") from None
    if not isinstance(ckpt, Mapping):
        raise DataError(path, f"checkpoint holds a {type(ckpt).__name__}, not a mapping")
    missing = [k for k in required if k not in ckpt]
    if missing:
        raise DataError(path, f"checkpoint has no {', '.join(missing)} (keys: "
                              f"{', '.join(sorted(map(str, ckpt))[:6])})")
    return dict(ckpt)


def load_weights(module: torch.nn.Module, state_dict: Mapping[str, Any], path: str | Path
                 ) -> None:
    """``module.load_state_dict(state_dict)`` (strict); a mismatch is one line naming ``path``.

    Args:
        module: the model built from the run's config.
        state_dict: weights read from ``path``.
        path: the checkpoint file, for the message.

    Raises:
        DataError: missing or unexpected keys or shape mismatches, i.e. a checkpoint of
            another project, member kind or model size.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [k for k in own if k in state_dict and hasattr(state_dict[k], "shape")
                  and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        example = (missing or unexpected or mismatched)[0]
        raise DataError(path, f"checkpoint does not fit this model ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected, {len(mismatched)} mis-shaped "
                              f"weights, e.g. {example!r}): from another project or model?")
    module.load_state_dict(state_dict)


def run_state_dict(run_dir: str | Path, prefix: str = "") -> tuple[Path, dict[str, Any]]:
    """``(checkpoint file, state dict)`` of a run's best checkpoint (else its last).

    ``prefix`` is removed from every key (``"model."``: a Lightning module's weights as those
    of its bare network).
    """
    path = best_checkpoint(run_dir)
    state = load_checkpoint(path)["state_dict"]
    if prefix:
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    return path, state


def load_run_weights(module: torch.nn.Module, run_dir: str | Path, prefix: str = "") -> Path:
    """Load a run's best checkpoint (else its last) into ``module``, strictly.

    Args:
        module: the model built from the run's config.
        run_dir: the run folder (``RUN/checkpoints/{best,last}.ckpt``).
        prefix: removed from every key first (see :func:`run_state_dict`).

    Returns:
        The checkpoint file read.

    Raises:
        DataError: as :func:`load_checkpoint` and :func:`load_weights`.
    """
    path, state = run_state_dict(run_dir, prefix)
    load_weights(module, state, path)
    return path


# What a Lightning checkpoint holds only to continue training; a finished run predicts without.
TRAINING_STATE_KEYS = ("optimizer_states", "lr_schedulers", "callbacks", "loops")


def keep_weights_only(run_dir: str | Path) -> int:
    """Shrink a finished run to one weights-only checkpoint; returns the bytes freed.

    The best checkpoint (else the last) is rewritten as ``checkpoints/best.ckpt`` without the
    optimizer, scheduler, loop and callback state, and ``last.ckpt`` is removed. Everything
    ``evaluate`` / ``predict`` / ``export`` read stays (weights, hyper-parameters, epoch); only
    ``--resume`` is no longer possible.
    """
    ckpt_dir = Path(run_dir) / "checkpoints"
    files = [p for p in (ckpt_dir / "best.ckpt", ckpt_dir / "last.ckpt") if p.is_file()]
    if not files:
        return 0
    before = sum(p.stat().st_size for p in files)
    ckpt = load_checkpoint(files[0])
    slim = {k: v for k, v in ckpt.items() if k not in TRAINING_STATE_KEYS}
    with atomic_path(ckpt_dir / "best.ckpt") as tmp:
        torch.save(slim, tmp)
    (ckpt_dir / "last.ckpt").unlink(missing_ok=True)
    return before - (ckpt_dir / "best.ckpt").stat().st_size
