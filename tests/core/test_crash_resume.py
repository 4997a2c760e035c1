"""A training run killed with SIGKILL mid-epoch and resumed ends exactly where an
uninterrupted run ends (CPU, seeded): same weights, same logged metrics.

The run is a child process training a small MLP with dropout, a shuffled loader and random
augmentation drawing from torch, NumPy and Python's ``random``, so each of the three RNG
states must be restored from ``last.ckpt`` for the epochs after the kill to repeat exactly.
"""

import json
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import torch

from ensemblab.engine import load_checkpoint
from ensemblab.engine.rng_state import RngStateCheckpoint

TRAIN_SCRIPT = textwrap.dedent('''
    import argparse
    import random
    import time

    import lightning as L
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset

    from ensemblab.engine import build_trainer, fit, prepare_run_dir, seed_everything
    from ensemblab.io import write_json


    class NoisyPoints(Dataset):
        """8 features, 3 classes (argmax of the first three); noise on every read if train."""

        def __init__(self, n, seed, train):
            g = torch.Generator().manual_seed(seed)
            self.x = torch.randn(n, 8, generator=g)
            self.y = self.x[:, :3].argmax(dim=1)
            self.train = train

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            if not self.train:
                return self.x[i], self.y[i]
            noise = np.random.normal(0.0, 0.3, 8).astype(np.float32) * random.random()
            return self.x[i] + torch.from_numpy(noise), self.y[i]


    class Points(L.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(NoisyPoints(40, 0, True), batch_size=8, shuffle=True)

        def val_dataloader(self):
            return DataLoader(NoisyPoints(32, 1, False), batch_size=16)


    class Mlp(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(),
                                           torch.nn.Dropout(0.3), torch.nn.Linear(32, 3))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train/loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x)
            self.log("val/loss", torch.nn.functional.cross_entropy(logits, y))
            self.log("val/acc", (logits.argmax(dim=1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.02)


    class PrintStep(L.Callback):
        """Print each finished step; hang after ``hang_at`` so the parent kills mid-epoch."""

        def __init__(self, hang_at):
            self.hang_at = hang_at

        def on_train_batch_end(self, trainer, *args):
            print(f"step {trainer.global_step}", flush=True)
            if trainer.global_step == self.hang_at:
                time.sleep(120)


    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--hang-at", type=int, default=-1)
    args = parser.parse_args()
    run = prepare_run_dir(args.out, {"seed": 0}, resume=args.resume)
    seed_everything(0)
    module = Mlp()
    trainer = build_trainer(run, max_epochs=4, device="cpu", monitor="val/acc", mode="max",
                            progress_bar=False, log_every_n_steps=1,
                            callbacks=[PrintStep(args.hang_at)])
    fit(trainer, module, datamodule=Points(), resume=args.resume)
    write_json(run / "final.json", {
        "global_step": trainer.global_step,
        "metrics": {k: float(v) for k, v in sorted(trainer.callback_metrics.items())},
        "weights": torch.cat([p.detach().flatten() for p in module.parameters()]).tolist(),
    })
''')


def _train(script, out, *flags):
    return subprocess.Popen([sys.executable, str(script), "--out", str(out), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    return stdout


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    killed_run, full_run = tmp_path / "killed", tmp_path / "full"
    # 40 items in batches of 8: 5 steps per epoch, so step 7 is in the second epoch (index 1)
    full = _train(script, full_run)
    killed = _train(script, killed_run, "--hang-at", "7")
    for line in killed.stdout:
        if line.strip() == "step 7":
            killed.send_signal(signal.SIGKILL)
            break
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (killed_run / "final.json").exists()
    last = load_checkpoint(killed_run / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (0, 5)  # epoch 1 was cut short

    steps = [line for line in _finish(_train(script, killed_run, "--resume")).splitlines()
             if line.startswith("step ")]
    assert steps[0] == "step 6" and steps[-1] == "step 20"  # continued, did not restart
    _finish(full)

    resumed = json.loads((killed_run / "final.json").read_text())
    uninterrupted = json.loads((full_run / "final.json").read_text())
    assert resumed["global_step"] == uninterrupted["global_step"] == 20
    assert uninterrupted["metrics"]["val/acc"] > 0.6  # it learned (chance is 1/3)
    assert resumed["metrics"] == uninterrupted["metrics"]
    assert torch.equal(torch.tensor(resumed["weights"]), torch.tensor(uninterrupted["weights"]))


def _draws():
    return (random.random(), float(np.random.normal()), torch.rand(3).tolist())


def test_checkpointed_generator_state_repeats_the_draws(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    _draws()
    np.random.normal()  # leaves a cached Gaussian in NumPy's state
    torch.save({"callbacks": {"rng": RngStateCheckpoint().state_dict()}}, tmp_path / "c.ckpt")
    expected = _draws()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    assert _draws() != expected
    state = load_checkpoint(tmp_path / "c.ckpt", required=("callbacks",))["callbacks"]["rng"]
    RngStateCheckpoint().load_state_dict(state)
    assert _draws() == expected
