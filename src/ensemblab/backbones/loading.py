"""Reading encoder weights and loading them, exactly, into timm models.

Every load is strict: a tensor the model does not take, or a model tensor the file does not
fill, is an error naming the file and the keys (never a silent partial load). The one allowed
difference is the input convolution of a model built for a different number of input channels,
which is adapted from the RGB weights the way timm's ``adapt_input_conv`` does (a 1-channel
conv gets the sum over the three colour channels, so a gray image gives the features of the
same image as gray RGB).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.models import adapt_input_conv
from torch import nn

from ensemblab.backbones.keymap import lukemelas_to_timm
from ensemblab.backbones.specs import EncoderSpec
from ensemblab.errors import ConfigError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a weights file with ``weights_only=True`` and unwrap common containers.

    Accepts a bare state dict or one under ``"state_dict"`` / ``"model"``; strips a DDP
    ``module.`` prefix.

    Raises:
        ConfigError: unreadable, truncated or not a state dict; names the file.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the same to a user
        raise ConfigError(f"{path}: not a readable PyTorch weights file "
                          f"({type(exc).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ConfigError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def classifier_state_dict(spec: EncoderSpec, weights: str | Path | None = None
                          ) -> dict[str, torch.Tensor]:
    """The full ImageNet classifier's state dict, in timm keys, for an RGB input.

    Args:
        spec: the encoder.
        weights: a local file; ``None`` uses the packaged file.

    Raises:
        ConfigError: no file, unreadable file, or tensors that do not match the architecture.
    """
    path = spec.resolve_weights(weights)
    model = timm.create_model(spec.timm_name, pretrained=False)
    state = read_state_dict(path)
    if spec.key_layout == "lukemelas" and any(k.startswith("_conv_stem") for k in state):
        return lukemelas_to_timm(state, model, source=str(path))
    load_exact(model, state, source=str(path))
    return model.state_dict()


def load_exact(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``; keys the model lacks are errors unless they are its head.

    ``model`` may be a ``features_only`` extractor: tensors of the classifier head
    (anything not in the model and not a backbone tensor) are then skipped. Input convolutions
    whose channel count differs are adapted from the RGB weights.

    Raises:
        ConfigError: missing model tensors, unexpected non-head tensors, or shape mismatches.
    """
    target = model.state_dict()
    out = {}
    unexpected = []
    for key, tensor in state.items():
        if key not in target:
            unexpected.append(key)
            continue
        want = target[key].shape
        if tensor.shape != want and tensor.dim() == 4 and tensor.shape[1] == 3 \
                and tensor.shape[0] == want[0] and tensor.shape[2:] == want[2:]:
            tensor = adapt_input_conv(int(want[1]), tensor)
        if tensor.shape != want:
            raise ConfigError(f"{source}: {key} has shape {tuple(tensor.shape)}, the model "
                              f"expects {tuple(want)}")
        out[key] = tensor
    missing = [k for k in target if k not in out]
    head = _head_keys(state, target)
    unexpected = [k for k in unexpected if k not in head]
    if missing or unexpected:
        raise ConfigError(f"{source}: does not match {type(model).__name__} "
                          f"({len(missing)} missing tensors {missing[:5]}, "
                          f"{len(unexpected)} unexpected {unexpected[:5]})")
    model.load_state_dict(out, strict=True)


def _head_keys(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> set[str]:
    """Keys of ``state`` that lie after the last tensor the feature extractor holds."""
    keys = list(state)
    last = max((i for i, k in enumerate(keys) if k in target), default=-1)
    return set(keys[last + 1:])
