"""Text tokenizers without network access.

Either a SentencePiece-style Unigram tokenizer trained with HuggingFace ``tokenizers`` on the
training captions/questions (ALBERT's tokenizer is a SentencePiece Unigram model; the trained
``tokenizer.json`` is saved in the run folder), or the ``tokenizer.json`` of a local pretrained
model directory (e.g. the packaged MiniLM). Both encode to ``[CLS] ... [SEP]`` and pad with
``[PAD]``, so the caption decoder uses ``[CLS]`` as begin- and ``[SEP]`` as end-of-sequence.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from tokenizers.trainers import UnigramTrainer

from ensemblab.errors import ConfigError, DataError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_unigram(texts: Iterable[str], vocab_size: int = 1000) -> Tokenizer:
    """Train a lower-casing SentencePiece-style Unigram tokenizer on ``texts``."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise DataError(None, "no training text to build the tokenizer from")
    tok = Tokenizer(Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="[UNK]",
                             shrinking_factor=0.75)
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return tok


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with batching, padding and the ids the models need.

    Args:
        tokenizer: a tokenizer whose vocabulary has ``[PAD]``, ``[CLS]`` and ``[SEP]``.
        max_length: longest encoded sequence (special tokens included).
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int = 32):
        self.tok = tokenizer
        self.max_length = max_length
        ids = {name: tokenizer.token_to_id(name) for name in ("[PAD]", "[CLS]", "[SEP]")}
        missing = [k for k, v in ids.items() if v is None]
        if missing:
            raise ConfigError(f"tokenizer lacks special tokens {missing}")
        self.pad_id, self.bos_id, self.eos_id = ids["[PAD]"], ids["[CLS]"], ids["[SEP]"]
        self.tok.no_padding()
        self.tok.no_truncation()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1000,
              max_length: int = 32) -> TextTokenizer:
        return cls(train_unigram(texts, vocab_size), max_length)

    @classmethod
    def from_file(cls, path: str | Path, max_length: int = 32) -> TextTokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise ConfigError(f"{path}: tokenizer file not found")
        return cls(Tokenizer.from_file(str(path)), max_length)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def save(self, path: str | Path) -> None:
        from ensemblab.io import atomic_path

        with atomic_path(path) as tmp:
            self.tok.save(str(tmp))

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch: ``(ids [B, T] long, pad [B, T] bool, True at padding)``.

        Long texts are cut to ``max_length`` keeping the final ``[SEP]``.
        """
        rows = []
        for enc in self.tok.encode_batch(list(texts)):
            ids = enc.ids
            if len(ids) > self.max_length:
                ids = ids[: self.max_length - 1] + [self.eos_id]
            rows.append(ids)
        length = max(len(r) for r in rows)
        out = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out, out == self.pad_id

    def decode(self, ids: list[int]) -> str:
        """Token ids -> text, stopping at ``[SEP]`` and skipping special tokens."""
        ids = list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tok.decode(ids, skip_special_tokens=True).strip()
