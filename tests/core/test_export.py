"""``ensemblab <project> export``: weights and config only, atomic, one-line errors."""

import pytest
import torch
import yaml

from ensemblab import PROJECTS
from ensemblab.cli import build_parser, main
from ensemblab.config import save_config
from ensemblab.engine import load_checkpoint, load_weights
from ensemblab.engine.export import export_weights
from ensemblab.run_record import write_run_record

CONFIG = {"seed": 3, "model": {"hidden": 64}, "train": {"epochs": 2, "lr": 0.01}}


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                       torch.nn.Linear(64, 3))


def _lightning_checkpoint(path, seed):
    """What Lightning writes: weights plus Adam's two moments per weight and loop state."""
    torch.manual_seed(seed)
    weights = {f"net.{k}": v for k, v in TwoLayer().net.state_dict().items()}
    adam = {i: {"step": torch.tensor(40.0), "exp_avg": torch.randn_like(w),
                "exp_avg_sq": torch.rand_like(w)} for i, w in enumerate(weights.values())}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 1, "global_step": 40, "pytorch-lightning_version": "2.6.0",
                "state_dict": weights,
                "optimizer_states": [{"state": adam, "param_groups": [{"lr": 0.01}]}],
                "lr_schedulers": [], "loops": {"fit_loop": {"epoch_progress": {}}},
                "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.5)}}},
               path)
    return weights


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    save_config(CONFIG, run)
    return run


def test_export_keeps_the_best_weights_and_config_and_drops_the_optimizer(run_dir, capsys):
    _lightning_checkpoint(run_dir / "checkpoints" / "last.ckpt", seed=0)
    best = _lightning_checkpoint(run_dir / "checkpoints" / "best.ckpt", seed=1)
    write_run_record(run_dir, "fre_unet", "model")
    assert main(["fre_unet", "export", "--run", str(run_dir)]) == 0
    out = run_dir / "weights.pt"
    exported = torch.load(out, map_location="cpu", weights_only=True)
    assert set(exported) == {"format", "state_dict", "config", "checkpoint", "epoch",
                             "global_step"}
    assert exported["format"] == "ensemblab-weights" and exported["checkpoint"] == "best.ckpt"
    assert (exported["epoch"], exported["global_step"]) == (1, 40)
    assert yaml.safe_load(exported["config"]) == CONFIG
    assert exported["state_dict"].keys() == best.keys()
    for key, value in best.items():
        assert torch.equal(exported["state_dict"][key], value)
    # weights are a third of weights + two Adam moments
    ckpt_size = (run_dir / "checkpoints" / "best.ckpt").stat().st_size
    assert out.stat().st_size < 0.4 * ckpt_size
    line = capsys.readouterr().out.strip()
    assert line == (f"exported {run_dir / 'checkpoints' / 'best.ckpt'} "
                    f"({ckpt_size / 1e6:.1f} MB) -> {out} ({out.stat().st_size / 1e6:.1f} MB)")
    # the deployment file is read and applied by the core's checkpoint functions
    model = TwoLayer()
    load_weights(model, load_checkpoint(out, required=("state_dict", "config"))["state_dict"],
                 out)
    assert torch.equal(model.net[2].bias, best["net.2.bias"])


def test_export_falls_back_to_last_and_writes_where_asked(run_dir, tmp_path):
    last = _lightning_checkpoint(run_dir / "checkpoints" / "last.ckpt", seed=2)
    target = tmp_path / "deploy" / "model.pt"
    source, written = export_weights(run_dir, target)
    assert (source.name, written) == ("last.ckpt", target)
    exported = torch.load(target, map_location="cpu", weights_only=True)
    assert torch.equal(exported["state_dict"]["net.0.weight"], last["net.0.weight"])
    assert not (run_dir / "weights.pt").exists()
    assert [p.name for p in target.parent.iterdir()] == ["model.pt"]  # no temporary left


@pytest.mark.parametrize("case", ["no_checkpoint", "truncated", "no_run"])
def test_a_run_that_cannot_be_exported_is_one_line_and_writes_nothing(run_dir, case, capsys):
    if case == "truncated":
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        _lightning_checkpoint(ckpt, seed=0)
        ckpt.write_bytes(ckpt.read_bytes()[:2000])
    run = run_dir.parent / "missing" if case == "no_run" else run_dir
    write_run_record(run_dir, "mineral_ruel", "learner")
    before = sorted(run_dir.rglob("*"))
    assert main(["mineral_ruel", "export", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    expected = {"no_checkpoint": f"{run_dir}: no checkpoint found",
                "truncated": f"{run_dir / 'checkpoints' / 'last.ckpt'}: not a readable",
                "no_run": f"{run}: run folder not found"}[case]
    assert err.startswith(f"ensemblab: error: {expected}")
    assert sorted(run_dir.rglob("*")) == before


def test_an_interrupted_export_leaves_no_file(run_dir, monkeypatch):
    _lightning_checkpoint(run_dir / "checkpoints" / "last.ckpt", seed=0)

    def dies_halfway(obj, path):
        with open(path, "wb") as fh:
            fh.write(b"PK\x03\x04 half")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError):
        export_weights(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.yaml"]


def test_every_project_has_the_export_verb():
    parser = build_parser()
    for name in PROJECTS:
        args = parser.parse_args([name, "export", "--run", "RUN", "--out", "w.pt"])
        assert (args.run, args.out) == ("RUN", "w.pt")
