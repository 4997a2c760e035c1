"""The ONNX export of a fre_unet run: the SE-U-Net's eval graph and its whole-image settings.

Feature Random Enhancement, dropout and the supervision head act only in training, so the
exported graph is the eval network: ``[N, 1, H, W]`` gray in [0, 1] -> logits, ``H`` and ``W``
dynamic multiples of ``2 ** depth``. The settings file holds what ``predict`` does around it:
rescale by ``data.scale``, reflect-pad right and bottom to that multiple, argmax, crop, nearest
resize back to the image size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ensemblab.engine import check_run
from ensemblab.engine.onnx_export import OnnxSpec
from ensemblab.projects.fre_unet import MODEL, PROJECT


def onnx_spec(run: str | Path) -> OnnxSpec:
    """The best weights of a run and its pre/post-processing settings."""
    from ensemblab.projects.fre_unet.commands import load_trained

    check_run(run, PROJECT, (MODEL,), "export")
    model, cfg, classes = load_trained(run, "cpu")
    step = 2**model.depth
    settings = {
        "project": PROJECT,
        "classes": classes,
        "input": {"color": "gray", "scale": float(cfg["data"]["scale"]), "multiple_of": step,
                  "normalisation": "uint8 / 255 -> [0, 1] (other depths: x * 255 / max first)",
                  "pad": "reflect, right and bottom, to a multiple of multiple_of"},
        "tiling": None,
        "output": {"activation": "softmax", "labels": "argmax over classes, cropped to the "
                   "image, nearest resize to its size, uint8 class-index PNG"},
    }
    example = torch.rand(1, int(cfg["model"]["in_channels"]), 4 * step, 4 * step)
    return OnnxSpec(model, example, settings, dynamic_hw=True)
