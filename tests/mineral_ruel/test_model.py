"""Learner registry, Res-UNet structure, U-Net on pretrained encoders, STN and its parity."""

import pytest
import torch
import torchvision
from torch import nn

from ensemblab.backbones import create_encoder
from ensemblab.errors import ConfigError
from ensemblab.projects.mineral_ruel.models import LEARNERS, build_model
from ensemblab.projects.mineral_ruel.resunet import ResUNet
from ensemblab.projects.mineral_ruel.stn import SpatialTransformer

SMALL = dict(encoder="resnet18", decoder_channels=(16, 16, 16, 8, 8))


def test_resnet50_encoder_is_3_4_6_3_bottlenecks_with_leaky_relu_only():
    model = ResUNet(9)
    assert [len(layer) for layer in model.encoder.layers] == [3, 4, 6, 3]
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    assert acts and all(type(m) is nn.LeakyReLU and m.negative_slope == 0.1 for m in acts)
    assert model.encoder.out_channels == [64, 256, 512, 1024, 2048]


def test_relu_option_and_output_shape():
    model = ResUNet(5, activation="relu", backbone="resnet18",
                    decoder_channels=(16, 16, 16, 8, 8)).eval()
    assert not any(isinstance(m, nn.LeakyReLU) for m in model.modules())
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 96)).shape == (2, 5, 64, 96)


def test_stn_is_registered_gets_gradients_and_changes_when_trained():
    torch.manual_seed(0)
    model = build_model(4, "resunet", stn="trained", **SMALL)
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
    plain = build_model(4, "resunet", stn="none", **SMALL).eval()
    other = build_model(4, "resunet", stn=mode, **SMALL).eval()
    missing = other.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith("stn.") for k in missing.missing_keys)
    if mode == "identity":
        assert not list(other.stn.parameters())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(other(x), plain(x), atol=1e-4)


def test_stn_resamples_when_theta_is_not_identity():
    stn = SpatialTransformer()
    with torch.no_grad():
        stn.theta.bias.copy_(torch.tensor([1.0, 0, 0.5, 0, 1.0, 0]))  # shift right by 1/4 width
        x = torch.rand(1, 3, 32, 32)
        assert not torch.allclose(stn(x), x)


@pytest.mark.parametrize("arch,encoder", [("unet", "vgg16"), ("deeplabv3", "resnet18"),
                                          ("pspnet", "resnet18")])
def test_smp_baselines_build_offline_and_train(arch, encoder):
    torch.manual_seed(0)
    extra = {"pretrained": False} if arch == "unet" else {}
    model = build_model(3, arch, encoder=encoder, **extra)
    x, y = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model(x).shape == (2, 3, 64, 64) and loss.item() > 0
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)


def test_learners_are_registered_and_unknown_names_and_keys_fail():
    assert {"resunet", "unet", "deeplabv3", "pspnet"} <= set(LEARNERS.names())
    with pytest.raises(ConfigError, match="unknown mineral learner arch 'unett'.*unet"):
        build_model(3, "unett")
    with pytest.raises(ConfigError, match="does not take model.decoder_channels"):
        build_model(3, "pspnet", decoder_channels=[16, 8])
    with pytest.raises(ConfigError, match="no offline ImageNet weights"):
        build_model(3, "resunet", pretrained=True)


def test_unet_lite0_holds_the_packaged_imagenet_weights_and_a_leaky_decoder():
    model = build_model(13, "unet", encoder="efficientnet_lite0", pretrained=True,
                        stn="trained").eval()
    reference = create_encoder("efficientnet_lite0", pretrained=True)
    ours = dict(model.encoder.model.named_parameters())
    theirs = dict(reference.body.named_parameters())
    shared = [k for k in theirs if k in ours]
    assert len(shared) > 50
    assert all(torch.equal(ours[k], theirs[k]) for k in shared)
    acts = [m for m in model.net.net.decoder.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    assert acts and all(type(m) is nn.LeakyReLU and m.negative_slope == 0.1 for m in acts)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 13, 64, 96)


def test_missing_local_weights_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="weights file not found"):
        build_model(3, "resunet", weights=str(tmp_path / "nope.pth"), **SMALL)
    with pytest.raises(ConfigError, match="nope.pth"):
        build_model(3, "unet", encoder="resnet50", weights=str(tmp_path / "nope.pth"))


def test_local_torchvision_weights_are_loaded(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(3, "resunet", weights=str(path), pretrained=True, **SMALL)
    assert torch.equal(model.encoder.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.encoder.layers[3][1].conv2.weight, reference.layer4[1].conv2.weight)


def test_shallower_encoder_depth_follows_the_decoder_length():
    model = ResUNet(3, backbone="resnet18", decoder_channels=(16, 16, 8)).eval()
    assert len(model.encoder.layers) == 2 and model.encoder.out_channels == [64, 64, 128]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 48)).shape == (1, 3, 32, 48)
