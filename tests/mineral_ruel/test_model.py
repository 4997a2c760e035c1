"""Res-UNet structure, the trained STN and the ``stn: identity`` parity option."""

import pytest
import torch
import torchvision
from torch import nn

from ensemblab.errors import ConfigError
from ensemblab.projects.mineral_ruel.models import build_model
from ensemblab.projects.mineral_ruel.resunet import ResUNet
from ensemblab.projects.mineral_ruel.stn import SpatialTransformer

SMALL = dict(backbone="resnet18", decoder_channels=(16, 16, 16, 8, 8))


def test_resnet50_encoder_is_3_4_6_3_bottlenecks_with_leaky_relu_only():
    model = ResUNet(9)
    assert [len(layer) for layer in model.encoder.layers] == [3, 4, 6, 3]
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    assert acts and all(type(m) is nn.LeakyReLU and m.negative_slope == 0.1 for m in acts)
    assert model.encoder.out_channels == [64, 256, 512, 1024, 2048]


def test_relu_option_and_output_shape():
    model = ResUNet(5, activation="relu", **SMALL).eval()
    assert not any(isinstance(m, nn.LeakyReLU) for m in model.modules())
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 96)).shape == (2, 5, 64, 96)


def test_stn_is_registered_gets_gradients_and_changes_when_trained():
    torch.manual_seed(0)
    model = ResUNet(4, stn="trained", **SMALL)
    stn_params = {n: p for n, p in model.named_parameters() if n.startswith("stn.")}
    assert stn_params, "STN parameters must be registered in the model"
    before = {n: p.detach().clone() for n, p in stn_params.items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model.stn.theta.weight.grad.abs().sum() > 0
    assert model.stn.localization[0].weight.grad is not None
    opt.step()
    changed = [n for n, p in stn_params.items() if not torch.equal(p, before[n])]
    assert "stn.theta.weight" in changed and "stn.theta.bias" in changed
    model.eval()
    model(x)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    assert not torch.allclose(model.stn.last_theta[0], identity)


@pytest.mark.parametrize("mode", ["identity", "trained"])
def test_identity_stn_and_untrained_stn_reproduce_the_plain_path(mode):
    torch.manual_seed(0)
    plain = ResUNet(4, stn="none", **SMALL).eval()
    other = ResUNet(4, stn=mode, **SMALL).eval()
    missing = other.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith("stn.") for k in missing.missing_keys)
    if mode == "identity":
        assert not list(other.stn.parameters())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(other(x), plain(x), atol=1e-5)


def test_stn_resamples_when_theta_is_not_identity():
    stn = SpatialTransformer()
    with torch.no_grad():
        stn.theta.bias.copy_(torch.tensor([1.0, 0, 0.5, 0, 1.0, 0]))  # shift right by 1/4 width
        x = torch.rand(1, 3, 32, 32)
        assert not torch.allclose(stn(x), x)


@pytest.mark.parametrize("arch", ["vgg16_unet", "deeplabv3", "pspnet"])
def test_smp_baselines_build_offline(arch):
    model = build_model(3, arch, backbone=None, stn=None).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    assert hasattr(model, "encoder")


def test_missing_local_weights_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="weights file not found"):
        build_model(3, "resunet", weights=str(tmp_path / "nope.pth"), **SMALL)


def test_local_torchvision_weights_are_loaded(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(3, "resunet", weights=str(path), **SMALL)
    assert torch.equal(model.encoder.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.encoder.layers[3][1].conv2.weight, reference.layer4[1].conv2.weight)


def test_shallower_encoder_depth_follows_the_decoder_length():
    model = ResUNet(3, backbone="resnet18", decoder_channels=(16, 16, 8)).eval()
    assert len(model.encoder.layers) == 2 and model.encoder.out_channels == [64, 64, 128]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 48)).shape == (1, 3, 32, 48)
