"""Losses are chosen by name from their registry: CE plus the registered terms."""

import pytest
import segmentation_models_pytorch as smp
import torch

from ensemblab.errors import ConfigError
from ensemblab.projects.mineral_ruel.losses import LOSSES, build_loss
from ensemblab.projects.mineral_ruel.module import MineralSegmenter
from ensemblab.synthetic.minerals import MINERAL_CLASSES

SMALL = {"arch": "resunet", "encoder": "resnet18", "decoder_channels": (16, 16, 16, 8, 8)}


def _batch(classes: int = 3):
    torch.manual_seed(0)
    return torch.randn(2, classes, 8, 8), torch.randint(0, classes, (2, 8, 8))


def test_the_paper_losses_are_ce_plus_their_terms():
    assert {"ce", "ce+dice", "ce+focal"} <= set(LOSSES.names())
    logits, target = _batch()
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert torch.isclose(build_loss("ce")(logits, target), ce)
    dice = smp.losses.DiceLoss("multiclass")(logits, target)
    assert torch.isclose(build_loss("ce+dice", aux_weight=0.5)(logits, target), ce + 0.5 * dice)
    focal = smp.losses.FocalLoss("multiclass", alpha=0.25, gamma=3.0)(logits, target)
    assert torch.isclose(build_loss("ce+focal", focal_alpha=0.25, focal_gamma=3.0)(
        logits, target), ce + focal)


def test_unknown_loss_is_one_line_naming_the_closest():
    with pytest.raises(ConfigError) as info:
        build_loss("ce+dise")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown loss 'ce+dise' (did you mean ce+dice")
    assert message.endswith("known: " + ", ".join(LOSSES.names()))


def test_a_registered_loss_is_selectable_by_name():
    with LOSSES.scope():
        @LOSSES.register("ce+lovasz")
        def lovasz_terms(aux_weight, focal_alpha, focal_gamma):
            return [(smp.losses.LovaszLoss("multiclass"), aux_weight)]

        logits, target = _batch()
        expected = (torch.nn.functional.cross_entropy(logits, target)
                    + smp.losses.LovaszLoss("multiclass")(logits, target))
        assert torch.isclose(build_loss("ce+lovasz")(logits, target), expected)
        # the learner's config chooses it with no other edit
        module = MineralSegmenter(9, MINERAL_CLASSES, SMALL, {"name": "ce+lovasz"})
        assert isinstance(module.criterion.terms[0], smp.losses.LovaszLoss)
    assert "ce+lovasz" not in LOSSES
