"""Kaggle train.csv reader/writer, including the real Usiigaci sample."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ensemblab.data.kaggle import KaggleImage, read_kaggle_csv, write_kaggle_csv
from ensemblab.data.rle import instance_map_to_rles, rle_decode, rle_to_indices
from ensemblab.errors import DataError
from ensemblab.testing import real_data

HEADER = "id,annotation,width,height,cell_type\n"


def _write(tmp_path, body, header=HEADER):
    path = tmp_path / "train.csv"
    path.write_text(header + body)
    return path


def test_read_groups_rows_and_keeps_overlaps(tmp_path):
    path = _write(tmp_path, "a,2 2 8 3,4,3,astro\n"
                            "b,1 1,4,3,cort\n"
                            "a,3 2,4,3,astro\n")
    images = read_kaggle_csv(path)
    assert list(images) == ["a", "b"]
    a = images["a"]
    assert (a.height, a.width, a.cell_type, a.rles) == (3, 4, "astro", ["2 2 8 3", "3 2"])
    masks = a.masks()
    assert masks.shape == (2, 3, 4) and masks.dtype == bool
    assert masks[0, 0, 2] and masks[1, 0, 2]  # pixel 3 is in both instances
    np.testing.assert_array_equal(a.instance_map(), [[0, 1, 1, 2], [0, 0, 0, 1], [1, 1, 0, 0]])


def test_write_read_roundtrip(tmp_path):
    images = {"x": KaggleImage("x", 3, 4, "shsy5y", ["1 1", "5 3"]),
              "empty": KaggleImage("empty", 2, 2, "astro", [])}
    out = tmp_path / "sub" / "train.csv"
    write_kaggle_csv(out, images)
    back = read_kaggle_csv(out)
    assert list(back) == ["x", "empty"]
    assert back["x"].rles == ["1 1", "5 3"] and back["empty"].rles == []
    assert back["empty"].masks().shape == (0, 2, 2)


@pytest.mark.parametrize("body, header, problem", [
    ("a,1 1,4,3\n", "id,annotation,width,height\n", "missing column(s) cell_type"),
    ("a,1 1 2,4,3,astro\n", HEADER, "train.csv line 2: RLE has an odd number of tokens"),
    ("a,1 1,4,3,astro\na,11 5,4,3,astro\n", HEADER, "train.csv line 3: RLE run 11+5 runs past"),
    ("a,5 1 1 1,4,3,astro\n", HEADER, "line 2: RLE runs are unsorted"),
    ("a,1 1,four,3,astro\n", HEADER, "line 2: column width: 'four' is not an integer"),
    ("a,1 1,4,0,astro\n", HEADER, "line 2: column height: 0 is not positive"),
    ("a,1 1,4,3,astro\na,1 1,5,3,astro\n", HEADER, "line 3: image a size 3x5 differs"),
    ("a,1 1,4,3,astro\na,2 1,4,3,cort\n", HEADER, "line 3: image a cell_type 'cort' differs"),
    ("a,1 1,4\n", HEADER, "line 2: wrong number of fields"),
])
def test_read_errors_name_file_line_and_problem(tmp_path, body, header, problem):
    path = _write(tmp_path, body, header)
    with pytest.raises(DataError) as err:
        read_kaggle_csv(path)
    assert str(path) in str(err.value)
    assert problem in str(err.value)


def test_masks_error_names_line_when_not_validated(tmp_path):
    path = _write(tmp_path, "a,1 1,4,3,astro\na,3 2 1 1,4,3,astro\n")
    images = read_kaggle_csv(path, validate_rles=False)
    with pytest.raises(DataError, match=r"train\.csv line 3: RLE runs are unsorted"):
        images["a"].masks()


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_kaggle_csv(tmp_path / "nope.csv")


@pytest.mark.realdata
def test_usiigaci_rle_csv_reproduces_instance_pngs():
    root = real_data("cells/usiigaci")
    images = read_kaggle_csv(root / "instances_rle.csv")
    assert len(images) == 35
    assert sum(len(img.rles) for img in images.values()) > 2000
    for image_id, img in images.items():
        idmap = np.array(Image.open(root / "images" / image_id / "instances_ids.png"))
        assert idmap.shape == (img.height, img.width)
        rebuilt = np.zeros(idmap.size, np.int64)
        seen = set()
        for k, rle in enumerate(img.rles):
            idx = rle_to_indices(rle, idmap.shape)
            labels = np.unique(idmap.flat[idx])
            assert labels.size == 1 and labels[0] > 0, (image_id, k)
            assert labels[0] not in seen and not rebuilt[idx].any(), (image_id, k)
            seen.add(labels[0])
            rebuilt[idx] = labels[0]
        # every instance of the PNG is exactly one decoded RLE, pixel for pixel
        np.testing.assert_array_equal(rebuilt.reshape(idmap.shape), idmap)
        # and encoding the id map gives back the same RLE strings (as a set)
        assert set(instance_map_to_rles(idmap)[0]) == set(img.rles), image_id
    one = images["set1"]
    masks = one.masks()
    assert masks.shape == (66, 1022, 1024)
    np.testing.assert_array_equal(masks[0], rle_decode(one.rles[0], (1022, 1024)))
