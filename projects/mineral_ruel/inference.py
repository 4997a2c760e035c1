"""Whole-image inference of one trained learner at the original resolution.

The image is rescaled by the learner's ``data.scale`` (its training resolution) and cut into
overlapping tiles; per-tile class probabilities are blended back with a window that fades at
tile borders (:func:`ensemblab.data.tiling.stitch_tiles`), so no seams show; the stitched
probabilities are then resized bilinearly to the original size (3396x2547 for LumenStone) in
strips of rows, and the argmax there is the label map. Peak memory stays at one strip of
full-resolution probabilities, not ``C x H x W``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ensemblab.data.tiling import extract_tiles, stitch_tiles, tile_boxes
from ensemblab.engine import load_run_weights, open_run, select_device
from ensemblab.errors import EnsemblabError
from ensemblab.projects.mineral_ruel.classes import resolve_classes
from ensemblab.projects.mineral_ruel.data import pad_to, rescale, to_tensor
from ensemblab.projects.mineral_ruel.module import MineralSegmenter

BASE_CONFIG = Path(__file__).resolve().parent / "configs" / "base.yaml"
"""The root config: every default, and the keys an older run's saved config lacks."""


def module_from_config(cfg: dict[str, Any]) -> MineralSegmenter:
    """Build an untrained learner from a resolved config (see ``configs/base.yaml``)."""
    train = cfg["train"]
    classes = resolve_classes(cfg["data"]["classes"], cfg["data"].get("root"))
    return MineralSegmenter(
        num_classes=len(classes), class_names=classes,
        model=dict(cfg["model"]), loss=dict(cfg["loss"]), lr=train["lr"],
        min_lr=train["min_lr"], warmup_epochs=train["warmup_epochs"],
        frozen_epochs=train["frozen_epochs"], epochs=train["epochs"],
        optimizer=train["optimizer"], weight_decay=train["weight_decay"])


PRECISIONS = ("fp32", "bf16")


