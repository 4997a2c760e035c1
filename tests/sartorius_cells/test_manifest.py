"""Ensemble manifests: YAML / JSON round trip, validation against the member registry, and the
bundled manifests and member configs."""

import shlex
from pathlib import Path

import pytest

from ensemblab.config import load_config
from ensemblab.ensemble.manifest import (
    FUSION,
    Manifest,
    Member,
    load_manifest,
    save_manifest,
)
from ensemblab.errors import ConfigError, DataError
from ensemblab.projects.sartorius_cells.commands import resolve_config
from ensemblab.projects.sartorius_cells.ensemble.consensus import check_manifest, read_manifest
from ensemblab.projects.sartorius_cells.members import MEMBERS

CONFIGS = Path(__file__).resolve().parents[2] / "projects" / "sartorius_cells" / "configs"


def _manifest() -> Manifest:
    return Manifest(
        name="t", setup="consensus",
        members=[Member("yolox", "yolox", "runs/y", box_weight=0.6, mask_weight=0.0,
                        flips=["none", "h"]),
                 Member("mrcnn", "maskrcnn", "/abs/m", box_weight=0.4, mask_weight=0.5),
                 Member("full", "upernet_full", "runs/u", box_weight=0.0, mask_weight=0.25)],
        fusion={"iou_thr": 0.5, "search": {"score_thresh": [0.2, 0.4]}},
        thresholds={"default": {"score_thresh": 0.3},
                    "per_type": {"shsy5y": {"score_thresh": 0.2, "min_area": 12}}})


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_manifest_round_trip(tmp_path, suffix):
    m = _manifest()
    path = save_manifest(m, tmp_path / f"ens{suffix}")
    back = load_manifest(path)
    assert back.to_dict() == m.to_dict()
    assert back.run_path(back.members[1]) == Path("/abs/m")
    assert back.of_kind("upernet_full")[0].mask_weight == 0.25


