"""Predict one list of input files on several devices or nodes through Lightning's predict loop.

``predict --devices N [--num-nodes M] [--strategy ddp]`` of a project that supports it
(:attr:`ensemblab.project.Project.predict_devices`) calls :func:`predict_items`: a
:class:`lightning.Trainer` with DDP runs one process per device (Lightning starts the extra
ranks by running the same command line again; ``torchrun`` and SLURM start them themselves, as
for training, :func:`ensemblab.engine.trainer.build_trainer`). Each rank predicts every
``world_size``-th file (:class:`ShardSampler`: no padding repeats, so no file is predicted
twice), writes the per-file outputs the project writes anyway (PNGs) and collects each file's
small result (CSV rows, COCO records); at the end it writes them as one JSON-lines shard
``OUT/.shards/rank<r>.jsonl`` atomically, replacing any shard an interrupted run left. After
a barrier, rank 0 reads every shard, orders the results by file index (the order of the
one-process path) and removes ``OUT/.shards``; the project then writes its merged files from
them on rank 0 alone. Several nodes need ``OUT`` on a file system they share.

Every rank uses its share of the node's thread budget (``--threads`` or the cores): two CPU
ranks on two cores run one thread each.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from ensemblab.engine.runs import lightning_accelerator, select_device
from ensemblab.engine.trainer import quiet_lightning
from ensemblab.errors import ConfigError, EnsemblabError
from ensemblab.io import atomic_write_text
from ensemblab.progress import Progress
from ensemblab.streaming import DEFAULT_WORKERS, FileDataset, _Failure
from ensemblab.threads import loader_workers, thread_budget

SHARD_DIR = ".shards"
STRATEGIES = ("auto", "ddp")
"""``--strategy`` values: ``auto`` is ``ddp`` for more than one process. Spawn-based
strategies would pickle the project's predictor, which holds closures and open models."""


def processes(devices: int, num_nodes: int = 1) -> int:
    """Ranks of a predict run: devices per node times nodes."""
    return int(devices) * int(num_nodes)


def rank_device(device: str) -> str:
    """The device this rank's model lives on: ``cuda:<LOCAL_RANK>`` on GPUs, else ``device``.

    A Lightning-started extra rank and every ``torchrun`` rank has ``$LOCAL_RANK``; the rank
    that starts the others is local rank 0.
    """
    if select_device(device).type == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def is_global_zero() -> bool:
    """True outside DDP and on global rank 0 (the rank that writes the merged files).

    Without a process group (no file to predict), the launcher's ``$RANK`` or
    ``$SLURM_PROCID`` tells.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0))) == 0


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of ``n`` items: every item once over all ranks.

    Unlike :class:`torch.utils.data.DistributedSampler`, no rank repeats an item to even out
    the shard sizes.

    Args:
        n: the number of items.
        rank: this process's global rank.
        world_size: the number of ranks.
    """

    def __init__(self, n: int, rank: int, world_size: int):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class IndexedFiles(FileDataset):
    """:class:`~ensemblab.streaming.FileDataset` items with their index: ``(i, path, item)``."""

    def __getitem__(self, index: int) -> tuple[int, Path, Any]:
        return (index, *super().__getitem__(index))


def _single(batch: list) -> Any:
    return batch[0]


class ItemPredictor(L.LightningModule):
    """Lightning's view of a per-file predict function: one ``predict_step`` per file.

    The project's models live outside this module (on :func:`rank_device`); it holds no
    parameters, so the batch is passed through as it is.

    Args:
        files: every input file, in the order of the merged outputs.
        read: path -> decoded item, run in the loader.
        predict_item: ``(index, path, item)`` -> a JSON-serialisable result; writes the
            file's own outputs.
        shard_dir: where the ranks write their shards.
        threads: torch threads of this rank.
        workers: loader workers asked for (capped by the threads).
        noun: what the files are, in rank 0's progress lines.
        echo: where progress lines go.
    """

    def __init__(self, files: Sequence[Path], read: Callable[[Path], Any],
                 predict_item: Callable[[int, Path, Any], Any], shard_dir: Path, threads: int,
                 workers: int, noun: str, echo: Callable[[str], None]):
        super().__init__()
        self.dataset = IndexedFiles(files, read)
        self.predict_item, self.shard_dir = predict_item, shard_dir
        self.threads, self.workers, self.noun, self.echo = threads, workers, noun, echo
        self.results: list[list] = []
        self.progress: Progress | None = None
        # Fewer files than ranks leaves a rank without any.
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def setup(self, stage: str) -> None:
        # After Lightning's launcher, which sets its own thread count when none is given.
        torch.set_num_threads(self.threads)

    def predict_dataloader(self) -> DataLoader:
        sampler = ShardSampler(len(self.dataset), self.global_rank, self.trainer.world_size)
        n_workers = loader_workers(self.workers) if len(sampler) > 1 else 0
        return DataLoader(self.dataset, batch_size=1, sampler=sampler, collate_fn=_single,
                          num_workers=n_workers, prefetch_factor=2 if n_workers else None)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # paths and arrays; the project's models move what they need

    def on_predict_start(self) -> None:
        self.results = []
        if self.global_rank == 0:
            world = self.trainer.world_size
            self.progress = Progress(len(ShardSampler(len(self.dataset), 0, world)),
                                     noun=f"{self.noun} on rank 0 of {world}", echo=self.echo)

    def predict_step(self, batch, batch_idx):
        index, path, item = batch
        if isinstance(item, _Failure):
            item.raise_()
        self.results.append([index, self.predict_item(index, path, item)])
        if self.progress is not None:
            self.progress.step()
        return index  # not kept (``return_predictions=False``); None would be warned about

    def write_shard(self) -> None:
        """Write this rank's results as its shard, atomically (also when it had no item: a
        shard of an earlier run is never read)."""
        lines = "".join(json.dumps(r) + "\n" for r in self.results)
        atomic_write_text(shard_path(self.shard_dir, self.global_rank), lines)
        if self.progress is not None:
            self.progress.close()


