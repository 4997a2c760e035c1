"""Whole-image inference of one trained learner: rescale, overlapping tiles, stitch, argmax.

Per-tile class probabilities are averaged over tile overlaps (``ensemblab.data.tiling``), so
tile seams do not show. Label maps come out at the model's working resolution (image size times
``data.scale``); :func:`upsample_labels` brings them back to the original size with
nearest-neighbour resampling for scoring against the full-resolution masks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ensemblab.data.tiling import extract_tiles, stitch_tiles, tile_boxes
from ensemblab.engine import best_checkpoint, load_checkpoint, load_weights, open_run, select_device
from ensemblab.errors import EnsemblabError
from ensemblab.projects.mineral_ruel.data import pad_to, rescale, to_tensor
from ensemblab.projects.mineral_ruel.module import MineralSegmenter


def module_from_config(cfg: dict[str, Any]) -> MineralSegmenter:
    """Build an untrained learner from a resolved config (see ``configs/base.yaml``)."""
    train = cfg["train"]
    return MineralSegmenter(
        num_classes=len(cfg["data"]["classes"]), class_names=cfg["data"]["classes"],
        model=dict(cfg["model"]), loss=dict(cfg["loss"]), lr=train["lr"],
        min_lr=train["min_lr"], warmup_epochs=train["warmup_epochs"],
        frozen_epochs=train["frozen_epochs"], epochs=train["epochs"])


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


def upsample_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map [h, w] to ``shape`` (H, W)."""
    if labels.shape == tuple(shape):
        return labels
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize(
        (shape[1], shape[0]), Image.NEAREST))


class Learner:
    """A trained run ready for inference.

    Args:
        run_dir: run folder (``config.yaml`` + ``checkpoints/``).
        device: ``auto | cpu | cuda[:N]``.
        batch_size: tiles per forward pass.
        precision: ``fp32`` (exact) or ``bf16`` (autocast, channels-last; see
            :func:`forward_logits`).
    """

    def __init__(self, run_dir: str | Path, device: str = "auto", batch_size: int = 4,
                 precision: str = "fp32"):
        self.run_dir, self.cfg = open_run(run_dir)
        self.device = select_device(device)
        self.batch_size = batch_size
        ckpt = best_checkpoint(self.run_dir)
        state = load_checkpoint(ckpt)["state_dict"]
        self.module = module_from_config(self.cfg)
        load_weights(self.module, state, ckpt)
        self.module.to(self.device).eval()
        self.precision = precision
        if precision == "bf16":
            self.module.to(memory_format=torch.channels_last)
        data = self.cfg["data"]
        self.classes: list[str] = list(data["classes"])
        self.tile, self.scale = int(data["tile"]), float(data["scale"])
        self.overlap = int(data.get("overlap", self.tile // 8))

    @property
    def name(self) -> str:
        return self.run_dir.name

    @torch.inference_mode()
    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities [C, h, w] at the working resolution of an RGB uint8 image."""
        small = rescale(image, self.scale, nearest=False)
        h, w = small.shape[:2]
        padded = pad_to(small, self.tile)
        boxes = tile_boxes(padded.shape[0], padded.shape[1], self.tile, self.overlap)
        tiles = extract_tiles(padded, boxes)
        out = []
        for i in range(0, len(tiles), self.batch_size):
            batch = torch.stack([to_tensor(t) for t in tiles[i:i + self.batch_size]])
            logits = forward_logits(self.module, batch.to(self.device), self.precision)
            out.append(logits.softmax(1).float().cpu())
        probs = stitch_tiles(torch.cat(out).numpy(), boxes, padded.shape[0], padded.shape[1])
        return probs[:, :h, :w]

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Label map uint8 [h, w] at the working resolution and the seconds it took."""
        start = time.perf_counter()
        labels = self.probabilities(image).argmax(0).astype(np.uint8)
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