def test_manifest_rejects_bad_entries(tmp_path):
    with pytest.raises(ConfigError, match="kind"):
        Manifest("t", "consensus", [Member("a", "detr", "r")])
    with pytest.raises(ConfigError, match="flips"):
        Manifest("t", "consensus", [Member("a", "yolox", "r", flips=["diag"])])
    with pytest.raises(ConfigError, match="unique"):
        Manifest("t", "consensus", [Member("a", "yolox", "r"), Member("a", "maskrcnn", "r")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsetup: consensus\n")
    with pytest.raises(DataError, match="bad.yaml: missing key 'members'"):
        load_manifest(bad)
    bad.write_text("name: x\nsetup: consensus\nmembers: [{name: a, kind: yolox}]\n")
    with pytest.raises(DataError, match="bad member entry"):
        load_manifest(bad)


MANIFEST = """name: x
setup: consensus
members: [{name: a, kind: yolox, run: r, box_weight: 1.0}]
fusion: {iou_thr: 0.5, conf_type: max}
thresholds: {default: {score_thresh: 0.3}, per_type: {}}
"""


@pytest.mark.parametrize("written, typo, message", [
    ("setup:", "stup:", "unknown key 'stup' (did you mean setup?); known: name, setup"),
    ("box_weight:", "box_weigth:", "members[0]: unknown key 'box_weigth' (did you mean "
                                   "box_weight?)"),
    ("conf_type:", "conf_tpye:", "fusion: unknown key 'conf_tpye' (did you mean conf_type?)"),
    ("per_type:", "per_typ:", "thresholds: unknown key 'per_typ' (did you mean per_type?)"),
    ("score_thresh:", "score_thres:", "thresholds.default: unknown key(s) score_thres "
                                      "(closest: score_thresh"),
    ("conf_type: max", "conf_type: mx", "fusion: unknown conf_type 'mx' (did you mean max?); "
                                        "known: avg, max, box_and_model_avg, "
                                        "absent_model_aware_avg"),
])
def test_unknown_manifest_keys_and_values_are_one_line_errors(tmp_path, written, typo, message):
    """Top level, members, fusion and thresholds are strict, as configs are: the key (or the
    fusion.conf_type value) and the closest valid one are named on one line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFEST.replace(written, typo))
    with pytest.raises(ConfigError) as info:
        read_manifest(bad)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{bad}: ")
    assert message in str(info.value)


def test_fusion_keys_left_out_come_from_the_one_default_table(tmp_path):
    path = tmp_path / "ens.yaml"
    path.write_text(MANIFEST.replace("fusion: {iou_thr: 0.5, conf_type: max}", "fusion: {}"))
    assert read_manifest(path).fusion == FUSION
    path.write_text(MANIFEST)
    assert read_manifest(path).fusion == {**FUSION, "iou_thr": 0.5, "conf_type": "max"}


@pytest.mark.parametrize("path", sorted((CONFIGS / "ensembles").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_bundled_manifests_name_registered_kinds_and_trainable_configs(path):
    """Each member's ``config`` (a name in configs/members/ + overrides) loads strictly and
    trains the kind the manifest names; set-ups 1-3 all have their members."""
    m = check_manifest(load_manifest(path))
    assert m.of_kind("maskrcnn") and {x.kind for x in m.members} == set(MEMBERS.names())
    for spec in m.members:
        name, *overrides = shlex.split(spec.config)
        cfg = load_config(resolve_config(name), overrides)
        assert cfg["model"]["kind"] == spec.kind, spec


@pytest.mark.parametrize("path", sorted((CONFIGS / "members").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_bundled_member_configs_load_with_a_registered_kind(path):
    cfg = load_config(path)
    assert cfg["model"]["kind"] in MEMBERS
    assert path.stem.split("_")[0] in ("paper", "cpu", "usiigaci")  # <target>_<kind>_<encoder>
    assert cfg["model"]["kind"] in path.stem


def test_unregistered_kind_is_named_with_the_known_ones():
    m = _manifest()
    m.members[0].kind = "detr"  # past the manifest's own check, as a fourth kind would be
    with pytest.raises(ConfigError, match=r"unknown member kind 'detr'.*known: maskrcnn"):
        check_manifest(m, "ens.yaml")


def test_read_manifest_checks_kinds_against_the_registry(tmp_path):
    path = save_manifest(_manifest(), tmp_path / "ens.yaml")
    assert read_manifest(path).kinds == tuple(MEMBERS.names())
    path.write_text(path.read_text().replace("kind: yolox", "kind: detr"))
    with pytest.raises(ConfigError, match=r"ens.yaml: member 'yolox': unknown member kind "
                                          r"'detr'; known: maskrcnn"):
        read_manifest(path)


def test_a_seed_and_overrides_train_every_member_into_the_output_folder(tmp_path):
    import shlex

    from ensemblab.projects.sartorius_cells.commands import (
        load_config,
        member_manifest,
        resolve_config,
        resolve_manifest,
    )
    from ensemblab.projects.sartorius_cells.ensemble.consensus import read_manifest

    base = read_manifest(resolve_manifest("usiigaci_ensemble"))
    fold = "data.split.test_ids=[set1, set6]"
    moved = read_manifest(member_manifest(resolve_manifest("usiigaci_ensemble"), tmp_path, 2,
                                          [fold]))
    assert (tmp_path / "manifest_members.yaml").is_file()
    for before, after in zip(base.members, moved.members, strict=True):
        assert after.run == str(tmp_path / "members" / before.name)
        config, *overrides = shlex.split(after.config)
        assert (config, overrides) == (before.config, ["seed=2", fold])
        cfg = load_config(resolve_config(config), overrides)
        assert cfg["seed"] == 2 and cfg["data"]["split"]["test_ids"] == ["set1", "set6"]
        assert (after.name, after.kind, after.flips) == (before.name, before.kind, before.flips)
    assert moved.fusion == base.fusion and moved.thresholds == base.thresholds


def test_an_override_of_a_key_no_member_has_fails_before_training(tmp_path, capsys):
    from ensemblab.cli import main

    code = main(["sartorius_cells", "ensemble", "--manifest", "usiigaci_ensemble", "--data",
                 str(tmp_path), "--out", str(tmp_path / "out"), "--seed", "0",
                 "data.split.test_idz=[set1]"])
    err = capsys.readouterr().err
    assert code == 2 and "test_idz" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "members").exists()


def test_an_output_folder_keeps_the_overrides_its_members_trained_with(tmp_path):
    from ensemblab.projects.sartorius_cells.commands import member_manifest, resolve_manifest

    manifest = resolve_manifest("usiigaci_ensemble")
    member_manifest(manifest, tmp_path, 0, ["data.split.test_ids=[set1]"])
    member_manifest(manifest, tmp_path, 0, ["data.split.test_ids=[set1]"])  # the same: resumes
    with pytest.raises(ConfigError, match=r"manifest_members.yaml: member 'maskrcnn_lite0' was "
                                          r"trained there with .*test_ids=\[set1\]"):
        member_manifest(manifest, tmp_path, 0, ["data.split.test_ids=[set2]"])


def test_a_finished_member_trained_with_other_settings_is_not_reused(tmp_path, capsys):
    """A member's YAML edited after its run finished (here: fewer epochs) would otherwise be
    scored with the old run under the new settings' name."""
    import yaml

    from ensemblab.cli import main
    from ensemblab.projects.sartorius_cells.commands import (
        load_config,
        member_manifest,
        resolve_config,
        resolve_manifest,
    )
    from ensemblab.projects.sartorius_cells.ensemble.consensus import read_manifest

    manifest = read_manifest(member_manifest(resolve_manifest("usiigaci_ensemble"), tmp_path, 0))
    for m in manifest.members:  # finished runs with the settings the manifest gives
        name, *overrides = m.config.split()
        cfg = load_config(resolve_config(name), overrides)
        cfg["data"]["root"] = str(tmp_path)  # filled in at training: not compared
        if m.name == "upernet_full":
            cfg["train"]["epochs"] += 40
        (tmp_path / m.run).mkdir(parents=True, exist_ok=True)
        (tmp_path / m.run / "config.yaml").write_text(yaml.safe_dump(cfg))
        (tmp_path / m.run / "train_time.json").write_text("{}")
    code = main(["sartorius_cells", "ensemble", "--manifest", "usiigaci_ensemble", "--data",
                 str(tmp_path), "--out", str(tmp_path), "--seed", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1
    assert "member 'upernet_full'" in err and "train.epochs" in err
