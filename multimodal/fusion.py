"""Fusion of the attended sequences by concatenation and a linear layer (paper eq. 4).

``Y_C = W [I'; T'] + b``: the attended image regions and text tokens are concatenated along
the sequence axis and mapped token-wise by a linear layer into the fused memory {Y_C} that the
caption decoder reads; their masked mean-pools are concatenated along the feature axis and
mapped by a second linear layer into the pooled vector the classification head reads.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """Mean over the sequence of ``x [B, N, d]`` ignoring positions where ``pad [B, N]``."""
    if pad is None:
        return x.mean(dim=1)
    keep = (~pad).unsqueeze(-1).to(x.dtype)
    return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


class ConcatFusion(nn.Module):
    """Concatenate + linear.

    Args:
        dim: width d of both inputs and of the outputs.
        dropout: dropout on the fused outputs.

    Forward:
        img ``[B, Ni, d]`` (or None for a text-only model), txt ``[B, Nt, d]`` (or None for a
        visual-only model), txt_pad ``[B, Nt]`` bool (True = padding).

    Returns:
        ``(memory [B, Ni+Nt, d], memory_pad [B, Ni+Nt] bool, pooled [B, d])``.
    """

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.token_proj = nn.Linear(dim, dim)
        self.pool_proj = nn.Linear(2 * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, img: torch.Tensor | None, txt: torch.Tensor | None,
                txt_pad: torch.Tensor | None = None):
        ref = img if img is not None else txt
        if ref is None:
            raise ValueError("ConcatFusion needs at least one modality")
        bsz, dim = ref.shape[0], ref.shape[-1]
        seqs, pads, pooled = [], [], []
        if img is not None:
            seqs.append(img)
            pads.append(torch.zeros(img.shape[:2], dtype=torch.bool, device=img.device))
            pooled.append(img.mean(dim=1))
        else:
            pooled.append(ref.new_zeros(bsz, dim))
        if txt is not None:
            if txt_pad is None:
                txt_pad = torch.zeros(txt.shape[:2], dtype=torch.bool, device=txt.device)
            seqs.append(txt)
            pads.append(txt_pad)
            pooled.append(masked_mean(txt, txt_pad))
        else:
            pooled.append(ref.new_zeros(bsz, dim))
        memory = self.drop(self.token_proj(torch.cat(seqs, dim=1)))
        pooled_vec = self.drop(self.pool_proj(torch.cat(pooled, dim=-1)))
        return memory, torch.cat(pads, dim=1), pooled_vec
