"""FRE: exact identity at evaluation, exactly B channels scaled by X in a training step."""

import copy
import math

import pytest
import torch

from ensemblab.config import load_config
from ensemblab.errors import ConfigError
from ensemblab.projects.fre_unet.commands import BASE_CONFIG
from ensemblab.projects.fre_unet.fre import FeatureRandomEnhancement
from ensemblab.projects.fre_unet.module import FRESegmentation

CLASSES = ["background", "membrane", "mitochondria", "synapse"]


MODEL = {**load_config(BASE_CONFIG)["model"], "width": 0.125}  # the baseline, 1/8 wide


def _module(num_enhanced=3, factor=250.0, fixed=False, seed=0):
    cfg = {**MODEL, "fre": {"num_enhanced": num_enhanced, "factor": factor, "fixed": fixed}}
    torch.manual_seed(0)
    return FRESegmentation(cfg, CLASSES, seed=seed)


def test_eval_outputs_bitwise_equal_with_and_without_fre():
    module = _module()
    with_fre = module.model.eval()
    without = copy.deepcopy(with_fre)
    without.fre = None
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(with_fre(x), without(x))
        feats = torch.randn(2, with_fre.deep_channels, 2, 2)
        assert with_fre.fre(feats) is feats
    # In training mode the same network must differ, so the check above can fail.
    with_fre.train()
    without.train()
    with torch.no_grad():
        assert not torch.equal(with_fre(x), without(x))


def test_training_step_scales_exactly_b_channels_by_x():
    module = _module(num_enhanced=3, factor=250.0)
    seen = {}

    def hook(_m, inputs, output):
        seen["in"], seen["out"] = inputs[0].detach().clone(), output.detach().clone()

    module.model.fre.register_forward_hook(hook)
    module.train()
    x, y = torch.rand(2, 1, 32, 32), torch.randint(0, 4, (2, 32, 32))
    loss = module.training_step((x, y), 0)
    loss.backward()
    changed = [c for c in range(seen["in"].shape[1])
               if not torch.equal(seen["in"][:, c], seen["out"][:, c])]
    assert len(changed) == 3
    assert changed == module.model.fre.enhanced_channels.tolist()
    for c in changed:
        torch.testing.assert_close(seen["out"][:, c], 250.0 * seen["in"][:, c])


def test_channels_redrawn_per_epoch_reproducibly():
    a = FeatureRandomEnhancement(64, 8, 10.0, seed=1)
    b = FeatureRandomEnhancement(64, 8, 10.0, seed=1)
    draws = []
    for epoch in range(4):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert torch.equal(a.enhanced_channels, b.enhanced_channels)
        assert len(a.enhanced_channels) == 8
        draws.append(tuple(a.enhanced_channels.tolist()))
    assert len(set(draws)) > 1
    other_seed = FeatureRandomEnhancement(64, 8, 10.0, seed=2)
    assert not torch.equal(other_seed.enhanced_channels, b.draw(0))


def test_fixed_variant_keeps_channels():
    fre = FeatureRandomEnhancement(64, 10, 10_000.0, seed=0, fixed=True)
    first = fre.enhanced_channels.clone()
    for epoch in range(1, 5):
        fre.set_epoch(epoch)
        assert torch.equal(fre.enhanced_channels, first)


def test_too_many_channels_is_a_config_error():
    with pytest.raises(ConfigError, match="B=20"):
        FeatureRandomEnhancement(16, 20, 2.0)


def test_dice_ce_adds_the_dice_term_and_unknown_loss_is_a_config_error():
    torch.manual_seed(0)
    ce = FRESegmentation(MODEL, CLASSES, loss="ce")
    dice_ce = FRESegmentation(MODEL, CLASSES, loss="dice_ce")
    y = torch.zeros(1, 4, 4, dtype=torch.long)
    y[0, :2] = 1
    confident = torch.full((1, 4, 4, 4), -20.0)
    confident.scatter_(1, y[:, None], 20.0)
    # A confident correct prediction: CE ~ 0 and Dice ~ 0. Uniform logits: CE = ln 4; Dice per
    # present class (n_c = 8 of 16 pixels, p = 1/4) is 1 - 2 (8 / 4) / (16 / 4 + 8) = 2/3, an
    # absent class counts 0, and the mean runs over the 4 classes: (2/3 + 2/3) / 4 = 1/3.
    assert dice_ce.criterion(confident, y) < 1e-6
    uniform = torch.zeros(1, 4, 4, 4)
    assert ce.criterion(uniform, y) == pytest.approx(math.log(4), abs=1e-6)
    assert dice_ce.criterion(uniform, y) == pytest.approx(math.log(4) + 1 / 3, abs=1e-5)
    with pytest.raises(ConfigError, match="unknown train.loss 'focal'; known: ce, dice_ce"):
        FRESegmentation(MODEL, CLASSES, loss="focal")


def test_validation_scores_a_tile_repeated_by_ddp_padding_once(em_stack, tiny_cfg):
    from ensemblab.projects.fre_unet.datamodule import EMTileData

    data = EMTileData(em_stack, tiny_cfg["data"])
    data.setup()
    assert len(data.tiles["train"][0]) == 2  # training items carry no index
    x, y, index = next(iter(data.val_dataloader()))
    assert index.tolist() == list(range(len(x)))
    module = _module().eval()
    module.on_validation_epoch_start()
    with torch.no_grad():
        module.validation_step((x, y, index), 0)
        once = module.evaluator.compute()["confusion_matrix"]
        module.validation_step((x[:2], y[:2], index[:2]), 1)  # the sampler's padding
    assert module.evaluator.compute()["confusion_matrix"] == once
    module.on_validation_epoch_start()
    with torch.no_grad():  # without ids a repeated tile is counted again
        module.validation_step((x, y), 0)
        module.validation_step((x[:2], y[:2]), 1)
    assert module.evaluator.compute()["confusion_matrix"] != once
