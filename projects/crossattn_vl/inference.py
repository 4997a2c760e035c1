"""Inference and evaluation: caption generation, retrieval scores, VQA answers, metrics.

Retrieval follows the Flickr/COCO protocol on the evaluated images: image->text counts a hit
when any of the image's (five) captions ranks within k, text->image has one correct image.
Chance levels are reported beside the scores (Top-k = k / images for a random ranking; VQA
chance = always answering the most frequent training answer).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ensemblab.errors import ConfigError
from ensemblab.metrics.captions import METRIC_NAMES, CaptionScorer, caption_scores
from ensemblab.metrics.retrieval import image_text_retrieval
from ensemblab.metrics.vqa import normalize_answer, vqa_accuracy
from ensemblab.multimodal.tokenizer import TextTokenizer
from ensemblab.projects.crossattn_vl.data import ImageStore
from ensemblab.projects.crossattn_vl.features import TextInputs
from ensemblab.projects.crossattn_vl.network import VLNet

KS = (1, 5, 10)


@dataclass
class EvalSet:
    """Everything needed to score a model on a set of images.

    Attributes:
        keys: image keys to score.
        store: their pixels or cached trunk maps.
        captions: image key -> reference captions.
        questions: question dicts of these images.
        text: the text encoder's inputs.
        decoder: the caption decoder's tokenizer.
        prompt: text fed with the image when captioning.
        answers: the answer vocabulary.
    """

    keys: list[str]
    store: ImageStore
    captions: dict[str, list[str]]
    text: TextInputs
    decoder: TextTokenizer
    prompt: str = ""
    questions: list[dict] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _to(inputs: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in inputs.items()}


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
def generate_captions(net: VLNet, text: TextInputs, decoder: TextTokenizer, regions: dict,
                      prompt: str = "", beam: int = 3, max_length: int = 24,
                      length_penalty: float = 0.0, batch_size: int = 32) -> dict[str, str]:
    """Caption every image key in ``regions`` (beam search; ``beam=1`` is greedy)."""
    out = {}
    for chunk in _batches(list(regions), batch_size):
        reg = torch.stack([regions[k][0] for k in chunk])
        p = _to(text([prompt] * len(chunk)), reg.device)
        memory, mpad, _, _ = net.fuse(reg, net.encode_text(**p), p["pad"])
        if beam <= 1:
            seqs = net.decoder.greedy(memory, mpad, max_length)
        else:
            seqs = net.decoder.beam_search(memory, mpad, beam, max_length, length_penalty)
        out.update({k: decoder.decode(s) for k, s in zip(chunk, seqs)})
    return out


@torch.no_grad()
def retrieval_scores(net: VLNet, text: TextInputs, regions: dict,
                     captions: dict[str, list[str]], batch_size: int = 64) -> dict[str, float]:
    """Image<->text R@1/5/10 among the given images and all their captions."""
    keys = list(regions)
    img_emb = torch.cat([net.embed_image(torch.stack([regions[k][0] for k in c]))
                         for c in _batches(keys, 256)])
    texts, owner = [], []
    for i, k in enumerate(keys):
        texts += captions[k]
        owner += [i] * len(captions[k])
    txt_emb = []
    for chunk in _batches(texts, batch_size):
        t = _to(text(chunk), img_emb.device)
        txt_emb.append(net.embed_text(net.encode_text(**t), t["pad"]))
    sim = net.matcher.score_matrix(img_emb, torch.cat(txt_emb))
    scores = image_text_retrieval(sim.cpu().numpy(), owner, ks=KS)
    # A uniform random ranking hits with probability k / N images in both directions.
    scores["chance_top1"] = 1.0 / len(keys)
    return scores


@torch.no_grad()
def answer_questions(net: VLNet, text: TextInputs, regions: dict, questions: list[dict],
                     answers: list[str], batch_size: int = 64) -> list[str]:
    """Predicted answer (argmax over the answer vocabulary) per question dict."""
    preds = []
    for chunk in _batches(questions, batch_size):
        reg = torch.stack([regions[q["key"]][0] for q in chunk])
        t = _to(text([q["question"] for q in chunk]), reg.device)
        _, _, pooled, _ = net.fuse(reg, net.encode_text(**t), t["pad"])
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


def caption_metrics(generated: dict[str, str], references: dict[str, list[str]],
                    metrics: Sequence[str] = METRIC_NAMES) -> dict:
    """Caption scores of ``generated`` against ``references``.

    Args:
        generated: ``{key: caption}``.
        references: ``{key: [reference, ...]}``.
        metrics: names from :data:`~ensemblab.metrics.captions.METRIC_NAMES` (BLEU-1..4,
            METEOR, ROUGE-L, CIDEr-D); a name outside them is a one-line ConfigError.
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ConfigError(f"eval.caption_metrics: unknown metric {unknown[0]!r}; "
                          f"choose from {', '.join(METRIC_NAMES)}")
    res = {k: [v if v.strip() else "empty"] for k, v in generated.items()}
    return caption_scores({k: references[k] for k in res}, res, metrics=metrics)


def _words(text: str) -> str:
    """Lower-case words without punctuation (PTB-like, without Java)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower())) or "empty"


@torch.no_grad()
def validation_scores(net: VLNet, evalset: EvalSet, max_length: int = 20,
                      batch_size: int = 64) -> dict[str, float]:
    """Fast per-epoch metrics: CIDEr-D of greedy captions, R@5 both ways, VQA accuracy.

    ``score`` is their mean (R@5 as the mean of both directions): the early-stopping metric.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    with_caps = [k for k in evalset.keys if evalset.captions.get(k)]
    regions = image_regions(net, evalset.store, evalset.keys, device, batch_size)
    out, parts = {}, []
    if net.decoder is not None and with_caps:
        gen = generate_captions(net, evalset.text, evalset.decoder,
                                {k: regions[k] for k in with_caps}, evalset.prompt, 1,
                                max_length, batch_size=batch_size)
        refs = {k: [_words(c) for c in evalset.captions[k]] for k in with_caps}
        with CaptionScorer(tokenize=False, metrics=("CIDEr",)) as scorer:
            out["cider"] = scorer.score(refs, {k: [_words(gen[k])] for k in with_caps})["CIDEr"]
        parts.append(out["cider"])
    if net.matcher is not None and with_caps:
        ret = retrieval_scores(net, evalset.text, {k: regions[k] for k in with_caps},
                               evalset.captions, batch_size)
        out.update(i2t_top5=ret["i2t_top5"], t2i_top5=ret["t2i_top5"])
        parts.append((ret["i2t_top5"] + ret["t2i_top5"]) / 2)
    if net.classifier is not None and evalset.questions:
        preds = answer_questions(net, evalset.text, regions, evalset.questions,
                                 evalset.answers, batch_size)
        out["vqa_accuracy"] = vqa_accuracy(preds, [q["answers"] for q in evalset.questions])
        parts.append(out["vqa_accuracy"])
    out["score"] = sum(parts) / max(1, len(parts))
    net.train(was_training)
    return out
