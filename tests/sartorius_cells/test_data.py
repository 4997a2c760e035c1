"""Data layouts, folds, synthetic generator, and the scoring path on perfect predictions."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ensemblab.data.rle import instance_map_to_masks
from ensemblab.ensemble.crops import integer_boxes
from ensemblab.errors import ConfigError, DataError
from ensemblab.metrics.instance import kaggle_score
from ensemblab.projects.sartorius_cells.data import (
    held_out_records,
    load_records,
    make_folds,
    split_records,
)
from ensemblab.projects.sartorius_cells.members.maskrcnn_data import CellTrainDataset
from ensemblab.projects.sartorius_cells.postprocess import PostprocessParams, postprocess
from ensemblab.projects.sartorius_cells.structures import Instances, instances_to_idmap
from ensemblab.synthetic.cells import make_cells_image, write_cells_dataset
from ensemblab.testing import real_data


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_cells_dataset(tmp_path_factory.mktemp("syn") / "d", images_per_type=4,
                               height=96, width=128, instance_folders=True)


def test_synthetic_is_deterministic_and_typed():
    a, ida = make_cells_image(3, "shsy5y", 130, 176)
    b, idb = make_cells_image(3, "shsy5y", 130, 176)
    assert (a == b).all() and (ida == idb).all() and a.dtype == np.uint8
    counts = {t: make_cells_image(0, t)[1].max() for t in ("cort", "shsy5y", "astro")}
    assert counts["shsy5y"] > 5 * counts["cort"] > 5 * counts["astro"] / 2
    _, dense = make_cells_image(1, "shsy5y", n_cells=800)
    assert dense.max() == 800
    image, ids = make_cells_image(0, "cort")
    assert image[ids > 0].mean() > image[ids == 0].mean() + 30  # cells are visible


def test_layouts_agree(dataset):
    kaggle = sorted(load_records(dataset), key=lambda r: r.image_id)
    folders = sorted(load_records(dataset / "instances"), key=lambda r: r.image_id)
    assert [r.image_id for r in kaggle] == [r.image_id for r in folders]
    for k, f in zip(kaggle, folders):
        assert (k.load_idmap() > 0).sum() == (f.load_idmap() > 0).sum()
        assert (k.load_image() == f.load_image()).all()
    assert kaggle[0].load_masks().shape[1:] == (96, 128)


def test_folds_grouped_and_stratified(dataset):
    records = load_records(dataset)
    folds = make_folds(records, k=2)
    for group in {r.group for r in records}:
        assert len({f for r, f in zip(records, folds) if r.group == group}) == 1
    for fold in (0, 1):  # every cell type on both sides
        assert {r.cell_type for r, f in zip(records, folds) if f == fold} == \
            {"shsy5y", "astro", "cort"}
    train, val = split_records(records, {"val_ids": [records[0].image_id]})
    assert len(val) == 1 and len(train) == len(records) - 1


def test_held_out_images_are_in_no_split(dataset):
    records = load_records(dataset)
    ids = [r.image_id for r in records]
    held = [ids[1], ids[2]]
    for split in ({"val_ids": [ids[0]], "test_ids": held},
                  {"val_ids": [], "k": 2, "fold": 0, "seed": 0, "test_ids": held}):
        train, val = split_records(records, split)
        assert [r.image_id for r in held_out_records(records, split)] == held
        assert not {r.image_id for r in train + val} & set(held)
        assert len(train) + len(val) == len(records) - 2
    with pytest.raises(ConfigError, match="also in split.val_ids"):
        split_records(records, {"val_ids": [ids[1]], "test_ids": held})
    with pytest.raises(ConfigError, match="test_ids not in the dataset"):
        held_out_records(records, {"val_ids": [], "test_ids": ["nope"]})


def test_missing_image_is_a_data_error(dataset, tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text((dataset / "train.csv").read_text())
    with pytest.raises(DataError, match="has no file"):
        load_records(tmp_path)


def test_training_targets(dataset):
    records = load_records(dataset)
    ds = CellTrainDataset(records, ["astro", "cort", "shsy5y"], size=64, train=True, crop=48)
    image, target = ds[0]
    assert image.shape[0] == 1 and max(image.shape[1:]) <= 48
    assert target["masks"].shape[0] == target["boxes"].shape[0] == target["labels"].shape[0]
    assert (target["labels"] == 3).all()  # shsy5y is the third class


def test_perfect_predictions_score_one(dataset):
    rec = load_records(dataset)[-1]
    gt = rec.load_idmap()
    masks, _ = instance_map_to_masks(gt)
    boxes = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                      for ys, xs in (np.nonzero(m) for m in masks)], np.float32)
    crop_boxes = integer_boxes(boxes, *gt.shape)
    crops = [m[y0:y1, x0:x1].astype(np.float32) for m, (x0, y0, x1, y1) in zip(masks, crop_boxes)]
    inst = Instances(boxes, np.full(len(masks), 0.9, np.float32), np.ones(len(masks), np.int64),
                     crops, crop_boxes, *gt.shape)
    out = postprocess(inst, PostprocessParams(min_area=0, nms_iou=0.9, mask_nms_iou=0.9))
    assert kaggle_score(instances_to_idmap(out), gt) == pytest.approx(1.0)


@pytest.mark.realdata
def test_usiigaci_layout():
    records = load_records(real_data("cells/usiigaci"))
    assert len(records) == 35 and records[0].image_id == "set1"
    assert {r.image_path.name for r in records} == {"phase.png", "raw.tif"}
    image = records[-1].load_image()  # raw.tif, uint16 -> uint8
    assert image.dtype == np.uint8 and image.shape == (1022, 1024)


def test_kaggle_to_coco_script(dataset, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "prepare_sartorius_coco", Path(__file__).parents[2] / "datasets" /
        "prepare_sartorius_coco.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = script.convert(Path(dataset).resolve(), tmp_path / "coco.json", folds=2)
    coco = {r.image_id: r for r in load_records(out)}
    for rec in load_records(dataset):
        other = coco[rec.image_id]
        assert other.cell_type == rec.cell_type and other.group == rec.group
        assert (other.load_masks() == rec.load_masks()).all()  # row- vs column-major handled


def test_list_images_of_one_instance_folder_skips_its_label_pngs(tmp_path):
    from ensemblab.data.images import write_png
    from ensemblab.projects.sartorius_cells.data import list_images

    folder = tmp_path / "images" / "set10"
    folder.mkdir(parents=True)
    for name in ("phase.png", "instances_ids.png", "labeled.png"):
        write_png(folder / name, np.zeros((4, 5), np.uint8))
    assert list_images(folder) == [("set10", folder / "phase.png")]
    assert list_images(tmp_path) == [("set10", folder / "phase.png")]
