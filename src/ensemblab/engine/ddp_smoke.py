"""Two-process CPU (gloo) DDP smoke run of the engine and of evaluator reduction.

``python -m ensemblab.engine.ddp_smoke --out DIR`` trains a tiny LightningModule for one epoch
through :func:`ensemblab.engine.build_trainer` with ``device="cpu", devices=2,
strategy="ddp"`` (Lightning re-launches this module once per extra rank); ``--device cuda
--devices N`` runs the same on N GPUs with NCCL (``tools/gpu_check.py`` does). During validation
every rank feeds its own labels (:func:`rank_data`) to a
:class:`~ensemblab.metrics.semantic.ConfusionMatrixEvaluator`; ``compute()`` all-reduces the
matrix, and rank 0 writes ``DIR/ddp_smoke.json`` with the reduced matrix, each rank's local
matrix (gathered) and the world size, so a test can check ``reduced == sum(local)``. A second
confusion-matrix evaluator scores the :data:`PADDED_SAMPLES` samples of :func:`sample_data` in
the order a ``DistributedSampler`` deals them, padding repeats included, with their sample ids,
so a test can check that the repeated sample counts once. A
:class:`~ensemblab.metrics.instance.KaggleScoreEvaluator` is gathered the same way
(:func:`rank_instances`: one image per rank plus one image both ranks see).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from ensemblab.engine import build_trainer, fit, seed_everything
from ensemblab.io import write_json
from ensemblab.metrics.evaluators import all_gather_objects
from ensemblab.metrics.instance import KaggleScoreEvaluator
from ensemblab.metrics.semantic import ConfusionMatrixEvaluator

NUM_CLASSES = 3
# An odd count over 2 ranks: the sampler repeats sample 0 on rank 1 to even them out.
PADDED_SAMPLES = 5


def rank_data(rank: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(pred, target)`` label vectors ``int64[n]`` that rank ``rank`` scores."""
    rng = np.random.default_rng(1000 + rank)
    target = rng.integers(0, NUM_CLASSES, n)
    pred = np.where(rng.random(n) < 0.6, target, rng.integers(0, NUM_CLASSES, n))
    return pred, target


def sample_data(index: int, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(pred, target)`` label vectors ``int64[n]`` of dataset sample ``index``."""
    rng = np.random.default_rng(2000 + index)
    target = rng.integers(0, NUM_CLASSES, n)
    return rng.integers(0, NUM_CLASSES, n), target


def padded_indices(rank: int, world_size: int) -> list[int]:
    """The sample indices a ``DistributedSampler`` gives ``rank`` (padding repeats included)."""
    sampler = DistributedSampler(range(PADDED_SAMPLES), num_replicas=world_size, rank=rank,
                                 shuffle=False)
    return list(sampler)


def rank_instances(rank: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(image_id, pred id map, gt id map)`` scored by rank ``rank``: rank 0 predicts its own
    image perfectly (score 1), rank 1 predicts nothing on its image (score 0), and both score
    the shared image ``"both"`` perfectly; after gathering, 3 images with mean 2/3."""
    gt = np.zeros((8, 8), dtype=np.int32)
    gt[:4, :4], gt[5:, 5:] = 1, 2
    own = gt if rank == 0 else np.zeros_like(gt)
    return [(f"rank{rank}", own, gt), ("both", gt, gt)]


class TinyClassifier(L.LightningModule):
    """A linear classifier of 4 features into 3 classes, with a DDP-reduced evaluator."""

    def __init__(self, out_json: str) -> None:
        super().__init__()
        self.out_json = out_json
        self.net = torch.nn.Linear(4, NUM_CLASSES)
        self.evaluator = ConfusionMatrixEvaluator(NUM_CLASSES)
        self.padded = ConfusionMatrixEvaluator(NUM_CLASSES)
        self.kaggle = KaggleScoreEvaluator()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.evaluator.reset()
        self.padded.reset()
        self.kaggle.reset()

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:  # the rank's own labels, once per epoch
            self.evaluator.update(*rank_data(self.global_rank))
            for index in padded_indices(self.global_rank, self.trainer.world_size):
                pred, target = sample_data(index)
                self.padded.update(pred[None], target[None], sample_ids=[index])
            for image_id, pred, gt in rank_instances(self.global_rank):
                self.kaggle.update(image_id, pred, gt)

    def on_validation_epoch_end(self) -> None:
        local = self.evaluator.matrix.copy()
        scores = self.evaluator.compute()  # collective: every rank calls it
        gathered = all_gather_objects(local.tolist())
        kaggle = self.kaggle.compute()  # collective as well
        padded = self.padded.compute()
        self.log("val/miou", scores["miou"], sync_dist=True)  # equal on all ranks already
        if self.trainer.is_global_zero:
            write_json(self.out_json, {
                "world_size": self.trainer.world_size,
                "reduced": scores["confusion_matrix"],
                "local": gathered,
                "miou": scores["miou"],
                "padded": padded["confusion_matrix"],
                "kaggle": kaggle,
            })

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 4, generator=g)
    y = x[:, :NUM_CLASSES].argmax(dim=1)
    return DataLoader(TensorDataset(x, y), batch_size=8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) | cuda (NCCL)")
    parser.add_argument("--devices", type=int, default=2, help="processes, one per device")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(0)
    module = TinyClassifier(str(out / "ddp_smoke.json"))
    trainer = build_trainer(out, max_epochs=1, device=args.device, devices=args.devices,
                            strategy="ddp", progress_bar=False, log_every_n_steps=1,
                            num_sanity_val_steps=0)
    fit(trainer, module, _loader(0), _loader(1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
