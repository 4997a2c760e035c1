"""Task heads on the fused representation (paper Sec. 3.4).

* :class:`ClassificationHead`: pooled fused vector -> answer/class logits (VQA, sentiment).
* :class:`MatchingHead`: image and text embeddings on the unit sphere; distance D feeds the
  contrastive loss and ``-D`` is the retrieval score.
* :class:`CaptionDecoder`: a Transformer decoder over the fused memory {Y_C}, trained with
  teacher forcing, decoded greedily or by beam search.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassificationHead(nn.Module):
    """``pooled [B, d] -> logits [B, K]`` through a one-hidden-layer MLP."""

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * dim, num_classes))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


class MatchingHead(nn.Module):
    """Project pooled image and text vectors ``[B, d]`` to unit embeddings ``[B, e]``.

    Args:
        dim: width d of the pooled vectors.
        emb_dim: embedding width e.
        dropout: dropout on the pooled vectors while training (the head sees few images and
            memorises them quickly otherwise).
    """

    def __init__(self, dim: int, emb_dim: int = 128, dropout: float = 0.0):
        super().__init__()
        self.image = nn.Linear(dim, emb_dim)
        self.text = nn.Linear(dim, emb_dim)
        self.drop = nn.Dropout(dropout)

    def embed_image(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(self.drop(pooled)), dim=-1)

    def embed_text(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(self.drop(pooled)), dim=-1)

    @staticmethod
    def distance(img_emb: torch.Tensor, txt_emb: torch.Tensor) -> torch.Tensor:
        """Euclidean distance D of paired rows ``[N, e], [N, e] -> [N]``."""
        return (img_emb - txt_emb).norm(dim=-1)

    @staticmethod
    def score_matrix(img_emb: torch.Tensor, txt_emb: torch.Tensor) -> torch.Tensor:
        """Retrieval scores ``-D`` for all pairs: ``[Ni, e], [Nt, e] -> [Ni, Nt]``."""
        return -torch.cdist(img_emb, txt_emb)


class CaptionDecoder(nn.Module):
    """Transformer decoder generating a caption from the fused memory.

    Args:
        vocab_size: output vocabulary V.
        dim: width d (the memory's width).
        heads, layers: decoder heads and layers.
        max_length: longest sequence (positions).
        pad_id, bos_id, eos_id: special token ids.
        dropout: dropout.
    """

    def __init__(self, vocab_size: int, dim: int, heads: int = 4, layers: int = 2,
                 max_length: int = 32, pad_id: int = 0, bos_id: int = 2, eos_id: int = 3,
                 dropout: float = 0.1):
        super().__init__()
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.max_length = max_length
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.pos = nn.Embedding(max_length, dim)
        layer = nn.TransformerDecoderLayer(dim, heads, 2 * dim, dropout, batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor,
                memory_pad: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: ``tokens [B, T]`` (starting with BOS) -> logits ``[B, T, V]``."""
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos(torch.arange(t, device=tokens.device))
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=tokens.device), 1)
        x = self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=tokens == self.pad_id,
                         memory_key_padding_mask=memory_pad, tgt_is_causal=True)
        return self.out(self.norm(x))

    def _next_logprobs(self, tokens, memory, memory_pad):
        logits = self.forward(tokens, memory, memory_pad)[:, -1]
        # PAD and BOS are never targets in training, so their logits are untrained: ban them.
        logits[:, [self.pad_id, self.bos_id]] = float("-inf")
        return F.log_softmax(logits, dim=-1)

    @torch.no_grad()
    def greedy(self, memory: torch.Tensor, memory_pad: torch.Tensor | None = None,
               max_length: int | None = None) -> list[list[int]]:
        """Greedy decoding: list of token-id lists (BOS and EOS stripped)."""
        steps = min(max_length or self.max_length, self.max_length)
        bsz = memory.shape[0]
        tokens = torch.full((bsz, 1), self.bos_id, dtype=torch.long, device=memory.device)
        done = torch.zeros(bsz, dtype=torch.bool, device=memory.device)
        for _ in range(steps - 1):
            nxt = self._next_logprobs(tokens, memory, memory_pad).argmax(dim=-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            done |= nxt == self.eos_id
            if done.all():
                break
        return [self._strip(row) for row in tokens[:, 1:].tolist()]

    @torch.no_grad()
    def beam_search(self, memory: torch.Tensor, memory_pad: torch.Tensor | None = None,
                    beam: int = 3, max_length: int | None = None,
                    length_penalty: float = 0.0) -> list[list[int]]:
        """Beam search per sample; hypotheses ranked by ``logp / len**length_penalty``.

        With ``beam=1`` this is exactly greedy decoding.
        """
        steps = min(max_length or self.max_length, self.max_length)
        return [self._beam_one(memory[i:i + 1],
                               None if memory_pad is None else memory_pad[i:i + 1],
                               beam, steps, length_penalty) for i in range(memory.shape[0])]

    def _beam_one(self, memory, memory_pad, beam, steps, alpha):
        dev = memory.device
        seqs = torch.full((1, 1), self.bos_id, dtype=torch.long, device=dev)
        scores = torch.zeros(1, device=dev)
        finished: list[tuple[float, list[int]]] = []
        for _ in range(steps - 1):
            k = seqs.shape[0]
            mem = memory.expand(k, -1, -1)
            pad = None if memory_pad is None else memory_pad.expand(k, -1)
            cand = (scores[:, None] + self._next_logprobs(seqs, mem, pad)).flatten()
            top, idx = cand.topk(min(beam, cand.numel()))
            vocab = cand.numel() // k
            rows, toks = idx // vocab, idx % vocab
            keep_rows, keep_scores = [], []
            for s, r, t in zip(top.tolist(), rows.tolist(), toks.tolist()):
                seq = seqs[r].tolist()[1:] + [t]
                if t == self.eos_id:
                    finished.append((s / max(1, len(seq)) ** alpha, seq))
                else:
                    keep_rows.append(torch.cat([seqs[r], seqs.new_tensor([t])]))
                    keep_scores.append(s)
            if len(finished) >= beam or not keep_rows:
                break
            seqs, scores = torch.stack(keep_rows), torch.tensor(keep_scores, device=dev)
        if len(finished) < beam:
            for s, row in zip(scores.tolist(), seqs.tolist()):
                finished.append((s / max(1, len(row) - 1) ** alpha, row[1:]))
        best = max(finished, key=lambda f: f[0])[1]
        return self._strip(best)

    def _strip(self, row: list[int]) -> list[int]:
        out = []
        for t in row:
            if t in (self.eos_id, self.pad_id):
                break
            out.append(t)
        return out
