"""Ensemble manifests accept the registered member kinds (or those their caller names), and an
unknown kind is one line naming the file, the member, the kind and the closest registered one."""

import pytest

from ensemblab.ensemble.manifest import Manifest, Member, load_manifest, save_manifest
from ensemblab.ensemble.members import MEMBERS
from ensemblab.errors import ConfigError
from ensemblab.registry import Registry

MANIFEST = """name: t
setup: consensus
members:
  - {name: a, kind: maskrcnn, run: runs/a}
  - {name: b, kind: cellpose, run: runs/b, mask_weight: 0.5}
"""


def test_default_kinds_are_the_registered_ones_and_reject_others_in_one_line(tmp_path):
    # the installed projects' member kinds register themselves (found through entry points)
    assert {"maskrcnn", "yolox", "upernet_full", "upernet_crop"} <= set(MEMBERS.names())
    path = tmp_path / "ens.yaml"
    path.write_text(MANIFEST)
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: member 'b': unknown member kind 'cellpose'")
    assert message.endswith("; known: " + ", ".join(MEMBERS.names()))
    path.write_text(MANIFEST.replace("cellpose", "upernet_ful"))
    with pytest.raises(ConfigError, match=r"member 'b': unknown member kind 'upernet_ful' "
                                          r"\(did you mean upernet_full"):
        load_manifest(path)


def test_a_newly_registered_kind_is_accepted_with_no_other_edit(tmp_path):
    path = tmp_path / "ens.yaml"
    path.write_text(MANIFEST)
    with MEMBERS.scope():
        MEMBERS.register("cellpose", object())
        m = load_manifest(path)
        assert [x.kind for x in m.members] == ["maskrcnn", "cellpose"]
        assert m.kinds == tuple(MEMBERS.names())
    with pytest.raises(ConfigError, match="unknown member kind 'cellpose'"):
        load_manifest(path)


def test_registered_kinds_are_accepted(tmp_path):
    kinds = Registry("member kind")
    for name in ("maskrcnn", "cellpose"):
        kinds.register(name, object())
    path = tmp_path / "ens.yaml"
    path.write_text(MANIFEST)
    m = load_manifest(path, kinds=kinds.names())
    assert [x.kind for x in m.members] == ["maskrcnn", "cellpose"]
    assert m.kinds == ("cellpose", "maskrcnn")
    # the accepted kinds are not written to the file and a reload needs them again
    again = save_manifest(m, tmp_path / "again.yaml")
    assert "kinds" not in again.read_text()
    assert load_manifest(again, kinds=["maskrcnn", "cellpose"]).to_dict() == m.to_dict()
    with pytest.raises(ConfigError, match="again.yaml: member 'a': unknown member kind"):
        load_manifest(again, kinds=["cellpose"])


def test_kinds_none_accepts_any_kind_and_other_checks_remain(tmp_path):
    path = tmp_path / "ens.yaml"
    path.write_text(MANIFEST)
    assert load_manifest(path, kinds=None).members[1].kind == "cellpose"
    with pytest.raises(ConfigError, match="unknown member kind 'detr'"):
        Manifest("t", "consensus", [Member("a", "detr", "r")])
    assert Manifest("t", "consensus", [Member("a", "detr", "r")], kinds=["detr"]).members
    with pytest.raises(ConfigError, match="flips"):
        Manifest("t", "consensus", [Member("a", "detr", "r", flips=["diag"])], kinds=None)
    path.write_text(MANIFEST.replace("setup: consensus", "setup: vote"))
    with pytest.raises(ConfigError, match="ens.yaml: manifest setup must be one of"):
        load_manifest(path, kinds=None)
