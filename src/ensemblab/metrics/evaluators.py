"""Stateful evaluators: accumulate over a dataset, reduce across DDP ranks, then score.

The pattern follows detectron2's ``DatasetEvaluator``: ``reset()`` before a pass, ``update(...)``
per batch or image, ``compute()`` once at the end. ``compute()`` is collective when
``torch.distributed`` is initialised with more than one rank: every rank must call it, and every
rank gets the same result. Outside DDP the helpers below are plain no-ops, so the same evaluator
works in a notebook, a single-GPU run and a multi-node job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


def dist_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _reduce_device():
    """The device a collective must run on: the current GPU for NCCL, else the CPU."""
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(array: np.ndarray) -> np.ndarray:
    """Element-wise sum of ``array`` over all ranks (a copy of it on a single process).

    Args:
        array: numeric array of the same shape and dtype on every rank.

    Returns:
        The summed array, same shape and dtype, identical on every rank.
    """
    array = np.asarray(array)
    _, world = dist_world()
    if world == 1:
        return array.copy()
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(_reduce_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy().astype(array.dtype, copy=False)


def all_gather_objects(obj: Any) -> list[Any]:
    """Gather one picklable object from every rank, in rank order (``[obj]`` on one process)."""
    _, world = dist_world()
    if world == 1:
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, obj)
    return gathered


class Evaluator(ABC):
    """Base class of the stateful evaluators (``reset`` / ``update`` / ``compute``)."""

    def __init__(self) -> None:
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Forget everything accumulated so far."""

    @abstractmethod
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Accumulate one batch or image."""

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """Reduce across ranks (collective under DDP) and return the scores."""
