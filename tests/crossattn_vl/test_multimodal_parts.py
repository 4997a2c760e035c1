"""Reusable multimodal parts: cross-attention masking, CBAM/fusion shapes, decoding, losses."""

import math

import pytest
import torch

from ensemblab.errors import ConfigError
from ensemblab.multimodal.cbam import CBAM
from ensemblab.multimodal.cross_attention import BidirectionalCrossAttention
from ensemblab.multimodal.fusion import ConcatFusion
from ensemblab.multimodal.heads import CaptionDecoder, MatchingHead
from ensemblab.multimodal.image_encoder import ImageEncoder
from ensemblab.multimodal.losses import (
    contrastive_loss,
    sequence_loss,
    soft_cross_entropy,
    triplet_ranking_loss,
    weighted_sum,
)


def test_cross_attention_ignores_padding_tokens():
    torch.manual_seed(0)
    attn = BidirectionalCrossAttention(16, heads=2, layers=2).eval()
    img, txt = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[0, 4:] = True
    img1, txt1, w1 = attn(img, txt, pad)
    garbage = txt.clone()
    garbage[0, 4:] = 100 * torch.randn(3, 16)
    img2, txt2, _ = attn(img, garbage, pad)
    assert torch.allclose(img1, img2, atol=1e-5)
    assert torch.allclose(txt1[~pad], txt2[~pad], atol=1e-5)
    # Same as running the unpadded sequence alone.
    img3, txt3, _ = attn(img[:1], txt[:1, :4], None)
    assert torch.allclose(img1[:1], img3, atol=1e-5)
    assert torch.allclose(txt1[0, :4], txt3[0], atol=1e-5)
    assert w1["img_to_txt"].shape == (2, 5, 7) and w1["txt_to_img"].shape == (2, 7, 5)
    assert torch.all(w1["img_to_txt"][0, :, 4:] == 0)


def test_cross_attention_without_mask_sees_padding():
    """The invariance above is due to the mask: without it the garbage changes the output."""
    torch.manual_seed(0)
    attn = BidirectionalCrossAttention(16, heads=2, layers=1).eval()
    img, txt = torch.randn(1, 5, 16), torch.randn(1, 7, 16)
    garbage = txt.clone()
    garbage[0, 4:] = 100.0
    assert not torch.allclose(attn(img, txt)[0], attn(img, garbage)[0], atol=1e-3)


def test_cbam_shapes_and_gate_range():
    cbam = CBAM(32, reduction=8)
    x = torch.randn(2, 32, 8, 6)
    y, gate = cbam(x)
    assert y.shape == x.shape and gate.shape == (2, 1, 8, 6)
    assert torch.all((gate > 0) & (gate < 1))


def test_concat_fusion_shapes():
    fusion = ConcatFusion(16)
    img, txt = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 3:] = True
    memory, mpad, pooled = fusion(img, txt, pad)
    assert memory.shape == (2, 12, 16) and pooled.shape == (2, 16)
    assert mpad.tolist()[1] == [False] * 8 + [True] * 4
    memory, mpad, pooled = fusion(img, None)
    assert memory.shape == (2, 5, 16) and not mpad.any() and pooled.shape == (2, 16)
    memory, _, _ = fusion(None, txt, pad)
    assert memory.shape == (2, 7, 16)


def test_image_encoder_region_vectors():
    enc = ImageEncoder(24, encoder="small_cnn", finetune="all", pretrained=False, width=8)
    regions, gate = enc(torch.rand(2, 3, 32, 32))
    assert regions.shape == (2, 16, 24) and gate.shape == (2, 1, 4, 4)
    assert not enc.has_trunk
    lite = ImageEncoder(24, encoder="efficientnet_lite0", use_cbam=False).eval()
    regions, gate = lite(torch.rand(1, 3, 64, 64))
    assert regions.shape == (1, 4, 24) and gate is None  # stride 32: a 2 x 2 grid
    assert lite.has_trunk and not any(p.requires_grad for p in lite.trunk.parameters())


def test_last_stage_split_gives_the_frozen_encoder_maps():
    """Trunk (to stride 16) + trainable tail = the whole pretrained encoder, before training."""
    torch.manual_seed(0)
    whole = ImageEncoder(8, encoder="efficientnet_lite0", finetune="none").eval()
    split = ImageEncoder(8, encoder="efficientnet_lite0", finetune="last_stage").eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        maps16 = split.trunk_features(x)
        assert maps16.shape == (2, 112, 6, 6)
        assert torch.allclose(split.tail(maps16), whole.trunk_features(x), atol=1e-5)
    assert all(p.requires_grad for p in split.tail.parameters())
    assert not any(p.requires_grad for p in split.trunk.parameters())


def test_image_encoder_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="nope.pth"):
        ImageEncoder(8, encoder="densenet121", weights=str(tmp_path / "nope.pth"))
    with pytest.raises(ConfigError, match="finetune"):
        ImageEncoder(8, encoder="efficientnet_lite0", finetune="half")
    with pytest.raises(ConfigError, match="EfficientNet"):
        ImageEncoder(8, encoder="resnet18", pretrained=False, finetune="last_stage")


