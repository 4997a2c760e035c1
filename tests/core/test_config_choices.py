"""Choice-valued config keys are checked when a config loads (one line naming the key, the value,
the closest allowed value and every allowed one), and a run's saved config is completed from the
project's root config, the one place a default is written."""

from types import SimpleNamespace

import pytest
import torch
import yaml

# The verbs import these lazily; importing them here keeps that cost out of the timed tests.
import ensemblab.projects.battery_crystal.commands  # noqa: F401
import ensemblab.projects.crossattn_vl.commands  # noqa: F401
import ensemblab.projects.fre_unet.commands  # noqa: F401
import ensemblab.projects.mineral_ruel.commands  # noqa: F401
import ensemblab.projects.sartorius_cells.commands as sartorius
from ensemblab.cli import main
from ensemblab.config import check_choice, load_config, load_run_config
from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.members.maskrcnn import MaskRCNNModule

# (project, bundled CPU config, its optimizer key, the allowed values as the message lists them)
OPTIMIZER_KEYS = [
    ("sartorius_cells", "cpu_maskrcnn_r18", "train.optimizer", "sgd, adamw"),
    ("sartorius_cells", "cpu_yolox_nano", "train.optimizer", "sgd, adamw"),
    ("sartorius_cells", "cpu_upernet_full_r18", "train.optimizer", "adamw, adam"),
    ("mineral_ruel", "cpu_quick", "train.optimizer", "adam, adamw"),
    ("fre_unet", "cpu_quick", "train.optimizer", "adam, adamw"),
    ("crossattn_vl", "cpu_quick", "train.optimizer", "adam, adamw"),
    ("battery_crystal", "cpu_quick", "dnn.optimizer", "adam"),
]


@pytest.mark.parametrize("project, config, key, allowed", OPTIMIZER_KEYS,
                         ids=[f"{p}-{c}" for p, c, _, _ in OPTIMIZER_KEYS])
def test_optimizer_typo_is_one_line_before_data_or_output(tmp_path, capsys, project, config,
                                                          key, allowed):
    out = tmp_path / "run"
    argv = [project, "train", "--config", config, "--data", str(tmp_path / "missing"),
            "--out", str(out), f"{key}=sdg"]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"{config}.yaml: unknown {key} 'sdg'" in lines[0]
    assert lines[0].endswith(f"; known: {allowed}")
    assert "(did you mean sgd?)" in lines[0] or "sgd" not in allowed
    assert not out.exists()  # checked before the (missing) data was read or a folder made


def test_check_choice_names_key_value_closest_and_allowed():
    cfg = {"train": {"optimizer": "adamw"}, "evaluate": {"models": ["dnn", "svn"]},
           "model": {"encoder": None}}
    assert check_choice(cfg, "train.optimizer", ("sgd", "adamw")) == "adamw"
    assert check_choice(cfg, "model.encoder", (None, "efficientnet_lite0")) is None
    with pytest.raises(ConfigError) as info:  # a list is checked item by item
        check_choice(cfg, "evaluate.models", ("dnn", "svm", "lr"), source="cfg.yaml")
    assert str(info.value) == ("cfg.yaml: unknown evaluate.models 'svn' (did you mean svm?); "
                               "known: dnn, svm, lr")
    with pytest.raises(ConfigError, match="known: efficientnet_lite0$"):
        check_choice(cfg, "model.encoder", ("efficientnet_lite0",))
    with pytest.raises(ConfigError, match="cfg.yaml: missing key 'train.momentum'"):
        check_choice(cfg, "train.momentum", ("sgd",), source="cfg.yaml")


def test_load_config_checks_choices_after_overrides(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text("train:\n  optimizer: sgd   # sgd | adamw\n")
    choices = {"train.optimizer": ("sgd", "adamw")}
    assert load_config(path, ["train.optimizer=adamw"], choices)["train"]["optimizer"] == "adamw"
    with pytest.raises(ConfigError, match=r"base.yaml: unknown train.optimizer 'adamv' \(did "
                                          r"you mean adamw\?\); known: sgd, adamw"):
        load_config(path, ["train.optimizer=adamv"], choices)


def test_run_config_lacking_a_newer_key_is_filled_from_the_root_config(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("seed: 0\ntrain:\n  lr: 0.1\n  optimizer: adam   # added later\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 3, "train": {"lr": 0.5}}))
    assert load_run_config(run) == {"seed": 3, "train": {"lr": 0.5}}
    assert load_run_config(run, base) == {"seed": 3, "train": {"lr": 0.5, "optimizer": "adam"}}


@pytest.fixture(scope="module")
def maskrcnn_cfg():
    cfg = load_config(sartorius.resolve_config("cpu_maskrcnn_r18"),
                      ["model.image_size=64", "model.mask_head_channels=8",
                       "model.box_head_dim=16"])
    cfg["model"]["classes"] = ["cell"]
    return cfg


@pytest.mark.parametrize("name, kind", [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_maskrcnn_builds_the_configured_optimizer(maskrcnn_cfg, name, kind):
    train = {**maskrcnn_cfg["train"], "optimizer": name, "weight_decay": 0.003}
    module = MaskRCNNModule(maskrcnn_cfg["model"], train, pretrained=False)
    module.trainer = SimpleNamespace(estimated_stepping_batches=10)
    opt = module.configure_optimizers()["optimizer"]
    assert type(opt) is kind
    assert opt.defaults["lr"] == train["lr"] and opt.defaults["weight_decay"] == 0.003
    train["optimizer"] = "sdg"  # never silently another optimizer
    with pytest.raises(ConfigError, match="unknown optimizer 'sdg' .*known: sgd, adamw"):
        MaskRCNNModule(maskrcnn_cfg["model"], train, pretrained=False).configure_optimizers()
