"""Property-based tests of the core readers users feed directly: Kaggle RLE CSV, COCO instance
JSON (polygons and COCO RLE) and schema-checked CSV tables.

Two properties per reader:

* random valid inputs round-trip exactly (encode -> write -> read -> decode);
* a truncated file, flipped bytes or a value of the wrong type either still reads (a flip may
  leave a valid file) or fails with one :class:`~ensemblab.errors.EnsemblabError` line naming
  the file, never another exception type.

Cases are tiny (images of 8..24 pixels a side, a few rows) and derandomized so CI is
reproducible and all fuzz tests run in seconds.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ensemblab.data.coco import (
    coco_annotation_masks,
    group_annotations,
    mask_annotation,
    read_coco_instances,
    write_coco_instances,
)
from ensemblab.data.kaggle import KaggleImage, read_kaggle_csv, write_kaggle_csv
from ensemblab.data.rle import (
    coco_rle_to_mask,
    instance_map_to_rles,
    mask_to_coco_rle,
    masks_to_instance_map,
    rle_decode,
    rle_encode,
)
from ensemblab.data.tables import read_table
from ensemblab.testing import corruptions, json_mutations, read_or_one_line_error

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WRONG_TYPES = settings(FUZZ, max_examples=100)
ROUND_TRIP = settings(FUZZ, max_examples=20)
CELL_TYPES = ("shsy5y", "astro", "cort")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _fresh(work: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=work))


# --------------------------------------------------------------------------- generators
@st.composite
def mask_stacks(draw, min_n: int = 0, max_n: int = 4, nonempty: bool = True) -> np.ndarray:
    """[N, H, W] bool masks, 8..24 pixels a side: random speckle or filled rectangles."""
    h, w = draw(st.integers(8, 24)), draw(st.integers(8, 24))
    n = draw(st.integers(min_n, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        if draw(st.booleans()):
            masks[i] = rng.random((h, w)) < draw(st.sampled_from((0.05, 0.5, 0.95)))
        else:
            r0, c0 = rng.integers(0, h), rng.integers(0, w)
            masks[i, r0:rng.integers(r0 + 1, h + 1), c0:rng.integers(c0 + 1, w + 1)] = True
        if nonempty and not masks[i].any():
            masks[i, rng.integers(0, h), rng.integers(0, w)] = True
    return masks


image_ids = st.text("abcdef0123456789_-", min_size=1, max_size=8)


@st.composite
def kaggle_images(draw) -> dict[str, tuple[str, np.ndarray]]:
    """``{image_id: (cell_type, masks [N, H, W])}`` for one to three images."""
    ids = draw(st.lists(image_ids, min_size=1, max_size=3, unique=True))
    return {i: (draw(st.sampled_from(CELL_TYPES)), draw(mask_stacks())) for i in ids}


def _kaggle_csv(path: Path, images: dict[str, tuple[str, np.ndarray]]) -> Path:
    write_kaggle_csv(path, [KaggleImage(i, m.shape[1], m.shape[2], t, [rle_encode(x) for x in m])
                            for i, (t, m) in images.items()])
    return path


def _read_all_kaggle(path: Path) -> dict[str, np.ndarray]:
    return {i: img.masks() for i, img in read_kaggle_csv(path).items()}


# --------------------------------------------------------------------------- Kaggle RLE
@ROUND_TRIP
@given(masks=mask_stacks(min_n=1, nonempty=False))
def test_kaggle_rle_round_trips(masks):
    h, w = masks.shape[1:]
    for mask in masks:
        np.testing.assert_array_equal(rle_decode(rle_encode(mask), (h, w)), mask)
    idmap = masks_to_instance_map(masks)
    rles, ids = instance_map_to_rles(idmap)
    for rle, i in zip(rles, ids):
        np.testing.assert_array_equal(rle_decode(rle, (h, w)), idmap == i)


RLE_TOKENS = st.one_of(st.integers(-3, 700).map(str),
                       st.sampled_from(["", "x", "1.5", "1e3", "-0", "0x10", "99999999999999999999",
                                        "9223372036854775807", "9223372036854775806"]))


@FUZZ
@given(tokens=st.lists(RLE_TOKENS, max_size=6), h=st.integers(1, 24), w=st.integers(1, 24))
@example(tokens=["9223372036854775807"] * 2, h=8, w=8)  # start + length overflows int64
@example(tokens=["9223372036854775806", "9223372036854775806"], h=8, w=8)
@example(tokens=["1", "99999999999999999999"], h=8, w=8)
def test_any_rle_text_decodes_or_fails_in_one_line(tokens, h, w):
    mask = read_or_one_line_error(lambda: rle_decode(" ".join(tokens), (h, w), "t.csv line 2"),
                                  "t.csv line 2")
    if mask is not None:
        assert mask.shape == (h, w)
        np.testing.assert_array_equal(rle_decode(rle_encode(mask), (h, w)), mask)


@ROUND_TRIP
@given(images=kaggle_images())
def test_kaggle_csv_round_trips(work, images):
    path = _kaggle_csv(_fresh(work) / "train.csv", images)
    read = read_kaggle_csv(path)
    assert list(read) == list(images)
    for image_id, (cell_type, masks) in images.items():
        assert read[image_id].cell_type == cell_type
        np.testing.assert_array_equal(read[image_id].masks(), masks)


KAGGLE_CELLS = st.sampled_from(["", "x", "0", "-4", "1.5", "8 8 8", "0 3", "1 -2", "5 2 1 2",
                                "1 100000", "9223372036854775807 9223372036854775807",
                                "99999999999999999999 1", "1,2", '"', "\x00", "é"])


@st.composite
def kaggle_bad_cells(draw) -> tuple[dict, int, str, str]:
    images = draw(kaggle_images())
    rows = sum(max(len(m), 1) for _, m in images.values())
    return (images, draw(st.integers(0, rows - 1)),
            draw(st.sampled_from(["id", "annotation", "width", "height", "cell_type"])),
            draw(KAGGLE_CELLS))


@FUZZ
@given(case=kaggle_bad_cells())
def test_kaggle_csv_with_a_bad_cell_fails_in_one_line(work, case):
    images, row, column, value = case
    path = _kaggle_csv(_fresh(work) / "train.csv", images)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    table.to_csv(path, index=False)
    read_or_one_line_error(lambda: _read_all_kaggle(path), path)


@FUZZ
@given(data=st.data(), images=kaggle_images())
@example(data=None, images={"a": ("astro", np.ones((1, 8, 8), bool))})
def test_corrupt_kaggle_csv_fails_in_one_line(work, data, images):
    path = _kaggle_csv(_fresh(work) / "train.csv", images)
    raw = path.read_bytes()
    # a quote opening the header swallows the whole file into one multi-line column name
    path.write_bytes(b'"' + raw[1:] if data is None else data.draw(corruptions(raw)))
    read_or_one_line_error(lambda: _read_all_kaggle(path), path)


# --------------------------------------------------------------------------- COCO JSON / RLE
@st.composite
def coco_dicts(draw, polygons: bool = True) -> tuple[dict, dict[int, np.ndarray]]:
    """A valid COCO instance dict (RLE masks, optionally a polygon) and its masks per image."""
    n_images = draw(st.integers(1, 3))
    images, annotations, masks = [], [], {}
    categories = [{"id": c + 1, "name": f"c{c}"} for c in range(draw(st.integers(1, 3)))]
    for image_id in range(1, n_images + 1):
        stack = draw(mask_stacks())
        h, w = stack.shape[1:]
        images.append({"id": image_id, "width": w, "height": h, "file_name": f"{image_id}.png"})
        for mask in stack:
            annotations.append(mask_annotation(mask, len(annotations) + 1, image_id,
                                               draw(st.integers(1, len(categories)))))
        masks[image_id] = stack
    if polygons and draw(st.booleans()):
        image = images[0]
        h, w = image["height"], image["width"]
        poly = [1.0, 1.0, w - 2.0, 1.0, w - 2.0, h - 2.0, 1.0, h - 2.0]
        annotations.append({"id": len(annotations) + 1, "image_id": 1, "category_id": 1,
                            "segmentation": [poly], "iscrowd": 0})
        masks[1] = None  # rasterised by pycocotools: compared with its own decode
    return {"images": images, "annotations": annotations, "categories": categories}, masks


def _write_coco(path: Path, coco: dict) -> Path:
    write_coco_instances(path, coco["images"], coco["annotations"], coco["categories"])
    return path


def _all_coco_masks(path: Path) -> dict:
    coco = read_coco_instances(path)
    groups = group_annotations(coco)
    return {i: coco_annotation_masks(coco, i, anns) for i, anns in groups.items()}


@ROUND_TRIP
@given(case=coco_dicts(polygons=False))
def test_coco_json_round_trips(work, case):
    coco, masks = case
    path = _write_coco(_fresh(work) / "instances.json", coco)
    read = _all_coco_masks(path)
    assert read.keys() == masks.keys()
    for image_id, stack in masks.items():
        np.testing.assert_array_equal(read[image_id], stack)


@ROUND_TRIP
@given(masks=mask_stacks(min_n=1, nonempty=False))
def test_coco_rle_round_trips(masks):
    for mask in masks:
        rle = json.loads(json.dumps(mask_to_coco_rle(mask)))
        np.testing.assert_array_equal(coco_rle_to_mask(rle), mask)


@WRONG_TYPES
@given(data=st.data(), case=coco_dicts())
def test_coco_json_with_wrong_types_fails_in_one_line(work, data, case):
    coco, _ = case
    path = _fresh(work) / "instances.json"
    path.write_text(json.dumps(data.draw(json_mutations(coco))))
    read_or_one_line_error(lambda: _all_coco_masks(path), path)


@FUZZ
@given(data=st.data(), case=coco_dicts())
def test_corrupt_coco_json_fails_in_one_line(work, data, case):
    path = _write_coco(_fresh(work) / "instances.json", case[0])
    path.write_bytes(data.draw(corruptions(path.read_bytes())))
    read_or_one_line_error(lambda: _all_coco_masks(path), path)


@FUZZ
@given(data=st.data(), masks=mask_stacks(min_n=1, max_n=1))
def test_corrupt_coco_rle_counts_fail_in_one_line(work, data, masks):
    """A flipped or cut compressed ``counts`` string never decodes to a wrong-sized mask."""
    h, w = masks.shape[1:]
    ann = mask_annotation(masks[0], 1, 1, 1)
    counts = ann["segmentation"]["counts"].encode("ascii")
    ann["segmentation"]["counts"] = data.draw(corruptions(counts)).decode("latin-1")
    path = _fresh(work) / "instances.json"
    path.write_text(json.dumps({"images": [{"id": 1, "width": w, "height": h,
                                            "file_name": "1.png"}],
                                "annotations": [ann], "categories": [{"id": 1, "name": "c"}]}))
    read = read_or_one_line_error(lambda: _all_coco_masks(path), path)
    if read is not None:
        assert read[1].shape == (1, h, w)
        assert read[1].dtype == bool


# --------------------------------------------------------------------------- CSV tables
SCHEMA = {"name": "str", "count": "int", "score": "float", "flag": "bool", "kind": "str"}
KINDS = ("a", "b", "c")


@st.composite
def tables(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    words = st.text("abcxyz ", min_size=1, max_size=6).map(str.strip).filter(bool)
    return pd.DataFrame({
        "name": draw(st.lists(words, min_size=n, max_size=n)),
        "count": draw(st.lists(st.integers(-10**6, 10**6), min_size=n, max_size=n)),
        "score": draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n)),
        "flag": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "kind": draw(st.lists(st.sampled_from(KINDS), min_size=n, max_size=n)),
    })


def _read_schema_table(path: Path) -> pd.DataFrame:
    return read_table(path, {k: v for k, v in SCHEMA.items() if k != "kind"}, label="kind",
                      allowed_labels=KINDS)


@ROUND_TRIP
@given(table=tables())
def test_table_round_trips(work, table):
    path = _fresh(work) / "table.csv"
    table.to_csv(path, index=False)
    pd.testing.assert_frame_equal(_read_schema_table(path), table, check_dtype=False)


TABLE_CELLS = st.sampled_from(["", "NaN", "abc", "1.5", "1e999", "-", "TRUE", "maybe", "d",
                               '"', "1,2", "\x00"])


@FUZZ
@given(table=tables(), drop=st.booleans(), row=st.integers(0, 5),
       column=st.sampled_from(sorted(SCHEMA)), cell=TABLE_CELLS)
@example(table=pd.DataFrame({"name": ["a"], "count": [1], "score": [0.5], "flag": [True],
                             "kind": ["a"]}),
         drop=False, row=0, column="count", cell="1e999")  # inf is no integer
def test_table_with_a_bad_cell_or_column_fails_in_one_line(work, table, drop, row, column, cell):
    path = _fresh(work) / "table.csv"
    if drop:
        table = table.drop(columns=column)
    else:
        table = table.astype(str)
        table.loc[row % len(table), column] = cell
    table.to_csv(path, index=False)
    read_or_one_line_error(lambda: _read_schema_table(path), path)


@FUZZ
@given(data=st.data(), table=tables())
def test_corrupt_table_fails_in_one_line(work, data, table):
    path = _fresh(work) / "table.csv"
    table.to_csv(path, index=False)
    path.write_bytes(data.draw(corruptions(path.read_bytes())))
    read_or_one_line_error(lambda: _read_schema_table(path), path)
