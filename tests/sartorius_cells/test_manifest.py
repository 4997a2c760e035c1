"""Ensemble manifests: YAML / JSON round trip, validation, bundled set-up files."""

from pathlib import Path

import pytest

from ensemblab.ensemble.manifest import Manifest, Member, load_manifest, save_manifest
from ensemblab.errors import ConfigError, DataError

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
    bad.write_text("name: x\nsetup: consensus\nmembers: [{name: a, kind: yolox, colour: 1}]\n")
    with pytest.raises(DataError, match="bad member entry"):
        load_manifest(bad)


@pytest.mark.parametrize("name", ["setup2_mask_vote", "setup2_mask_vote_cpu_quick",
                                  "setup3_consensus", "setup3_consensus_cpu_quick"])
def test_bundled_setup_manifests_load(name):
    m = load_manifest(CONFIGS / f"{name}.yaml")
    assert m.of_kind("maskrcnn")
    if name.startswith("setup3"):
        assert {x.kind for x in m.members} == {"yolox", "maskrcnn", "upernet_crop",
                                               "upernet_full"}
