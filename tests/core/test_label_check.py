"""Validation / test label values against the training masks: hand-built counts and messages."""

import numpy as np
import pytest

from ensemblab.data.images import read_label_png, write_png
from ensemblab.data.label_check import check_label_values, value_counts
from ensemblab.errors import ConfigError, DataError

CLASSES = ("background", "quartz", "galena")


def test_value_counts_of_uint8_and_wider_masks_agree():
    mask = np.zeros((8, 8), np.uint8)
    mask[:5, :5] = 2
    mask[7, 7] = 201
    expected = {0: 38, 2: 25, 201: 1}
    assert value_counts(mask) == expected
    assert value_counts(mask.astype(np.int32)) == expected


def test_each_failure_names_file_value_and_pixels():
    def check(counts, allow=()):
        check_label_values([("a.png", {0: 9}), ("b.png", counts)], CLASSES, {0, 1}, allow,
                           "test")

    check({0: 5, 1: 3})
    with pytest.raises(DataError, match=r"^b.png: test label value 201 \(25 px\) is not a class "
                                        r"\(0-2\); the training masks hold 0 background, "
                                        r"1 quartz$"):
        check({0: 5, 201: 25})
    with pytest.raises(DataError, match=r"^b.png: test label value 2 \(galena, 25 px\) never "
                                        r"occurs in the training masks, which hold 0 background, "
                                        r"1 quartz; declare it in data.allow_unseen"):
        check({2: 25})
    check({2: 25}, allow=[2])
    with pytest.raises(DataError, match="201"):  # a value that is no class cannot be declared
        check({201: 25}, allow=[2])
    with pytest.raises(ConfigError, match=r"data.allow_unseen: \[201\] are not class values"):
        check({0: 1}, allow=[201])


def test_label_png_outside_the_allowed_set_gives_pixel_counts(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[2:7, 3:8] = 201
    write_png(tmp_path / "m.png", mask)
    with pytest.raises(DataError, match=r"m.png: label values 201 not in the allowed set "
                                        r"\[0, 1, 2\] \(201: 25 px\)"):
        read_label_png(tmp_path / "m.png", allowed_values=range(3))
