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
    enc = ImageEncoder(24, backbone="small_cnn", width=8)
    regions, gate = enc(torch.randn(2, 3, 32, 32))
    assert regions.shape == (2, 16, 24) and gate.shape == (2, 1, 4, 4)
    dense = ImageEncoder(24, backbone="densenet121", use_cbam=False, freeze_backbone=True).eval()
    regions, gate = dense(torch.randn(1, 3, 64, 64))
    assert regions.shape == (1, 4, 24) and gate is None
    assert not any(p.requires_grad for p in dense.backbone.parameters())


def test_image_encoder_missing_weights_file(tmp_path):
    with pytest.raises(ConfigError, match="weights file not found"):
        ImageEncoder(8, backbone="densenet121", weights=str(tmp_path / "nope.pth"))


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
    from ensemblab.projects.crossattn_vl.cli import resolve_config
    from ensemblab.projects.crossattn_vl.model import VLModule

    torch.manual_seed(0)
    cfg = resolve_config("cpu_quick", [f"model.variant={variant}", "model.image.width=4",
                                       "model.dim=16", "model.text.hidden=16"])
    module = VLModule(cfg, vocab_size=20, pad_id=0, bos_id=2, eos_id=3, num_answers=5)
    ids = torch.tensor([[2, 7, 8, 3, 0], [2, 9, 3, 0, 0]])
    batch = {"image": torch.randn(2, 3, 32, 32), "prompt_ids": ids[:, :2] * 0 + 2,
             "prompt_pad": torch.zeros(2, 2, dtype=torch.bool), "cap_ids": ids,
             "cap_pad": ids == 0, "same": torch.eye(2, dtype=torch.bool), "q_ids": ids,
             "q_pad": ids == 0, "target": torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]])}
    losses = module.losses(batch)
    unimodal = variant in ("visual_only", "text_only")
    assert set(losses) == ({"seq", "ce"} if unimodal else {"seq", "ce", "cl"})
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
