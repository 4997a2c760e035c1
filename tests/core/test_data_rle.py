"""Kaggle RLE / COCO RLE codecs: hand-computed cases, round-trip properties, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco_mask

from ensemblab.data.rle import (
    coco_rle_to_kaggle,
    coco_rle_to_mask,
    instance_map_to_masks,
    instance_map_to_rles,
    kaggle_to_coco_rle,
    mask_to_coco_rle,
    masks_to_instance_map,
    rle_decode,
    rle_encode,
)
from ensemblab.errors import DataError

# 3x4 mask, pixels numbered row-major from 1:   1  2  3  4 / 5  6  7  8 / 9 10 11 12
HAND_MASK = np.array([[0, 1, 1, 0],
                      [0, 0, 0, 1],
                      [1, 1, 0, 0]], dtype=bool)
HAND_RLE = "2 2 8 3"  # pixels 2-3, then 8, 9, 10 (a run wraps from row 1 into row 2)


def test_encode_hand_case():
    assert rle_encode(HAND_MASK) == HAND_RLE


def test_decode_hand_case():
    np.testing.assert_array_equal(rle_decode(HAND_RLE, (3, 4)), HAND_MASK)


def test_single_pixel_corners_and_full_and_empty():
    m = np.zeros((3, 4), bool)
    m[0, 0] = m[2, 3] = True
    assert rle_encode(m) == "1 1 12 1"
    assert rle_encode(np.ones((3, 4), bool)) == "1 12"
    assert rle_encode(np.zeros((3, 4), bool)) == ""
    assert not rle_decode("", (3, 4)).any()


def test_encode_accepts_non_contiguous_and_int_masks():
    big = np.zeros((6, 8), np.uint8)
    big[::2, ::2] = HAND_MASK
    assert rle_encode(big[::2, ::2]) == HAND_RLE
    assert rle_encode(HAND_MASK.T.copy().T) == HAND_RLE


def test_coco_conversion_hand_case():
    coco = kaggle_to_coco_rle(HAND_RLE, (3, 4))
    assert coco["size"] == [3, 4]
    # Column-major runs (bg, fg, ...): column 0 = 0,0,1 ; column 1 = 1,0,1 ; ...
    flat_f = HAND_MASK.ravel(order="F")
    expected = coco_mask.encode(np.asfortranarray(HAND_MASK.astype(np.uint8)))
    assert coco["counts"] == expected["counts"].decode()
    np.testing.assert_array_equal(coco_rle_to_mask(coco).ravel(order="F"), flat_f)
    assert coco_rle_to_kaggle(coco) == HAND_RLE
    # uncompressed COCO counts: 2 bg, 1 fg, 0 bg... written out by hand in column order
    # F-order pixels: 0 0 1 | 1 0 1 | 1 0 0 | 0 1 0
    unc = {"size": [3, 4], "counts": [2, 2, 1, 2, 3, 1, 1]}
    assert coco_rle_to_kaggle(unc) == HAND_RLE


masks_2d = arrays(np.bool_, st.tuples(st.integers(1, 9), st.integers(1, 9)))


@settings(max_examples=150, deadline=None)
@given(masks_2d)
def test_roundtrip_encode_decode(mask):
    rle = rle_encode(mask)
    np.testing.assert_array_equal(rle_decode(rle, mask.shape), mask)
    # reference: runs of the row-major flattening
    idx = np.flatnonzero(mask.ravel()) + 1
    if idx.size:
        assert int(rle.split()[0]) == idx[0]
        assert sum(int(v) for v in rle.split()[1::2]) == idx.size


@settings(max_examples=100, deadline=None)
@given(masks_2d)
def test_roundtrip_kaggle_coco(mask):
    rle = rle_encode(mask)
    coco = kaggle_to_coco_rle(rle, mask.shape)
    np.testing.assert_array_equal(coco_mask.decode(
        {"size": coco["size"], "counts": coco["counts"].encode()}).astype(bool), mask)
    assert coco_rle_to_kaggle(coco) == rle
    assert mask_to_coco_rle(mask) == coco


@settings(max_examples=60, deadline=None)
@given(arrays(np.int32, st.tuples(st.integers(1, 8), st.integers(1, 8)),
              elements=st.integers(0, 4)))
def test_instance_map_roundtrips(idmap):
    masks, ids = instance_map_to_masks(idmap)
    assert list(ids) == sorted(set(idmap.ravel().tolist()) - {0})
    rles, ids2 = instance_map_to_rles(idmap)
    np.testing.assert_array_equal(ids, ids2)
    assert rles == [rle_encode(m) for m in masks]
    relabelled = masks_to_instance_map(masks)
    np.testing.assert_array_equal(relabelled > 0, idmap > 0)
    for k, i in enumerate(ids):
        np.testing.assert_array_equal(relabelled == k + 1, idmap == i)


def test_masks_to_instance_map_overlap_goes_to_earliest():
    a = np.zeros((2, 3), bool)
    b = np.zeros((2, 3), bool)
    a[0, :2] = True
    b[0, 1:] = True
    b[1, 2] = True
    idmap = masks_to_instance_map(np.stack([a, b]))
    assert idmap.dtype == np.int32
    np.testing.assert_array_equal(idmap, [[1, 1, 2], [0, 0, 2]])
    assert masks_to_instance_map(np.zeros((0, 2, 3), bool)).shape == (2, 3)


def test_instance_map_to_rles_empty():
    rles, ids = instance_map_to_rles(np.zeros((3, 3), np.uint8))
    assert rles == [] and ids.size == 0


@pytest.mark.parametrize("rle, problem", [
    ("2 2 8", "odd number of tokens (3)"),
    ("2 2 x 1", "token 'x' is not an integer"),
    ("2 2 8.5 1", "token '8.5' is not an integer"),
    ("2 2 99999999999999999999 1", "token '99999999999999999999' is not an integer"),
    ("11 3", "runs past the image end"),
    ("13 1", "runs past the image end"),
    ("0 2", "start 0 < 1"),
    ("2 0", "run length 0 < 1"),
    ("8 1 2 2", "RLE runs are unsorted"),
    ("2 3 4 1", "RLE runs are overlapping"),
])
def test_decode_validation_errors(rle, problem):
    with pytest.raises(DataError) as err:
        rle_decode(rle, (3, 4), source="train.csv line 7")
    msg = str(err.value)
    assert msg.startswith("train.csv line 7: ")
    assert problem in msg
    assert "\n" not in msg


def test_decode_adjacent_runs_allowed():
    np.testing.assert_array_equal(rle_decode("2 1 3 1", (3, 4)), rle_decode("2 2", (3, 4)))