def shard_path(shard_dir: Path, rank: int) -> Path:
    """The JSON-lines shard of global rank ``rank``."""
    return shard_dir / f"rank{rank:05d}.jsonl"


def merge_shards(shard_dir: Path, world_size: int, n: int) -> list[Any]:
    """The results of items ``0..n-1`` from the shards of ``world_size`` ranks, in item order.

    An item found in two shards counts once.

    Raises:
        EnsemblabError: a shard or an item is missing.
    """
    results: dict[int, Any] = {}
    for rank in range(world_size):
        path = shard_path(shard_dir, rank)
        if not path.is_file():
            raise EnsemblabError(f"{path}: rank {rank} wrote no shard")
        for line in path.read_text().splitlines():
            index, result = json.loads(line)
            results.setdefault(int(index), result)
    missing = [i for i in range(n) if i not in results]
    if missing:
        raise EnsemblabError(f"{len(missing)} of {n} items missing from the shards in "
                             f"{shard_dir} (first: item {missing[0]})")
    return [results[i] for i in range(n)]


def _check_relaunchable() -> None:
    """Lightning starts the extra ranks by running this process's command line again; under
    pytest that would be the whole test session."""
    if "LOCAL_RANK" in os.environ or "RANK" in os.environ:
        return  # started by torchrun, SLURM or Lightning itself
    import __main__

    spec = getattr(__main__, "__spec__", None)
    main_name = spec.name if spec is not None else Path(sys.argv[0]).name
    if main_name.split(".")[0] in ("pytest", "py", "_pytest"):
        raise ConfigError("predict on several devices re-runs its command line once per extra "
                          "rank; run it as `ensemblab ...` or `python -m ensemblab.cli ...` "
                          "(a subprocess in tests), or under torchrun")


def predict_items(files: Sequence[Path], read: Callable[[Path], Any],
                  predict_item: Callable[[int, Path, Any], Any], out_dir: str | Path,
                  device: str = "auto", devices: int = 1, num_nodes: int = 1,
                  strategy: str = "auto", workers: int = DEFAULT_WORKERS,
                  noun: str = "images", echo: Callable[[str], None] | None = None,
                  shard_dir: str | Path | None = None) -> list[Any] | None:
    """Predict ``files`` on ``devices`` x ``num_nodes`` ranks; rank 0 gets every result.

    Args:
        files: the inputs; every rank must pass the same list.
        read: path -> decoded item, run in the loader.
        predict_item: ``(index, path, item)`` -> a JSON-serialisable result (rows, records);
            it writes the file's own outputs (atomically) itself.
        out_dir: the output folder (Lightning's root folder; it writes nothing there).
        device: ``auto | cpu | cuda | cuda:N``: the accelerator.
        devices: processes per node (GPUs, or CPU processes with gloo).
        num_nodes: nodes (``torchrun`` or SLURM starts one process per device on each).
        strategy: ``auto`` (DDP for more than one process) or ``ddp``.
        workers: loader workers asked for per rank (capped by its threads).
        noun: what the files are, in the progress lines (rank 0's shard).
        echo: where progress lines go (printed by default).
        shard_dir: the folder of the shards, removed after the merge (default
            ``out_dir/.shards``).

    Returns:
        On global rank 0, ``predict_item``'s result of every file in the order of ``files``;
        None on the other ranks.
    """
    if devices < 1 or num_nodes < 1:
        raise ConfigError(f"--devices and --num-nodes must be at least 1, got {devices} and "
                          f"{num_nodes}")
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    if not files:  # nothing to shard (every file done before a --resume)
        return [] if is_global_zero() else None
    if processes(devices, num_nodes) > 1:
        _check_relaunchable()
    out_dir = Path(out_dir)
    shard_dir = Path(shard_dir) if shard_dir is not None else out_dir / SHARD_DIR
    accelerator, _ = lightning_accelerator(device)
    if strategy == "auto" and processes(devices, num_nodes) > 1:
        strategy = "ddp"
    threads = max(1, thread_budget() // devices)  # this node's budget over its ranks
    module = ItemPredictor(files, read, predict_item, shard_dir, threads, workers, noun,
                           echo or (lambda line: print(line, flush=True)))
    with quiet_lightning():
        trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                            strategy=strategy, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            use_distributed_sampler=False, default_root_dir=out_dir)
        trainer.predict(module, return_predictions=False)
    # After the loop, not in its hooks: a rank with no file skips them.
    module.write_shard()
    try:
        trainer.strategy.barrier("predict_merge")
    except RuntimeError as exc:  # gloo / NCCL: a peer closed the connection
        raise EnsemblabError("another rank stopped before writing its shard (its error is "
                             f"printed above; here: {type(exc).__name__} at the barrier)"
                             ) from None
    if not trainer.is_global_zero:
        return None
    results = merge_shards(shard_dir, trainer.world_size, len(files))
    shutil.rmtree(shard_dir)
    return results
