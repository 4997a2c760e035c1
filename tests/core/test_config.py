"""Config loading, inheritance and key=value overrides."""

import pytest
import yaml

from ensemblab.config import apply_overrides, load_config, load_run_config, save_config
from ensemblab.errors import ConfigError

BASE = {"train": {"epochs": 10, "lr": 0.1, "warmup": 1}, "model": {"name": "a", "flags": [0],
                                                                  "weights": None, "extra": {}},
        "seed": 0, "note": "x", "amp": False}


def test_overrides_parse_yaml_scalars():
    cfg = apply_overrides(BASE, ["train.epochs=3", "train.lr=1e-4", "model.name=resunet",
                                 "model.flags=[1, 2]", "seed=7", "note=", "amp=true"])
    assert cfg["train"] == {"epochs": 3, "lr": 1e-4, "warmup": 1}
    assert cfg["model"]["name"] == "resunet" and cfg["model"]["flags"] == [1, 2]
    assert cfg["seed"] == 7 and cfg["note"] == "" and cfg["amp"] is True
    assert BASE["train"]["epochs"] == 10  # the input is not modified


def test_override_of_an_unknown_key_names_it_and_the_closest_keys():
    with pytest.raises(ConfigError) as err:
        apply_overrides(BASE, ["train.epoch=3"], source="cfg/quick.yaml")
    message = str(err.value)
    assert "'train.epoch'" in message and "cfg/quick.yaml" in message
    assert "closest: train.epochs" in message
    with pytest.raises(ConfigError, match=r"valid keys under train: epochs, lr, warmup"):
        apply_overrides(BASE, ["train.zzzzzz=1"])
    with pytest.raises(ConfigError, match="unknown key 'optimizer.lr'"):
        apply_overrides(BASE, ["optimizer.lr=1"])


def test_override_values_are_type_checked():
    assert apply_overrides(BASE, ["train.lr=1"])["train"]["lr"] == 1.0  # int into a float slot
    assert apply_overrides(BASE, ["train.warmup=0.5"])["train"]["warmup"] == 0.5
    assert apply_overrides(BASE, ["train.epochs=4.0"])["train"]["epochs"] == 4
    assert apply_overrides(BASE, ["note=007"])["note"] == "007"  # a string slot keeps the text
    assert apply_overrides(BASE, ["train.epochs=null"])["train"]["epochs"] is None
    # a null base value is an optional slot of any type; an empty mapping is free-form
    assert apply_overrides(BASE, ["model.weights=w.pth"])["model"]["weights"] == "w.pth"
    assert apply_overrides(BASE, ["model.extra.depth=3"])["model"]["extra"] == {"depth": 3}
    for bad, want in [("train.epochs=three", "an integer"), ("amp=1", "a boolean"),
                      ("model.flags=3", "a list"), ("model=resnet", "a mapping"),
                      ("seed=true", "an integer")]:
        with pytest.raises(ConfigError, match=want):
            apply_overrides(BASE, [bad])


def test_base_inheritance_merges_recursively(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 10, lr: 0.1}\nmodel: {name: a}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain: {epochs: 2}\n")
    cfg = load_config(tmp_path / "child.yaml", ["model.name=b"])
    assert cfg == {"train": {"epochs": 2, "lr": 0.1}, "model": {"name": "b"}}


