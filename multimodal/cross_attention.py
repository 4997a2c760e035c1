"""Bidirectional multi-head, multi-layer cross-attention between image regions and text tokens.

The paper's fusion module (its Sec. 3.3, eqs. 1-3) projects both modalities to queries, keys
and values and attends in both directions,

    I' = softmax(Q_I K_T^T / sqrt(d)) V_T        (image regions attend to text tokens)
    T' = softmax(Q_T K_I^T / sqrt(d)) V_I        (text tokens attend to image regions)

with several heads and stacked layers. Each direction here is a post-norm Transformer block:
cross-attention + residual + LayerNorm, then a feed-forward + residual + LayerNorm. Padding
tokens of the text are excluded as keys through ``key_padding_mask``, so their content never
changes any output at a real position.
"""

from __future__ import annotations

import torch
from torch import nn


class _CrossBlock(nn.Module):
    """One direction: ``query`` attends to ``context`` (``nn.MultiheadAttention``) + FFN."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_mult * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, query, context, context_pad=None):
        out, weights = self.attn(query, context, context, key_padding_mask=context_pad,
                                 need_weights=True, average_attn_weights=True)
        x = self.norm1(query + self.drop(out))
        x = self.norm2(x + self.drop(self.ff(x)))
        return x, weights


class CrossAttentionLayer(nn.Module):
    """Image->text and text->image attention computed from the same inputs (simultaneous)."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 2, dropout: float = 0.1):
        super().__init__()
        self.img_to_txt = _CrossBlock(dim, heads, ff_mult, dropout)
        self.txt_to_img = _CrossBlock(dim, heads, ff_mult, dropout)

    def forward(self, img, txt, txt_pad=None):
        new_img, w_it = self.img_to_txt(img, txt, txt_pad)
        new_txt, w_ti = self.txt_to_img(txt, img, None)
        return new_img, new_txt, w_it, w_ti


class BidirectionalCrossAttention(nn.Module):
    """A stack of :class:`CrossAttentionLayer`.

    Args:
        dim: model width d (both modalities already projected to it).
        heads: attention heads (``dim % heads == 0``).
        layers: stacked layers.
        ff_mult: feed-forward width multiplier.
        dropout: dropout in attention and feed-forward.

    Forward:
        img ``[B, Ni, d]`` region vectors, txt ``[B, Nt, d]`` token vectors,
        txt_pad ``[B, Nt]`` bool, True at padding tokens (or None).

    Returns:
        ``(img' [B, Ni, d], txt' [B, Nt, d], attn)`` where ``attn`` holds the last layer's
        head-averaged weights: ``"img_to_txt" [B, Ni, Nt]`` and ``"txt_to_img" [B, Nt, Ni]``.
    """

    def __init__(self, dim: int, heads: int = 4, layers: int = 2, ff_mult: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.layers = nn.ModuleList(
            CrossAttentionLayer(dim, heads, ff_mult, dropout) for _ in range(layers))

    def forward(self, img: torch.Tensor, txt: torch.Tensor, txt_pad: torch.Tensor | None = None):
        w_it = w_ti = None
        for layer in self.layers:
            img, txt, w_it, w_ti = layer(img, txt, txt_pad)
        return img, txt, {"img_to_txt": w_it, "txt_to_img": w_ti}