def forward_logits(net: torch.nn.Module, batch: torch.Tensor, precision: str = "fp32"
                   ) -> torch.Tensor:
    """Logits [B, C, H, W] of ``net`` on ``batch`` [B, 3, H, W] in float32.

    ``bf16`` runs the network under bfloat16 autocast on channels-last tensors: on CPUs with
    AVX-512 BF16 (and on GPUs) this is about 2x faster than float32 for the ResNet-50 Res-UNet,
    with argmax maps that agree on practically every pixel (``tools/bench_mineral.py`` prints
    the agreement). Call ``net.to(memory_format=torch.channels_last)`` once beforehand.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return net(batch)
    batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast(batch.device.type, dtype=torch.bfloat16):
        return net(batch).float()


def _bilinear_taps(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor,
                                                          torch.Tensor]:
    """Source indices ``i0, i1`` and weights ``t`` of a bilinear resize along one axis.

    Same sampling as ``F.interpolate(mode="bilinear", align_corners=False)``: output pixel
    ``o`` reads ``(o + 0.5) * size_in / size_out - 0.5``, clamped at 0.
    """
    src = ((torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out) - 0.5)
    src = src.clamp(min=0)
    i0 = src.floor().long().clamp(max=size_in - 1)
    i1 = (i0 + 1).clamp(max=size_in - 1)
    return i0, i1, (src - i0).float()


def upsampled_argmax(probabilities: np.ndarray | torch.Tensor, shape: tuple[int, int],
                     rows: int = 128) -> np.ndarray:
    """Argmax of class probabilities resized bilinearly to ``shape``, a strip at a time.

    An output pixel whose four source pixels share one argmax class keeps that class (a convex
    combination of four vectors that all peak at class k peaks at k), so the bilinear blend of
    all ``C`` classes is computed only where the four disagree: along class boundaries.

    Args:
        probabilities: ``[C, h, w]`` float.
        shape: output ``(H, W)``.
        rows: output rows per strip.

    Returns:
        uint8 ``[H, W]``: ``F.interpolate(p[None], shape, mode="bilinear").argmax(1)`` up to
        float rounding where two classes tie.
    """
    probs = torch.as_tensor(probabilities, dtype=torch.float32)
    height, width = int(shape[0]), int(shape[1])
    labels = probs.argmax(0).to(torch.uint8)
    if probs.shape[1:] == (height, width):
        return labels.numpy()
    y0, y1, ty = _bilinear_taps(probs.shape[1], height)
    x0, x1, tx = _bilinear_taps(probs.shape[2], width)
    out = np.empty((height, width), np.uint8)
    for start in range(0, height, rows):
        ys0, ys1, wy = y0[start:start + rows], y1[start:start + rows], ty[start:start + rows]
        top, bottom = labels[ys0], labels[ys1]                          # [r, w]
        corners = [top[:, x0], top[:, x1], bottom[:, x0], bottom[:, x1]]  # [r, W] each
        strip = corners[0].clone()
        mixed = ((corners[0] != corners[1]) | (corners[0] != corners[2])
                 | (corners[0] != corners[3]))
        r, c = mixed.nonzero(as_tuple=True)
        if r.numel():
            a, b = ys0[r], ys1[r]
            left, right, u, v = x0[c], x1[c], tx[c], wy[r]
            blend = ((probs[:, a, left] * (1 - u) + probs[:, a, right] * u) * (1 - v)
                     + (probs[:, b, left] * (1 - u) + probs[:, b, right] * u) * v)  # [C, n]
            strip[r, c] = blend.argmax(0).to(torch.uint8)
        out[start:start + rows] = strip.numpy()
    return out


@torch.inference_mode()
def tiled_probabilities(net: nn.Module, image: np.ndarray, tile: int, overlap: int,
                        batch_size: int = 4, precision: str = "fp32",
                        device: torch.device | str = "cpu") -> np.ndarray:
    """Class probabilities of a whole image from overlapping, blended tiles.

    Args:
        net: ``[B, 3, t, t]`` in [0, 1] -> logits ``[B, C, t, t]``, in eval mode.
        image: RGB uint8 ``[H, W, 3]`` at the network's working resolution.
        tile: tile side ``t``.
        overlap: overlap of neighbouring tiles (blended with a ramp of this width).
        batch_size: tiles per forward pass.
        precision: ``fp32`` or ``bf16`` (:func:`forward_logits`).
        device: where the network runs.

    Returns:
        float32 ``[C, H, W]``; an image smaller than a tile is padded by reflection.
    """
    h, w = image.shape[:2]
    padded = pad_to(image, tile)
    boxes = tile_boxes(padded.shape[0], padded.shape[1], tile, overlap)
    tiles = extract_tiles(padded, boxes)
    out = []
    for i in range(0, len(tiles), batch_size):
        batch = torch.stack([to_tensor(t) for t in tiles[i:i + batch_size]])
        logits = forward_logits(net, batch.to(device), precision)
        out.append(logits.softmax(1).float().cpu())
    probs = stitch_tiles(torch.cat(out).numpy(), boxes, padded.shape[0], padded.shape[1])
    return probs[:, :h, :w]


class Learner:
    """A trained run ready for inference on full-resolution images.

    Args:
        run_dir: run folder (``config.yaml`` + ``checkpoints/``).
        device: ``auto | cpu | cuda[:N]``.
        batch_size: tiles per forward pass.
        precision: ``fp32``, ``bf16`` (autocast, channels-last; see :func:`forward_logits`),
            or None: ``bf16`` when the run trained with ``train.bf16``, else ``fp32``.
        runtime: ``torch``, or ``onnx``: the run's exported ``model.onnx`` through
            onnxruntime on the CPU (float32), with the classes and tiling of its settings file.
    """

    def __init__(self, run_dir: str | Path, device: str = "auto", batch_size: int = 4,
                 precision: str | None = None, runtime: str = "torch"):
        self.run_dir, self.cfg = open_run(run_dir, base=BASE_CONFIG)
        self.batch_size = batch_size
        data = self.cfg["data"]
        self.tile, self.scale = int(data["tile"]), float(data["scale"])
        self.overlap = int(data["overlap"])
        if runtime == "onnx":
            from ensemblab.engine.onnx_export import load_onnx

            self.device, self.precision = torch.device("cpu"), "fp32"
            self.module, settings = load_onnx(self.run_dir)
            self.classes: list[str] = list(settings["classes"])
            tiling = settings["tiling"]
            self.tile, self.overlap = int(tiling["tile"]), int(tiling["overlap"])
            self.scale = float(settings["input"]["scale"])
            return
        self.device = select_device(device)
        self.module = module_from_config(self.cfg)
        load_run_weights(self.module, self.run_dir)
        self.module.to(self.device).eval()
        self.precision = precision or ("bf16" if self.cfg["train"]["bf16"] else "fp32")
        if self.precision == "bf16":
            self.module.to(memory_format=torch.channels_last)
        self.classes = list(self.module.hparams.class_names)

    @property
    def name(self) -> str:
        return self.run_dir.name

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities [C, h, w] at the working resolution of an RGB uint8 image."""
        return tiled_probabilities(self.module, rescale(image, self.scale, nearest=False),
                                   self.tile, self.overlap, self.batch_size, self.precision,
                                   self.device)

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Label map uint8 ``[H, W]`` at the image's own resolution, and the seconds it took."""
        start = time.perf_counter()
        labels = upsampled_argmax(self.probabilities(image), image.shape[:2])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return labels, time.perf_counter() - start


def check_compatible(learners: list[Learner]) -> list[str]:
    """All learners must share the class list; returns it."""
    classes = learners[0].classes
    for learner in learners[1:]:
        if learner.classes != classes:
            raise EnsemblabError(f"{learner.run_dir}: classes {learner.classes} differ from "
                                 f"{learners[0].run_dir}: {classes}")
    return classes
