"""Inference and evaluation: caption generation, retrieval scores, VQA answers, metrics.

Retrieval follows the Flickr/COCO protocol on the test images: image->text counts a hit when
any of the image's (five) captions ranks within k, text->image has one correct image. Chance
levels are reported beside the scores (Top-1 = 1 / test images for a random ranking; VQA
chance = always answering the most frequent training answer).
"""

from __future__ import annotations

from collections import Counter

import torch

from ensemblab.metrics.captions import caption_scores
from ensemblab.metrics.retrieval import image_text_retrieval
from ensemblab.metrics.vqa import normalize_answer, vqa_accuracy
from ensemblab.projects.crossattn_vl.data import ImageStore
from ensemblab.projects.crossattn_vl.network import VLNet


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


@torch.no_grad()
def image_regions(net: VLNet, store: ImageStore, keys: list[str], device, batch_size=32):
    """``{key: (regions [n, d], gate [1, h, w] | None)}`` for ``keys``."""
    out = {}
    for chunk in _batches(keys, batch_size):
        x = torch.stack([store[k] for k in chunk]).to(device)
        regions, gate = net.encode_image(x, features=store.is_features)
        for i, k in enumerate(chunk):
            out[k] = (regions[i], None if gate is None else gate[i])
    return out


@torch.no_grad()
def generate_captions(net: VLNet, tokenizer, regions: dict, prompt: str = "", beam: int = 3,
                      max_length: int = 24, length_penalty: float = 0.0,
                      batch_size: int = 32) -> dict[str, str]:
    """Caption every image key in ``regions`` (beam search; ``beam=1`` is greedy)."""
    out = {}
    keys = list(regions)
    for chunk in _batches(keys, batch_size):
        reg = torch.stack([regions[k][0] for k in chunk])
        ids, pad = tokenizer.encode([prompt] * len(chunk))
        ids, pad = ids.to(reg.device), pad.to(reg.device)
        memory, mpad, _, _ = net.fuse(reg, net.encode_text(ids, pad), pad)
        if beam <= 1:
            seqs = net.decoder.greedy(memory, mpad, max_length)
        else:
            seqs = net.decoder.beam_search(memory, mpad, beam, max_length, length_penalty)
        out.update({k: tokenizer.decode(s) for k, s in zip(chunk, seqs)})
    return out


@torch.no_grad()
def retrieval_scores(net: VLNet, tokenizer, regions: dict, captions: dict[str, list[str]],
                     batch_size: int = 64) -> dict[str, float]:
    """Image<->text Top-1/Top-5 on the given images and all their captions."""
    keys = list(regions)
    img_emb = torch.cat([net.matcher.embed_image(torch.stack([regions[k][0] for k in c])
                                                 .mean(dim=1)) for c in _batches(keys, 256)])
    texts, owner = [], []
    for i, k in enumerate(keys):
        texts += captions[k]
        owner += [i] * len(captions[k])
    dev = img_emb.device
    txt_emb = []
    for chunk in _batches(texts, batch_size):
        ids, pad = tokenizer.encode(chunk)
        ids, pad = ids.to(dev), pad.to(dev)
        tokens = net.encode_text(ids, pad)
        _, emb = net.embed_pair(tokens.new_zeros(len(chunk), 1, tokens.shape[-1]), tokens, pad)
        txt_emb.append(emb)
    sim = net.matcher.score_matrix(img_emb, torch.cat(txt_emb))
    scores = image_text_retrieval(sim.cpu().numpy(), owner, ks=(1, 5))
    # Uniform random ranking: P(top-1 hit) = 1/N images for both directions here.
    scores["chance_top1"] = 1.0 / len(keys)
    return scores


@torch.no_grad()
def answer_questions(net: VLNet, tokenizer, regions: dict, questions: list[dict],
                     answers: list[str], batch_size: int = 64) -> list[str]:
    """Predicted answer (argmax over the answer vocabulary) per question dict."""
    preds = []
    for chunk in _batches(questions, batch_size):
        reg = torch.stack([regions[q["key"]][0] for q in chunk])
        ids, pad = tokenizer.encode([q["question"] for q in chunk])
        ids, pad = ids.to(reg.device), pad.to(reg.device)
        _, _, pooled, _ = net.fuse(reg, net.encode_text(ids, pad), pad)
        preds += [answers[i] for i in net.classifier(pooled).argmax(dim=-1).tolist()]
    return preds


def vqa_scores(preds: list[str], questions: list[dict], train_questions: list[dict]) -> dict:
    """VQA accuracy and the most-frequent-training-answer baseline on the same questions."""
    counts = Counter(normalize_answer(a) for q in train_questions for a in q["answers"])
    majority = counts.most_common(1)[0][0] if counts else ""
    human = [q["answers"] for q in questions]
    return {"vqa_accuracy": vqa_accuracy(preds, human),
            "chance_vqa_accuracy": vqa_accuracy([majority] * len(questions), human),
            "n_questions": len(questions)}


def caption_metrics(generated: dict[str, str], references: dict[str, list[str]]) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D) of ``generated`` against ``references``."""
    res = {k: [v if v.strip() else "empty"] for k, v in generated.items()}
    return caption_scores({k: references[k] for k in res}, res)
