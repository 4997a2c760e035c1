"""TPE search spaces are chosen by name from their registry (``search --space``)."""

import optuna
import pytest
import yaml

from ensemblab.errors import ConfigError
from ensemblab.io import write_csv
from ensemblab.projects.fre_unet import search
from ensemblab.projects.fre_unet.search import apply_params, run_search
from ensemblab.projects.fre_unet.search_spaces import SEARCH_SPACES, SearchSpace, search_space


def test_the_paper_spaces_sample_and_apply_their_parameters(tiny_cfg):
    assert {"fre", "supervision"} <= set(SEARCH_SPACES.names())
    fre = search_space("fre")
    point = fre.suggest(optuna.trial.FixedTrial({"B": 3, "X": 20.0}), tiny_cfg)
    assert point == {"B": 3, "X": 20.0} and fre.params == ("B", "X")
    cfg = apply_params(tiny_cfg, "fre", point)
    assert cfg["model"]["fre"]["num_enhanced"] == 3 and cfg["model"]["fre"]["factor"] == 20.0
    assert tiny_cfg["model"].get("fre") != cfg["model"]["fre"]  # the input config is kept
    cfg = apply_params(tiny_cfg, "supervision", {"lambda": 0.25})
    assert cfg["model"]["supervision"] is True and cfg["train"]["supervision_lambda"] == 0.25
    trial = optuna.create_study().ask()
    fre.suggest(trial, tiny_cfg)
    b, x = trial.distributions["B"], trial.distributions["X"]
    assert (b.low, b.high) == (1, 64)  # C_deep: 512 channels x model.width 0.125
    assert (x.low, x.high, x.log) == (1.0, 1000.0, True)


def test_unknown_space_is_one_line_naming_the_closest(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError) as info:
        run_search(tiny_cfg, tmp_path, tmp_path / "search", space="fer", trials=1)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown search space 'fer' (did you mean fre")
    assert not (tmp_path / "search").exists()  # refused before the study starts


def test_a_registered_space_is_selectable_by_name(tiny_cfg, tmp_path, monkeypatch):
    def fake_train_run(cfg, data, run_dir, device="auto", progress_bar=False):
        """A run whose validation mIoU peaks at a learning rate of 0.01."""
        miou = 1.0 - abs(cfg["train"]["lr"] - 0.01)
        write_csv(run_dir / "logs" / "metrics.csv", ["val/miou"], [[miou]])

    monkeypatch.setattr(search, "train_run", fake_train_run)
    with SEARCH_SPACES.scope():
        @SEARCH_SPACES.register("lr")
        class LearningRateSpace(SearchSpace):
            params = ("lr",)

            def suggest(self, trial, cfg):
                return {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)}

            def apply(self, cfg, params):
                cfg["train"]["lr"] = float(params["lr"])

        study = run_search(tiny_cfg, tmp_path, tmp_path / "search", space="lr", trials=3)
    assert len(study.trials) == 3 and "lr" not in SEARCH_SPACES
    out = tmp_path / "search"
    assert (out / "trials.csv").read_text().splitlines()[0] == "number,lr,val_miou"
    assert (out / "search_lr.png").is_file()
    best = yaml.safe_load((out / "best_lr.yaml").read_text())
    assert best["train"]["lr"] == pytest.approx(study.best_params["lr"])
