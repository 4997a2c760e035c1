"""bf16 inference (autocast, channels-last) agrees with float32 and rejects unknown modes."""

import pytest
import torch

from ensemblab.projects.mineral_ruel.inference import forward_logits
from ensemblab.projects.mineral_ruel.models import build_model


def test_bf16_labels_agree_with_fp32():
    torch.manual_seed(0)
    net = build_model(4, "resunet", stn="none").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        ref = forward_logits(net, x, "fp32")
        fast = forward_logits(net.to(memory_format=torch.channels_last), x, "bf16")
    assert fast.dtype == torch.float32 and fast.shape == ref.shape == (1, 4, 64, 64)
    agree = (fast.argmax(1) == ref.argmax(1)).float().mean().item()
    assert agree > 0.95
    with pytest.raises(ValueError, match="precision"):
        forward_logits(net, x, "fp8")
