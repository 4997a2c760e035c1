"""The ONNX export of a learner: its network and the tiling it predicts with.

The exported graph is the learner's network on ``[N, 3, t, t]`` RGB tiles in [0, 1] (height and
width dynamic); the settings file holds what :class:`~.inference.Learner` does around it:
rescale by ``data.scale``, reflect-pad and cut overlapping tiles, softmax, blend the tiles,
bilinear resize to the image size, argmax.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ensemblab.engine import check_run
from ensemblab.engine.onnx_export import OnnxSpec
from ensemblab.projects.mineral_ruel import LEARNER, PROJECT
from ensemblab.projects.mineral_ruel.inference import Learner


def onnx_spec(run: str | Path) -> OnnxSpec:
    """The best weights of a learner run and its pre/post-processing settings."""
    check_run(run, PROJECT, (LEARNER,), "export")
    learner = Learner(run, device="cpu", precision="fp32")
    settings = {
        "project": PROJECT,
        "classes": learner.classes,
        "input": {"color": "RGB", "normalisation": "uint8 / 255 -> [0, 1]",
                  "scale": learner.scale},
        "tiling": {"tile": learner.tile, "overlap": learner.overlap, "pad": "reflect",
                   "blend": "weights ramping over the overlap at tile borders"},
        "output": {"activation": "softmax", "resize": "bilinear to the image size",
                   "labels": "argmax over classes, uint8 class-index PNG"},
    }
    example = torch.rand(1, 3, learner.tile, learner.tile)
    return OnnxSpec(learner.module.net, example, settings, dynamic_hw=True)
