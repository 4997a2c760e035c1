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


def test_checkpoint_reading_names_bad_files(tmp_path):
    from ensemblab.engine import load_checkpoint, load_weights
    from ensemblab.errors import DataError

    net = torch.nn.Linear(2, 3)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": net.state_dict(), "epoch": 1}, good)
    state = load_checkpoint(good)["state_dict"]
    load_weights(torch.nn.Linear(2, 3), state, good)
    bare = tmp_path / "bare.pth"
    torch.save(net.state_dict(), bare)
    assert set(load_checkpoint(bare, required=())) == {"weight", "bias"}
    with pytest.raises(DataError, match="bare.pth: checkpoint has no state_dict"):
        load_checkpoint(bare)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[:50])
    with pytest.raises(DataError, match="cut.ckpt: not a readable torch checkpoint"):
        load_checkpoint(cut)
    with pytest.raises(DataError, match="missing.ckpt: checkpoint file not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(DataError, match=r"good.ckpt: .*0 missing, 0 unexpected, 2 mis-shaped"):
        load_weights(torch.nn.Linear(2, 4), state, good)
    with pytest.raises(DataError, match=r"2 missing, 2 unexpected"):
        load_weights(torch.nn.Sequential(torch.nn.Linear(2, 3)), state, good)


def test_keep_weights_only_drops_training_state_and_keeps_the_best_weights(tmp_path):
    from ensemblab.engine.checkpoints import keep_weights_only, load_checkpoint

    seed_everything(0)
    run = prepare_run_dir(tmp_path / "run", {"train": {"epochs": 3}})
    trainer = build_trainer(run, 3, device="cpu", monitor="val_loss", mode="min",
                            progress_bar=False)
    fit(trainer, LinearFit(), _loader(), _loader())
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")
    assert keep_weights_only(run) > 0
    assert not (run / "checkpoints" / "last.ckpt").exists()
    slim = load_checkpoint(run / "checkpoints" / "best.ckpt")
    assert not {"optimizer_states", "lr_schedulers", "callbacks", "loops"} & set(slim)
    assert slim["epoch"] == best["epoch"]
    for key, value in best["state_dict"].items():
        assert torch.equal(slim["state_dict"][key], value)
    assert keep_weights_only(run) < 1000  # a second pass has nothing left to drop
