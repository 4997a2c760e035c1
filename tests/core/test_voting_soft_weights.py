"""Soft voting and weights from validation scores, by hand."""

import numpy as np
import pytest
import torch

from ensemblab.voting import soft_vote, weights_from_scores


def test_soft_vote_by_hand():
    probs = np.array([[[[0.8]], [[0.2]]],
                      [[[0.4]], [[0.6]]]])  # [M=2, C=2, 1, 1]
    # weights (3, 1) -> (0.75, 0.25): class 0 = 0.75*0.8 + 0.25*0.4 = 0.7, class 1 = 0.3
    assert soft_vote(probs, [3, 1]).ravel() == pytest.approx([0.7, 0.3])
    # equal weights: (0.6, 0.4)
    assert soft_vote(probs).ravel() == pytest.approx([0.6, 0.4])
    out = soft_vote(torch.tensor(probs, dtype=torch.float32), [3, 1])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.flatten().tolist() == pytest.approx([0.7, 0.3])
    with pytest.raises(ValueError):
        soft_vote(probs, [1, 2, 3])


def test_weights_from_scores():
    scores = [0.7, 0.9, 0.8]
    # rank: member 1 best -> 3/6, member 2 -> 2/6, member 0 -> 1/6
    assert weights_from_scores(scores) == pytest.approx([1 / 6, 3 / 6, 2 / 6])
    # equal scores keep member order: (3, 2, 1) / 6
    assert weights_from_scores([0.5, 0.5, 0.5]) == pytest.approx([3 / 6, 2 / 6, 1 / 6])
    assert weights_from_scores(scores, "proportional") == pytest.approx([7 / 24, 9 / 24, 8 / 24])
    soft = weights_from_scores([0.0, np.log(3.0)], "softmax")  # exp: 1 and 3 -> (1/4, 3/4)
    assert soft == pytest.approx([0.25, 0.75])
    assert weights_from_scores(scores, "equal") == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="unknown method"):
        weights_from_scores(scores, "best")
