"""The Lightning glue: run folder, checkpoints, curves, resume, device choice."""

import lightning as L
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ensemblab.engine import (
    best_checkpoint,
    build_trainer,
    fit,
    prepare_run_dir,
    seed_everything,
    select_device,
)
from ensemblab.engine.curves import read_metrics
from ensemblab.errors import ConfigError, EnsemblabError


class LinearFit(L.LightningModule):
    """y = 3x - 1 by least squares; learns within a few epochs."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.lin(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, generator=g)
    return DataLoader(TensorDataset(x, 3 * x - 1), batch_size=16)


def test_fit_writes_run_folder_and_resumes(tmp_path):
    seed_everything(0)
    run = prepare_run_dir(tmp_path / "run", {"train": {"epochs": 2}})
    trainer = build_trainer(run, 2, device="cpu", monitor="val_loss", mode="min",
                            progress_bar=False)
    curves = fit(trainer, LinearFit(), _loader(), _loader())
    assert (run / "config.yaml").is_file() and curves == run / "curves.png" and curves.is_file()
    assert best_checkpoint(run).name == "best.ckpt"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    first = pd.read_csv(run / "logs" / "metrics.csv")
    assert first["epoch"].max() == 1

    with pytest.raises(ConfigError, match="exists"):
        prepare_run_dir(run, {})
    prepare_run_dir(run, {}, resume=True)
    trainer = build_trainer(run, 4, device="cpu", monitor="val_loss", mode="min",
                            progress_bar=False)
    fit(trainer, LinearFit(), _loader(), _loader(), resume=True)
    assert trainer.current_epoch == 4
    log = read_metrics(run)
    assert log["epoch"].min() == 0 and log["epoch"].max() == 3
    losses = log.dropna(subset=["val_loss"])["val_loss"].to_numpy()
    assert losses[-1] < losses[0]


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(EnsemblabError, match="CUDA is not available"):
            select_device("cuda")


def test_last_checkpoint_written_on_epochs_without_validation(tmp_path):
    run = prepare_run_dir(tmp_path / "run", {})
    trainer = build_trainer(run, 1, device="cpu", progress_bar=False, check_val_every_n_epoch=2)
    fit(trainer, LinearFit(), _loader(), _loader())
    assert (run / "checkpoints" / "last.ckpt").is_file()
