"""COCO instance JSON: validation errors, polygon/RLE rasterisation, write/read round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ensemblab.data.coco import (
    coco_annotation_masks,
    group_annotations,
    mask_annotation,
    read_coco_instances,
    write_coco_instances,
)
from ensemblab.data.rle import kaggle_to_coco_rle, rle_decode
from ensemblab.errors import DataError

IMAGES = [{"id": 1, "width": 4, "height": 3, "file_name": "a.png"},
          {"id": 2, "width": 5, "height": 5, "file_name": "b.png"}]
CATEGORIES = [{"id": 1, "name": "cell"}, {"id": 2, "name": "debris"}]


def _square_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def test_round_trip_masks_polygon_and_uncompressed(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((3, 3, 4)) > 0.5
    anns = [mask_annotation(m, i + 1, 1, 1, score=0.5) for i, m in enumerate(masks)]
    anns.append({"id": 10, "image_id": 2, "category_id": 2, "iscrowd": 0,
                 "segmentation": _square_polygon(1, 1, 4, 4)})
    anns.append({"id": 11, "image_id": 2, "category_id": 1, "iscrowd": 0,
                 "segmentation": {"size": [5, 5], "counts": [6, 2, 17]}})
    path = tmp_path / "out" / "instances.json"
    write_coco_instances(path, IMAGES, anns, CATEGORIES)
    coco = read_coco_instances(path)
    assert coco["annotations"][0]["score"] == 0.5
    np.testing.assert_array_equal(coco_annotation_masks(coco, 1), masks)
    assert coco["annotations"][0]["area"] == float(masks[0].sum())
    got = coco_annotation_masks(coco, 2, group_annotations(coco)[2])
    assert got.shape == (2, 5, 5)
    # pycocotools rasterises the polygon (1,1)-(4,4) to pixel rows/cols 1..3
    assert got[0].sum() == 9 and got[0][1:4, 1:4].all()
    # uncompressed counts are column-major: 6 background, then (1,1),(2,1)
    assert got[1].sum() == 2 and got[1][1, 1] and got[1][2, 1]
    assert len(group_annotations(coco)[1]) == 3


def test_kaggle_rle_segmentation_matches_kaggle_decode(tmp_path):
    rle = "2 2 8 3"
    ann = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": kaggle_to_coco_rle(rle,
                                                                                        (3, 4))}
    write_coco_instances(tmp_path / "k.json", IMAGES, [ann], CATEGORIES)
    masks = coco_annotation_masks(read_coco_instances(tmp_path / "k.json"), 1)
    np.testing.assert_array_equal(masks[0], rle_decode(rle, (3, 4)))


def _coco(**changes):
    coco = {"images": [dict(i) for i in IMAGES], "categories": list(CATEGORIES),
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                             "segmentation": _square_polygon(0, 0, 2, 2)}]}
    coco.update(changes)
    return coco


@pytest.mark.parametrize("coco, problem", [
    (_coco(images=None), "missing list 'images'"),
    (_coco(images=[{"id": 1, "width": 4, "height": 3}]), "images[0]: missing key 'file_name'"),
    (_coco(images=[IMAGES[0], IMAGES[0]]), "images[1]: duplicate image id 1"),
    (_coco(images=[dict(IMAGES[0], width=0)]), "width/height must be positive"),
    (_coco(annotations=[{"id": 1, "image_id": 9, "category_id": 1, "segmentation": []}]),
     "annotations[0] (id 1): image_id 9 not in images"),
    (_coco(annotations=[{"id": 1, "image_id": 1, "category_id": 7,
                         "segmentation": [[0, 0, 1, 0, 1, 1]]}]), "category_id 7 not in"),
    (_coco(annotations=[{"id": 1, "image_id": 1, "category_id": 1}]), "missing key 'segm"),
    (_coco(annotations=[{"id": 1, "image_id": 1, "category_id": 1,
                         "segmentation": [[0, 0, 1]]}]), "even number (>= 6)"),
    (_coco(annotations=[{"id": 1, "image_id": 1, "category_id": 1,
                         "segmentation": {"size": [4, 4], "counts": "x"}}]),
     "RLE size [4, 4] != image size [3, 4]"),
    (_coco(annotations=[{"id": 1, "image_id": 1, "category_id": 1,
                         "segmentation": {"size": [3, 4], "counts": [5, 2]}}]),
     "counts sum to 7, not 12"),
    (_coco(categories=[{"id": 1}]), "categories[0]: needs 'id' and 'name'"),
])
def test_validation_errors(tmp_path, coco, problem):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(DataError) as err:
        read_coco_instances(path)
    assert str(err.value).startswith(f"{path}: ")
    assert problem in str(err.value)


def test_invalid_json_and_write_refuses_bad_dict(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON"):
        read_coco_instances(tmp_path / "x.json")
    bad = [{"id": 1, "image_id": 5, "category_id": 1, "segmentation": _square_polygon(0, 0, 1, 1)}]
    with pytest.raises(DataError, match="image_id 5 not in images"):
        write_coco_instances(tmp_path / "y.json", IMAGES, bad, CATEGORIES)
    assert not (tmp_path / "y.json").exists()
