"""Offline encoder weights: exact loading, real ImageNet predictions, gray adaptation, errors."""

import pytest
import timm
import torch

from ensemblab.backbones import (
    ENCODERS,
    build_smp,
    create_encoder,
    fpn_backbone,
)
from ensemblab.backbones.check import load_photo, top5
from ensemblab.backbones.keymap import lukemelas_to_timm
from ensemblab.backbones.loading import read_state_dict
from ensemblab.cli import main
from ensemblab.errors import ConfigError
from ensemblab.testing import real_data

LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


@pytest.mark.parametrize("name", LITES)
def test_packaged_weights_map_every_tensor(name):
    spec = ENCODERS.get(name)
    path = spec.packaged_file()
    assert path is not None, f"{spec.package} is a dependency and must be installed"
    packaged = read_state_dict(path)
    model = timm.create_model(spec.timm_name, pretrained=False)
    mapped = lukemelas_to_timm(packaged, model, source=str(path))
    assert set(mapped) == set(model.state_dict())  # no missing tensor
    assert len(mapped) == len(packaged)  # no unexpected tensor
    # Same tensors by name, not merely by shape: the stem and the classifier are the originals.
    assert torch.equal(mapped["conv_stem.weight"], packaged["_conv_stem.weight"])
    assert torch.equal(mapped["classifier.weight"], packaged["_fc.weight"])
    if name == "efficientnet_lite0":
        # The packaged file's element count (parameters, BN statistics and counters).
        assert sum(v.numel() for v in packaged.values()) == 4_694_073


def test_keymap_rejects_another_size():
    spec = ENCODERS.get("efficientnet_lite0")
    packaged = read_state_dict(spec.packaged_file())
    other = timm.create_model("tf_efficientnet_lite1", pretrained=False)
    with pytest.raises(ConfigError, match="efficientnet-lite0"):
        lukemelas_to_timm(packaged, other, source=str(spec.packaged_file()))


def test_classifier_names_a_dog_in_a_real_photo():
    folder = real_data("vl/flickr8k/images")
    # "A black dog and a spotted dog are fighting"
    classes = top5("efficientnet_lite0", [str(folder / "1001773457_577c3a7d70.jpg")])[0]
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    dog_names = set(_IMAGENET_CATEGORIES[151:269])
    assert any(c in dog_names for c, _ in classes), classes


def test_gray_input_matches_gray_rgb():
    rgb = create_encoder("efficientnet_lite0", in_chans=3).eval()
    gray = create_encoder("efficientnet_lite0", in_chans=1).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        a, b = rgb(x.expand(2, 3, 64, 64)), gray(x)
    for fa, fb in zip(a, b):
        torch.testing.assert_close(fa, fb, rtol=1e-4, atol=1e-4)


def test_encoder_reports_channels_and_normalises_itself():
    enc = create_encoder("efficientnet_lite0", out_indices=(2, 4)).eval()
    assert enc.channels == [40, 320] and enc.strides == [8, 32]
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        inside = enc(x)
        enc.normalizes = False
        outside = enc(enc.normalize(x))
    torch.testing.assert_close(inside[1], outside[1])
    torch.testing.assert_close(enc.mean.flatten(), torch.full((3,), 0.5))


def test_smp_and_fpn_builders_carry_the_weights():
    spec = ENCODERS.get("efficientnet_lite0")
    stem = read_state_dict(spec.packaged_file())["_conv_stem.weight"]
    seg = build_smp("Unet", "efficientnet_lite0", classes=3, in_chans=3)
    assert torch.equal(seg.net.encoder.model.conv_stem.weight, stem)
    assert seg(torch.rand(2, 3, 64, 64)).shape == (2, 3, 64, 64)
    fpn = fpn_backbone("efficientnet_lite0", trainable_stages=2)
    assert torch.equal(fpn.body.body.conv_stem.weight, stem)
    assert not fpn.body.body.conv_stem.weight.requires_grad
    assert fpn.body.body.blocks[6][0].conv_pw.weight.requires_grad
    out = fpn(torch.rand(1, 3, 128, 128))
    assert list(out) == ["0", "1", "2", "3", "pool"] and out["0"].shape == (1, 256, 32, 32)


def test_random_init_encoders_build_without_weights():
    assert create_encoder("resnet18", pretrained=False).channels == [64, 128, 256, 512]


def test_local_weights_file_for_any_timm_model(tmp_path):
    net = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": net.state_dict()}, path)
    enc = create_encoder("resnet18", weights=path)
    assert torch.equal(enc.body.conv1.weight, net.conv1.weight)


def test_missing_and_foreign_weights_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere\.pth: weights file .* not found"):
        create_encoder("resnet50", weights=tmp_path / "nowhere.pth")
    with pytest.raises(ConfigError, match="no packaged ImageNet weights"):
        create_encoder("resnet50", pretrained=True)
    bad = tmp_path / "trunc.pth"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ConfigError, match=r"trunc\.pth: not a readable PyTorch weights file"):
        create_encoder("resnet18", weights=bad)
    foreign = tmp_path / "vgg.pth"
    torch.save(timm.create_model("resnet34", pretrained=False).state_dict(), foreign)
    with pytest.raises(ConfigError, match=r"vgg\.pth: does not match .*missing"):
        create_encoder("resnet18", weights=foreign)


def test_unknown_encoder_names_close_matches():
    with pytest.raises(ConfigError, match="did you mean efficientnet_lite0"):
        create_encoder("efficientnet_lit0")


def test_weights_cli_lists_and_fails_cleanly(capsys, tmp_path):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    for name in LITES:
        assert f"{name} present" in " ".join(out.split())
    assert main(["weights", "check", str(tmp_path / "missing.jpg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.jpg: file not found" in err[0]


def test_load_photo_crops_to_size(tmp_path):
    from PIL import Image

    Image.new("RGB", (300, 200), (255, 0, 0)).save(tmp_path / "red.png")
    x = load_photo(tmp_path / "red.png", 224)
    assert x.shape == (1, 3, 224, 224) and float(x[0, 0].mean()) == 1.0


def test_minilm_is_really_pretrained():
    from transformers import AutoModel, AutoTokenizer

    from ensemblab.multimodal.text_encoder import minilm_dir

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir()).eval()
    words = ["dog", "puppy", "stock market"]
    batch = tok(words, return_tensors="pt", padding=True)
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    near, far = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert near > far + 0.2, (near, far)
