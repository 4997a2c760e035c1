"""The cross-attention vision-language network (paper Fig. 1) and its ablation variants.

image -> CNN grid (EfficientNet-Lite / DenseNet121) -> CBAM -> regions {I}
text -> ALBERT / MiniLM -> tokens {T}
        \\____________ bidirectional cross-attention ____________/
                      concat + linear -> {Y_C}, pooled y
        heads: classification(y), matching(pooled I, pooled T), caption decoder({Y_C})

Variants (``variant``): ``full``; ``no_cross_attention`` (the un-attended sequences are
concatenated, and the pooled vector is the linear fusion of the concatenated mean-pooled
features); ``no_cbam``; ``visual_only`` (text stream dropped); ``text_only`` (image stream
dropped). Matching uses the two pooled uni-modal streams (a dual encoder), so all N x M
retrieval scores cost N + M encoder passes.
"""

from __future__ import annotations

import torch
from torch import nn

from ensemblab.errors import ConfigError
from ensemblab.multimodal.cross_attention import BidirectionalCrossAttention
from ensemblab.multimodal.fusion import ConcatFusion, masked_mean
from ensemblab.multimodal.heads import CaptionDecoder, ClassificationHead, MatchingHead
from ensemblab.multimodal.image_encoder import ImageEncoder
from ensemblab.multimodal.text_encoder import TextEncoder

VARIANTS = ("full", "no_cross_attention", "no_cbam", "visual_only", "text_only")


class VLNet(nn.Module):
    """All parts of the model, built from explicit keyword arguments.

    Args:
        vocab_size, pad_id, bos_id, eos_id: caption decoder tokenizer facts.
        num_answers: classification classes (0 = no classification head).
        dim: shared width d. heads, layers: cross-attention heads and layers.
        variant: one of :data:`VARIANTS`.
        image: kwargs of :class:`ImageEncoder` (minus ``dim``/``use_cbam``): ``encoder``,
            ``finetune``, ``pretrained``, ``weights``, ``width``.
        text: kwargs of :class:`TextEncoder` (minus ``dim``); ``vocab_size``/``pad_id`` are
            those of the text encoder's tokenizer (the decoder's may differ).
        decoder_layers: caption decoder layers (0 = no caption head).
        matching_dim: embedding width of the matching head (0 = no matching head).
        max_length: longest caption in tokens. dropout: dropout everywhere.
    """

    def __init__(self, vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 num_answers: int = 0, dim: int = 256, heads: int = 4, layers: int = 2,
                 variant: str = "full", image: dict | None = None, text: dict | None = None,
                 decoder_layers: int = 2, matching_dim: int = 128, max_length: int = 32,
                 dropout: float = 0.1):
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"unknown model.variant {variant!r}; one of {VARIANTS}")
        self.variant = variant
        self.use_image = variant != "text_only"
        self.use_text = variant != "visual_only"
        self.image_encoder = ImageEncoder(dim, use_cbam=variant != "no_cbam", **(image or {}))
        self.text_encoder = TextEncoder(dim, max_length=max(64, max_length), **(text or {}))
        self.cross = (BidirectionalCrossAttention(dim, heads, layers, dropout=dropout)
                      if variant not in ("no_cross_attention", "visual_only", "text_only")
                      else None)
        self.fusion = ConcatFusion(dim, dropout)
        self.classifier = ClassificationHead(dim, num_answers, dropout) if num_answers else None
        self.matcher = MatchingHead(dim, matching_dim, dropout) if matching_dim else None
        self.decoder = (CaptionDecoder(vocab_size, dim, heads, decoder_layers, max_length,
                                       pad_id, bos_id, eos_id, dropout)
                        if decoder_layers else None)

    def encode_image(self, x: torch.Tensor, features: bool = False):
        """``[B,3,H,W]`` pixels (or cached maps) -> ``(regions [B,n,d], gate [B,1,h,w]|None)``."""
        return self.image_encoder(x, features=features)

    def encode_text(self, pad: torch.Tensor, ids: torch.Tensor | None = None,
                    hidden: torch.Tensor | None = None) -> torch.Tensor:
        """``pad [B,T]`` + ``ids [B,T]`` (or cached states ``hidden [B,T,H]``) -> ``[B,T,d]``."""
        return self.text_encoder(pad, ids=ids, hidden=hidden)

    def fuse(self, regions: torch.Tensor, tokens: torch.Tensor, pad: torch.Tensor):
        """Cross-attention + fusion of one image-text pair per row.

        Returns:
            ``(memory [B,N,d], memory_pad [B,N], pooled [B,d], attn dict)``.
        """
        attn = {}
        img = regions if self.use_image else None
        txt = tokens if self.use_text else None
        if self.cross is not None:
            img, txt, attn = self.cross(img, txt, pad)
        memory, memory_pad, pooled = self.fusion(img, txt, pad if txt is not None else None)
        return memory, memory_pad, pooled, attn

    def embed_image(self, regions: torch.Tensor) -> torch.Tensor:
        """Matching embedding ``[B, e]`` of regions ``[B, n, d]`` (mean-pooled)."""
        return self.matcher.embed_image(regions.mean(dim=1))

    def embed_text(self, tokens: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Matching embedding ``[B, e]`` of tokens ``[B, T, d]`` (masked mean)."""
        return self.matcher.embed_text(masked_mean(tokens, pad))
