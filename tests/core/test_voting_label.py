"""Weighted / plurality voting (RUEL, mineral paper eq. 5) against hand-computed maps."""

import numpy as np
import pytest
import torch

from ensemblab.voting import plurality_vote, rank_weights, reference_weighted_vote, weighted_vote

# 3 learners (best first), 4 pixels
MAPS = np.array([[[0, 1, 2, 0]],
                 [[1, 1, 0, 2]],
                 [[1, 2, 1, 1]]])


def test_rank_weights_eq5():
    # w_i = (n - i) / sum_j (n - j): n = 3 -> (3, 2, 1) / 6; n = 4 -> (4, 3, 2, 1) / 10
    assert rank_weights(3) == pytest.approx([3 / 6, 2 / 6, 1 / 6])
    assert rank_weights(4) == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert rank_weights(1) == pytest.approx([1.0])
    with pytest.raises(ValueError):
        rank_weights(0)


def test_weighted_vote_by_hand():
    # px0: class 0 = 3/6, class 1 = 2/6 + 1/6 = 3/6 -> tie -> learner 0 (highest weight) -> 0
    # px1: class 1 = 3/6 + 2/6 -> 1
    # px2: class 2 = 3/6 > class 0 = 2/6 > class 1 = 1/6 -> 2
    # px3: class 0 = 3/6 > 2 = 2/6 > 1 = 1/6 -> 0
    assert weighted_vote(MAPS, rank_weights(3)).tolist() == [[0, 1, 2, 0]]


def test_plurality_vote_by_hand():
    # px0: class 1 has 2 votes -> 1; px1: 1 (2 votes); px2: 1 vote each -> earliest map -> 2
    # px3: 1 vote each -> earliest -> 0
    assert plurality_vote(MAPS).tolist() == [[1, 1, 2, 0]]
    assert weighted_vote(MAPS).tolist() == [[1, 1, 2, 0]]


def test_ties_follow_weight_then_order():
    labels = np.array([0, 1, 2]).reshape(3, 1, 1)
    # weights (1, 2, 2): classes 1 and 2 tie at 2; equal weights -> earlier learner -> 1
    assert weighted_vote(labels, [1, 2, 2]).item() == 1
    # weights (1, 2, 3): class 2 wins outright
    assert weighted_vote(labels, [1, 2, 3]).item() == 2
    # weights (3, 1, 2) with labels (0, 1, 1): 3 vs 1 + 2 = 3 -> tie -> learner 0 (weight 3) -> 0
    assert weighted_vote(np.array([0, 1, 1]).reshape(3, 1, 1), [3, 1, 2]).item() == 0


def test_float_rounding_ties():
    # 0.1 + 0.2 = 0.30000000000000004 in floats; mathematically it ties with 0.3, and the tie
    # goes to the class of the highest-weight learner (0.3 votes class 1)
    labels = np.array([0, 0, 1]).reshape(3, 1, 1)
    assert weighted_vote(labels, [0.1, 0.2, 0.3]).item() == 1


def test_matches_per_pixel_reference_random():
    rng = np.random.default_rng(0)
    for trial in range(40):
        m, c = int(rng.integers(1, 8)), int(rng.integers(1, 5))
        maps = rng.integers(0, c, (m, 5, 6))
        w = [None, rank_weights(m), rng.integers(1, 4, m).astype(float)][trial % 3]
        assert (weighted_vote(maps, w, c) == reference_weighted_vote(maps, w)).all()


def test_more_than_16_maps_uses_exact_fallback():
    rng = np.random.default_rng(1)
    maps = rng.integers(0, 3, (17, 6, 6))
    for w in (None, rank_weights(17)):
        assert (weighted_vote(maps, w) == reference_weighted_vote(maps, w)).all()


def test_dtype_torch_and_errors():
    out = weighted_vote(torch.from_numpy(MAPS.astype(np.uint8)), rank_weights(3), num_classes=3)
    assert out.dtype == np.uint8 and out.shape == (1, 4)
    with pytest.raises(ValueError, match="weights"):
        weighted_vote(MAPS, [1, 2])
    with pytest.raises(ValueError, match=">= 0"):
        weighted_vote(MAPS, [1, -1, 1])
    with pytest.raises(ValueError, match="num_classes"):
        weighted_vote(MAPS, num_classes=2)


def test_any_integer_type_votes_alike_and_keeps_its_type():
    rng = np.random.default_rng(3)
    maps = rng.integers(0, 5, (5, 16, 16))
    weights = [0.4, 0.3, 0.1, 0.1, 0.1]
    expected = reference_weighted_vote(maps, weights)
    for dtype in (np.uint8, np.int16, np.int32, np.int64):
        voted = weighted_vote(maps.astype(dtype), weights)
        assert voted.dtype == dtype and np.array_equal(voted, expected)
