"""End to end on tiny synthetic cells: train the four members briefly through the CLI, fit and
score the three set-ups with ``ensemble``, and write a validated ``submit --manifest``."""

import json

import pytest
import yaml

from ensemblab.cli import main
from ensemblab.ensemble.manifest import Manifest, Member, load_manifest, save_manifest
from ensemblab.ensemble.submission import validate_submission
from ensemblab.synthetic.cells import write_cells_dataset

SPLIT = "data.split={val_ids: [cort_005_001, astro_005_001]}"
MEMBERS = {
    "maskrcnn": ["cpu_quick", "model.image_size=128", "train.epochs=1", "train.val_every=1"],
    "yolox": ["yolox_cpu_quick", "train.epochs=1", "train.repeats=1", "train.sizes=[96,128]",
              "predict.size=128", "train.val_every=1"],
    "upernet_full": ["upernet_full_cpu_quick", "model.size=128", "train.crop=64",
                     "train.epochs=1", "train.samples_per_epoch=4", "train.val_every=1"],
    "upernet_crop": ["upernet_crop_cpu_quick", "model.crop=32", "train.epochs=1",
                     "train.samples_per_epoch=32", "train.val_every=1"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    data = write_cells_dataset(root / "cells", images_per_type=2, seed=5, height=128,
                               width=160, cell_types=("cort", "astro"))
    for name, (config, *overrides) in MEMBERS.items():
        assert main(["sartorius_cells", "train", "--config", config, "--data", str(data),
                     "--out", str(root / name), "--device", "cpu", SPLIT, *overrides]) == 0
    members = [Member("yolox", "yolox", str(root / "yolox"), mask_weight=0.0,
                      flips=["none", "h"]),
               Member("maskrcnn", "maskrcnn", str(root / "maskrcnn")),
               Member("upernet_crop", "upernet_crop", str(root / "upernet_crop"), box_weight=0.0),
               Member("upernet_full", "upernet_full", str(root / "upernet_full"), box_weight=0.0)]
    manifest = Manifest("tiny", "consensus", members,
                        fusion={"iou_thr": 0.55, "skip_box_thr": 0.01,
                                "search": {"score_thresh": [0.0, 0.1], "mask_thresh": [0.5]}},
                        thresholds={"default": {"score_thresh": 0.0, "min_area": 4}})
    return root, data, save_manifest(manifest, root / "manifest.yaml")


def test_ensemble_scores_three_setups_and_fits_the_manifest(trained):
    root, data, manifest = trained
    out = root / "ens_out"
    assert main(["sartorius_cells", "ensemble", "--manifest", str(manifest), "--data", str(data),
                 "--out", str(out), "--device", "cpu"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    for entry in ("setup1_nms", "setup2_mask_vote", "setup3_consensus", "yolox_boxes",
                  "maskrcnn_boxes", "upernet_full_alone"):
        assert entry in scores
    s3 = scores["setup3_consensus"]
    assert 0.0 <= s3["kaggle_fit"] <= 1.0 and set(s3["per_type"]) == {"cort", "astro"}
    assert set(s3["weights"]) == {"maskrcnn", "upernet_crop", "upernet_full"}
    assert abs(sum(s3["weights"].values()) - 1.0) < 1e-6
    fitted = load_manifest(out / "manifest_fitted.yaml")
    assert set(fitted.thresholds["per_type"]) == {"cort", "astro"}
    assert (out / "scores.csv").read_text().startswith("entry,kaggle_fit")
    assert any((out / "overlays").glob("*_consensus.png"))
    assert yaml.safe_load((out / "manifest_fitted.yaml").read_text())["setup"] == "consensus"


@pytest.mark.parametrize("setup", ["consensus", "mask_vote", "nms"])
def test_submission_from_the_ensemble_validates(trained, setup):
    root, data, manifest = trained
    m = load_manifest(manifest)
    m.setup = setup
    path = save_manifest(m, root / f"manifest_{setup}.yaml")
    csv = root / f"submission_{setup}.csv"
    assert main(["sartorius_cells", "submit", "--manifest", str(path), "--images",
                 str(data / "train"), "--out", str(csv), "--device", "cpu"]) == 0
    sizes = {p.stem: (128, 160) for p in (data / "train").glob("*.png")}
    assert validate_submission(csv, sizes) == []
