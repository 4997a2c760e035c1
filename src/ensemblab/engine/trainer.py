"""Build a Lightning ``Trainer`` the same way for every project.

One call gives: device auto-selection (CPU, one GPU, several GPUs or nodes through DDP),
a CSV logger in ``RUN/logs``, checkpoints ``RUN/checkpoints/{best,last}.ckpt``, resume from
``last.ckpt`` that repeats the interrupted run exactly (the generators' state is checkpointed,
:class:`~ensemblab.engine.rng_state.RngStateCheckpoint`), a progress bar, and a PNG of the
logged curves after fitting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from ensemblab.engine.curves import plot_curves
from ensemblab.engine.rng_state import RngStateCheckpoint
from ensemblab.engine.runs import lightning_accelerator

# Lightning warns about few dataloader workers and small logging intervals on tiny CPU runs;
# both are deliberate here.
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*log_every_n_steps.*")
warnings.filterwarnings("ignore", message=".*TensorBoard.*")

# Lightning's info lines (accelerator availability, litlogger/litmodels tips) go through these
# loggers; errors and warnings still show.
_LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero",
                           "lightning.fabric.utilities.rank_zero")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hide Lightning's info banners and tips for the calls inside, nothing else.

    ``GPU available: ... / TPU available: ... / 💡 Tip: ...`` is printed by every Trainer that
    is built and fitted; a demo builds a dozen. Lightning's use of torch's deprecated pytree
    ``LeafSpec`` check warns once per fit; it is hidden too. Other warnings still show.
    """
    loggers = [logging.getLogger(name) for name in _LIGHTNING_INFO_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")
            warnings.filterwarnings("ignore", message=r".*_pytree.*deprecated.*")
            yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def build_trainer(
    run_dir: str | Path,
    max_epochs: int,
    device: str = "auto",
    devices: int | str | list[int] | None = None,
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str | None = None,
    monitor: str | None = None,
    mode: str = "max",
    callbacks: Sequence[Callback] = (),
    log_every_n_steps: int = 10,
    gradient_clip_val: float | None = None,
    progress_bar: bool = True,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """A configured :class:`lightning.Trainer` writing into ``run_dir``.

    Args:
        run_dir: the run folder (holds ``config.yaml``).
        max_epochs: epochs to train.
        device: ``auto | cpu | cuda | cuda:N``.
        devices: number/list of devices for DDP (overrides the one implied by ``device``);
            ``$ENSEMBLAB_DEVICES`` when not given.
        num_nodes: nodes for multi-node DDP (launch with ``torchrun`` or SLURM).
        strategy: Lightning strategy (``auto``, ``ddp``, ``ddp_spawn`` ...).
        precision: ``None`` picks ``16-mixed`` on GPU and ``32-true`` on CPU.
        monitor: logged metric that selects ``best.ckpt`` (None keeps only ``last.ckpt``).
        mode: ``max`` or ``min`` for ``monitor``.
        callbacks: extra callbacks.
        log_every_n_steps: CSV logging interval.
        gradient_clip_val: optional gradient clipping.
        progress_bar: show a progress bar.
        **trainer_kwargs: passed to :class:`lightning.Trainer` as is.
    """
    run_dir = Path(run_dir)
    accelerator, implied = lightning_accelerator(device)
    devices, strategy, num_nodes = _distributed_from_env(devices, strategy, num_nodes)
    if precision is None:
        precision = "16-mixed" if accelerator == "gpu" else "32-true"
    _keep_previous_log(run_dir / "logs")
    ckpt_dir = run_dir / "checkpoints"
    # ``last.ckpt`` at every training-epoch end, also when validation runs less often.
    cbs: list[Callback] = [ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1,
                                           every_n_epochs=1, save_on_train_epoch_end=True,
                                           enable_version_counter=False),
                         RngStateCheckpoint()]
    if monitor:
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode,
                                   save_top_k=1, enable_version_counter=False))
    if progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, log_every_n_steps)))
    cbs.extend(callbacks)
    with quiet_lightning():
        return L.Trainer(
            default_root_dir=run_dir,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices if devices is not None else implied,
            num_nodes=num_nodes,
            strategy=strategy,
            precision=precision,
            logger=CSVLogger(run_dir, name="logs", version=""),
            callbacks=cbs,
            log_every_n_steps=log_every_n_steps,
            gradient_clip_val=gradient_clip_val,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            **trainer_kwargs,
        )


def _distributed_from_env(devices, strategy: str, num_nodes: int):
    """Let any project's ``train`` run on several GPUs/nodes without new flags.

    ``ENSEMBLAB_DEVICES`` (``4``, ``auto``), ``ENSEMBLAB_NUM_NODES`` and ``ENSEMBLAB_STRATEGY``
    fill whatever the caller left at its default; more than one device implies DDP.
    """
    env_devices = os.environ.get("ENSEMBLAB_DEVICES")
    if devices is None and env_devices:
        devices = int(env_devices) if env_devices.isdigit() else env_devices
    num_nodes = int(os.environ.get("ENSEMBLAB_NUM_NODES", num_nodes))
    if strategy == "auto":
        strategy = os.environ.get("ENSEMBLAB_STRATEGY", "auto")
        if strategy == "auto" and ((isinstance(devices, int) and devices > 1) or num_nodes > 1):
            strategy = "ddp"
    return devices, strategy, num_nodes


def _keep_previous_log(log_dir: Path) -> None:
    """Lightning's CSV logger deletes an existing ``metrics.csv``; keep it as a numbered part.

    On resume the earlier epochs stay in ``metrics.part<k>.csv`` and :func:`plot_curves` reads
    all parts in order.
    """
    current = log_dir / "metrics.csv"
    if current.is_file():
        k = len(list(log_dir.glob("metrics.part*.csv")))
        current.rename(log_dir / f"metrics.part{k}.csv")


def fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    train_dataloaders: Any = None,
    val_dataloaders: Any = None,
    datamodule: L.LightningDataModule | None = None,
    resume: bool = False,
) -> Path | None:
    """Fit, resuming from ``RUN/checkpoints/last.ckpt`` when ``resume``; then plot the curves.

    Returns:
        The PNG of the curves (rank 0 only), or None.
    """
    ckpt_path = None
    if resume:
        last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.is_file() else None
    with quiet_lightning():
        trainer.fit(module, train_dataloaders=train_dataloaders,
                    val_dataloaders=val_dataloaders, datamodule=datamodule, ckpt_path=ckpt_path,
                    weights_only=True)  # a checkpoint to resume from never runs code
    if trainer.is_global_zero:
        return plot_curves(trainer.default_root_dir)
    return None