def test_child_config_keys_are_checked_against_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 10, lr: 0.1}\nmodel: {name: a}\n")
    (tmp_path / "typo.yaml").write_text("_base_: base.yaml\ntrain: {epoch: 2}\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'train.epoch' \(closest: "
                                          r"train.epochs"):
        load_config(tmp_path / "typo.yaml")
    (tmp_path / "top.yaml").write_text("_base_: base.yaml\nmodels: {name: b}\n")
    with pytest.raises(ConfigError, match="top.yaml: unknown key 'models' .closest: model"):
        load_config(tmp_path / "top.yaml")
    (tmp_path / "kind.yaml").write_text("_base_: base.yaml\ntrain: {lr: fast}\n")
    with pytest.raises(ConfigError, match="kind.yaml: 'train.lr' must be a number"):
        load_config(tmp_path / "kind.yaml")
    (tmp_path / "deep_base.yaml").write_text("model: {encoder: {depth: 1, width: 2}}\n")
    (tmp_path / "deep.yaml").write_text("_base_: deep_base.yaml\nmodel: {encoder: {dpth: 2}}\n")
    with pytest.raises(ConfigError, match=r"'model.encoder.dpth' \(closest: model.encoder.depth"):
        load_config(tmp_path / "deep.yaml")
    # YAML 1.1 reads 1e-4 as text; a float slot parses it
    (tmp_path / "lr.yaml").write_text("_base_: base.yaml\ntrain: {lr: 1e-4}\n")
    assert load_config(tmp_path / "lr.yaml")["train"]["lr"] == 1e-4
    # a grandchild is checked against the root, and overrides too
    (tmp_path / "grand.yaml").write_text("_base_: lr.yaml\nmodel: {name: c}\n")
    with pytest.raises(ConfigError, match="override 'model.nme=d' of .*grand.yaml"):
        load_config(tmp_path / "grand.yaml", ["model.nme=d"])


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


def test_find_config_looks_in_sub_folders_and_lists_every_name(tmp_path):
    from ensemblab.config import find_config

    bundled = tmp_path / "configs"
    for rel in ("members/cpu_a.yaml", "members/shared.yaml", "ensembles/paper.yaml",
                "ensembles/shared.yaml", "top.yaml"):
        (bundled / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundled / rel).write_text("a: 1\n")
    assert find_config("cpu_a", bundled) == bundled / "members" / "cpu_a.yaml"
    assert find_config("paper.yaml", bundled) == bundled / "ensembles" / "paper.yaml"
    assert find_config("top", bundled) == bundled / "top.yaml"
    assert find_config("ensembles/shared", bundled) == bundled / "ensembles" / "shared.yaml"
    with pytest.raises(ConfigError) as missing:
        find_config("cpu_b", bundled)
    message = str(missing.value)
    assert "\n" not in message and message.startswith("cpu_b: ") and str(bundled) in message
    assert ("bundled: ensembles/paper, ensembles/shared, members/cpu_a, members/shared, top"
            in message)
    with pytest.raises(ConfigError, match="ensembles/shared, members/shared"):
        find_config("shared", bundled)


def test_every_project_resolves_its_bundled_configs_to_a_path():
    from ensemblab.projects.battery_crystal import commands as battery
    from ensemblab.projects.crossattn_vl import commands as crossattn
    from ensemblab.projects.fre_unet import commands as fre
    from ensemblab.projects.mineral_ruel import commands as mineral
    from ensemblab.projects.sartorius_cells import commands as sartorius

    for module in (battery, crossattn, fre, mineral):
        assert module.resolve_config("cpu_quick") == module.CONFIG_DIR / "cpu_quick.yaml"
    member = sartorius.resolve_config("cpu_maskrcnn_r18")
    assert member == sartorius.CONFIG_DIR / "members" / "cpu_maskrcnn_r18.yaml"
    manifest = sartorius.resolve_manifest("paper_ensemble")
    assert manifest == sartorius.CONFIG_DIR / "ensembles" / "paper_ensemble.yaml"
    with pytest.raises(ConfigError, match="cpu_maskrcnn_r18"):
        sartorius.resolve_manifest("cpu_maskrcnn_r18")  # a member config is no manifest


def test_rendered_config_loads_back_and_keeps_the_comments_of_its_chain(tmp_path):
    from ensemblab.config_print import render_config

    (tmp_path / "base.yaml").write_text(
        "train:              # schedule\n  epochs: 10   # passes over the data\n"
        "  lr: 0.1  # Adam step\nname: 'a #1'\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain:\n  lr: 0.5  # faster\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.epochs=2"])
    text = render_config(cfg, tmp_path / "child.yaml")
    assert yaml.safe_load(text) == cfg == {"train": {"epochs": 2, "lr": 0.5}, "name": "a #1"}
    lines = text.splitlines()
    assert lines[1].startswith("train:") and lines[1].endswith("# schedule")
    assert "epochs: 2" in lines[2] and lines[2].endswith("# passes over the data")
    assert "lr: 0.5" in lines[3] and lines[3].endswith("# faster")  # the child's comment wins
