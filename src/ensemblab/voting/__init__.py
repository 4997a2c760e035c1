"""Voting: weighted/plurality label voting, soft voting, box and instance-mask fusion."""

from ensemblab.voting.boxes import fuse_boxes
from ensemblab.voting.instances import fuse_instance_masks
from ensemblab.voting.label_vote import (
    plurality_vote,
    rank_weights,
    reference_weighted_vote,
    weighted_vote,
)
from ensemblab.voting.soft import soft_vote
from ensemblab.voting.weights import weights_from_scores

__all__ = [
    "fuse_boxes", "fuse_instance_masks", "plurality_vote", "rank_weights",
    "reference_weighted_vote", "soft_vote", "weighted_vote", "weights_from_scores",
]
