"""Optimizers by name: what a config's ``optimizer`` key chooses.

Each project allows the subset its recipe supports (checked when its config is loaded, see
:func:`ensemblab.config.check_choice`) and builds it here from the config's own values::

    opt = build_optimizer(cfg["train"]["optimizer"], model.parameters(),
                          lr=cfg["train"]["lr"], weight_decay=cfg["train"]["weight_decay"])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ensemblab.registry import Registry

OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register("adam")
def adam(params: Iterable[Any], lr: float, weight_decay: float, momentum: float | None = None,
         nesterov: bool = False) -> torch.optim.Optimizer:
    """Adam; ``weight_decay`` is an L2 term added to the gradient (``momentum`` and
    ``nesterov`` do not apply)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params: Iterable[Any], lr: float, weight_decay: float, momentum: float | None = None,
          nesterov: bool = False) -> torch.optim.Optimizer:
    """AdamW: Adam with decoupled weight decay (``momentum`` and ``nesterov`` do not apply)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[Any], lr: float, weight_decay: float, momentum: float | None = None,
        nesterov: bool = False) -> torch.optim.Optimizer:
    """SGD with (optionally Nesterov) ``momentum``, which the caller must give."""
    if momentum is None:
        raise ValueError("sgd needs a momentum")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           nesterov=nesterov)


def build_optimizer(name: str, params: Iterable[Any], lr: float, weight_decay: float,
                    momentum: float | None = None, nesterov: bool = False
                    ) -> torch.optim.Optimizer:
    """The optimizer registered as ``name`` over ``params``.

    Args:
        name: ``adam``, ``adamw`` or ``sgd``.
        params: parameters, or parameter groups (a group's own ``weight_decay`` wins).
        lr: learning rate.
        weight_decay: weight decay of groups that set none.
        momentum: SGD momentum (required for ``sgd``).
        nesterov: Nesterov momentum (``sgd``).

    Raises:
        ConfigError: an unknown name (one line with the closest and all names).
    """
    return OPTIMIZERS.get(name)(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                                nesterov=nesterov)