def test_beam_one_equals_greedy():
    torch.manual_seed(1)
    dec = CaptionDecoder(vocab_size=30, dim=16, heads=2, layers=2, max_length=12).eval()
    memory = torch.randn(4, 6, 16)
    mpad = torch.zeros(4, 6, dtype=torch.bool)
    mpad[2, 4:] = True
    greedy = [dec.greedy(memory[i:i + 1], mpad[i:i + 1])[0] for i in range(4)]
    assert dec.greedy(memory, mpad) == greedy
    assert dec.beam_search(memory, mpad, beam=1) == greedy
    beams = dec.beam_search(memory, mpad, beam=3)
    assert len(beams) == 4 and all(dec.pad_id not in b and dec.eos_id not in b for b in beams)


def test_contrastive_loss_hand_computed():
    d = torch.tensor([0.5, 0.2, 1.5, 0.0])
    y = torch.tensor([1, 0, 0, 1])
    # (0.5 + max(0, 1-0.2) + max(0, 1-1.5) + 0) / 4 = (0.5 + 0.8 + 0 + 0) / 4
    assert contrastive_loss(d, y, margin=1.0).item() == pytest.approx(0.325)
    assert contrastive_loss(d, y, margin=2.0).item() == pytest.approx((0.5 + 1.8 + 0.5) / 4)


def test_triplet_ranking_loss_hand_computed():
    sim = torch.tensor([[0.9, 0.8, 0.1],
                        [0.5, 0.6, 0.7],
                        [0.0, 0.2, 0.3]])
    positive = torch.eye(3, dtype=torch.bool)
    # image anchors, hardest negative: row 0: 0.2 - 0.9 + 0.8 = 0.1; row 1: 0.2 - 0.6 + 0.7 =
    # 0.3; row 2: 0.2 - 0.3 + 0.2 = 0.1. Text anchors (columns): col 0: 0.2 - 0.9 + 0.5 -> 0;
    # col 1: 0.2 - 0.6 + 0.8 = 0.4; col 2: 0.2 - 0.3 + 0.7 = 0.6.
    hardest = (0.1 + 0.3 + 0.1) / 3 + (0.0 + 0.4 + 0.6) / 3
    assert triplet_ranking_loss(sim, positive, 0.2).item() == pytest.approx(hardest)
    # sum: rows: 0.1 + 0, 0.1 + 0.3, 0 + 0.1; columns: 0 + 0, 0.4 + 0, 0.0 + 0.6
    summed = (0.1 + 0.4 + 0.1) / 3 + (0.0 + 0.4 + 0.6) / 3
    assert triplet_ranking_loss(sim, positive, 0.2, hardest=False).item() == \
        pytest.approx(summed)
    # Rows 0 and 1 show the same image: not negatives of each other. Image anchors: 0, 0.3,
    # 0.2 - 0.3 + 0.2 = 0.1; text anchors: 0, 0, 0.2 - 0.3 + 0.7 = 0.6.
    same = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    assert triplet_ranking_loss(sim, same, 0.2).item() == pytest.approx((0.4 + 0.6) / 3)
    assert triplet_ranking_loss(sim[:1, :1], same[:1, :1], 0.2).item() == 0.0


def test_other_losses_hand_computed():
    logits = torch.zeros(2, 4)
    target = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]])  # second row: answer not in vocab
    assert soft_cross_entropy(logits, target).item() == pytest.approx(math.log(4))
    seq_logits = torch.zeros(1, 3, 5)
    assert sequence_loss(seq_logits, torch.tensor([[4, 3, 0]]), pad_id=0).item() == \
        pytest.approx(math.log(5))
    total = weighted_sum({"ce": torch.tensor(2.0), "cl": torch.tensor(3.0)}, {"ce": 0.5})
    assert total.item() == pytest.approx(4.0)


def test_matching_head_distances():
    head = MatchingHead(8, 4)
    a = head.embed_image(torch.randn(3, 8))
    b = head.embed_text(torch.randn(5, 8))
    assert torch.allclose(a.norm(dim=-1), torch.ones(3))
    scores = head.score_matrix(a, b)
    assert scores.shape == (3, 5)
    assert torch.allclose(-scores[1, 2], head.distance(a[1:2], b[2:3])[0], atol=1e-5)


@pytest.mark.parametrize("variant", ["full", "no_cross_attention", "no_cbam", "visual_only",
                                     "text_only"])
def test_every_ablation_variant_computes_its_losses(variant):
    from ensemblab.config import load_config
    from ensemblab.projects.crossattn_vl.commands import resolve_config
    from ensemblab.projects.crossattn_vl.model import VLModule

    torch.manual_seed(0)
    cfg = load_config(resolve_config("cpu_quick"), [
        f"model.variant={variant}", "model.image.width=4", "model.dim=16",
        "model.text.hidden=16"])
    module = VLModule(cfg, vocab_size=20, pad_id=0, bos_id=2, eos_id=3, num_answers=5)
    ids = torch.tensor([[2, 7, 8, 3, 0], [2, 9, 3, 0, 0]])
    text = {"ids": ids, "pad": ids == 0}
    batch = {"image": torch.rand(2, 3, 32, 32),
             "prompt": {"ids": torch.tensor([[2, 3], [2, 3]]),
                        "pad": torch.zeros(2, 2, dtype=torch.bool)},
             "cap_dec": ids, "cap": text, "same": torch.eye(2, dtype=torch.bool), "q": text,
             "target": torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]])}
    losses = module.losses(batch)
    unimodal = variant in ("visual_only", "text_only")
    assert set(losses) == ({"seq", "ce"} if unimodal else {"seq", "ce", "cl"})
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
