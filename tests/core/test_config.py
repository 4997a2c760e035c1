"""Config loading, inheritance and key=value overrides."""

import pytest
import yaml

from ensemblab.config import apply_overrides, load_config, load_run_config, save_config
from ensemblab.errors import ConfigError


def test_overrides_parse_yaml_scalars_and_create_nested_keys():
    cfg = apply_overrides({"train": {"epochs": 10, "lr": 0.1}},
                          ["train.epochs=3", "train.lr=1e-4", "model.name=resunet",
                           "model.flags=[1, 2]", "seed=7", "empty="])
    assert cfg["train"] == {"epochs": 3, "lr": 1e-4}
    assert cfg["model"] == {"name": "resunet", "flags": [1, 2]}
    assert cfg["seed"] == 7 and cfg["empty"] == ""


def test_base_inheritance_merges_recursively(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 10, lr: 0.1}\nmodel: {name: a}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain: {epochs: 2}\n")
    cfg = load_config(tmp_path / "child.yaml", ["model.name=b"])
    assert cfg == {"train": {"epochs": 2, "lr": 0.1}, "model": {"name": "b"}}


def test_bad_inputs_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not a run folder"):
        load_run_config(tmp_path)


def test_saved_config_round_trips(tmp_path):
    cfg = {"a": {"b": [1, 2]}, "c": "x"}
    path = save_config(cfg, tmp_path / "run")
    assert yaml.safe_load(path.read_text()) == cfg == load_run_config(tmp_path / "run")
    assert not list((tmp_path / "run").glob(".*tmp"))


def test_find_config_takes_a_path_or_a_bundled_name(tmp_path):
    from ensemblab.config import find_config

    bundled = tmp_path / "configs"
    bundled.mkdir()
    (bundled / "cpu_quick.yaml").write_text("a: 1\n")
    own = tmp_path / "own.yaml"
    own.write_text("a: 2\n")
    assert find_config("cpu_quick", bundled) == bundled / "cpu_quick.yaml"
    assert find_config("cpu_quick.yaml", bundled) == bundled / "cpu_quick.yaml"
    assert find_config(own, bundled) == own
    with pytest.raises(ConfigError, match="bundled: cpu_quick"):
        find_config("nope", bundled)
    with pytest.raises(ConfigError, match="no such config"):
        find_config(tmp_path / "sub" / "cpu_quick.yaml", bundled)
