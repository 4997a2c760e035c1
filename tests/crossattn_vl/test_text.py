"""Offline tokenizer and text encoders (trained ALBERT-style and the packaged MiniLM)."""

import torch

from ensemblab.multimodal.text_encoder import TextEncoder, minilm_dir
from ensemblab.multimodal.tokenizer import TextTokenizer

CORPUS = ["a black dog runs on the grass", "two children play in the water",
          "a man rides a red bike", "a brown dog jumps over a fence"] * 10


def test_unigram_tokenizer_roundtrip_and_save(tmp_path):
    tok = TextTokenizer.train(CORPUS, vocab_size=80, max_length=40)
    ids, pad = tok.encode(["a black dog", "two children play in the water"])
    assert ids[0, 0] == tok.bos_id and tok.eos_id in ids[0].tolist()
    assert pad[0].any() and not pad[1].any()
    assert tok.decode(ids[0, 1:].tolist()) == "a black dog"
    tok.save(tmp_path / "tokenizer.json")
    again = TextTokenizer.from_file(tmp_path / "tokenizer.json", max_length=12)
    assert torch.equal(again.encode(["a black dog"])[0], tok.encode(["a black dog"])[0])
    long_ids, _ = again.encode([" ".join(CORPUS[:4])])
    assert long_ids.shape[1] == 12 and long_ids[0, -1] == tok.eos_id


def test_albert_encoder_from_vocabulary():
    tok = TextTokenizer.train(CORPUS, vocab_size=80)
    enc = TextEncoder(32, kind="albert", vocab_size=tok.vocab_size, pad_id=tok.pad_id,
                      hidden=32, layers=1, heads=2).eval()
    ids, pad = tok.encode(["a black dog", "a man rides a red bike"])
    out = enc(pad, ids=ids)
    assert out.shape == (2, ids.shape[1], 32)


def test_packaged_minilm_loads_offline():
    folder = minilm_dir()
    tok = TextTokenizer.from_file(folder)
    enc = TextEncoder(16, kind="minilm", freeze=True).eval()
    ids, pad = tok.encode(["a dog on the grass", "a cat"])
    assert enc(pad, ids=ids).shape == (2, ids.shape[1], 16)
    assert tok.decode(ids[0, 1:].tolist()) == "a dog on the grass"
