"""The real LumenStone sample loads through the same validated path as the synthetic data."""

import numpy as np
import pytest

from ensemblab.data.images import read_label_png
from ensemblab.projects.mineral_ruel.classes import CLASS_SETS, class_pixel_counts, resolve_classes
from ensemblab.projects.mineral_ruel.data import holdout_split, load_pair, split_pairs
from ensemblab.testing import real_data


@pytest.mark.realdata
def test_lumenstone_layout_holdout_and_scaled_pair():
    root = real_data("mineral/lumenstone")
    train, test = split_pairs(root, "train"), split_pairs(root, "val")
    assert len(train) == 24 and len(test) == 22
    fit, rank = holdout_split(train, 0.2, seed=0)
    assert len(rank) == 5 and not {p[0].name for p in rank} & {p[0].name for p in fit}
    image, mask = load_pair(train[0], len(CLASS_SETS.get("lumenstone")), scale=0.0625)
    assert image.shape == (159, 212, 3) and mask.shape == (159, 212)
    assert mask.dtype == np.uint8 and mask.max() < len(CLASS_SETS.get("lumenstone"))


@pytest.mark.realdata
def test_lumenstone_has_13_listed_classes_of_which_10_occur():
    root = real_data("mineral/lumenstone")
    classes = resolve_classes("lumenstone", root)
    masks = [read_label_png(m, range(len(classes)))
             for split in ("train", "val") for _, m in split_pairs(root, split)]
    counts = class_pixel_counts(masks, len(classes))
    absent = [c for c, n in zip(classes, counts) if n == 0]
    assert len(classes) == 13 and absent == ["arsenopyrite", "hematite", "covellite"]
