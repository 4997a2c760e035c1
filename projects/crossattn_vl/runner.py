"""Train, evaluate, predict and ablate: the work behind the CLI verbs.

A run folder holds ``config.yaml``, ``tokenizer.json`` (trained on the training text, or the
pretrained model's), ``answers.json`` (VQA answer vocabulary), ``splits.json`` (image keys per
split), ``checkpoints/{best,last}.ckpt`` and, after ``evaluate``, ``metrics.json``,
``captions_test.json`` and ``overlays/*.png``: everything needed to rebuild the model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ensemblab.engine import (
    best_checkpoint,
    build_trainer,
    fit,
    open_run,
    prepare_run_dir,
    seed_everything,
    select_device,
)
from ensemblab.errors import DataError
from ensemblab.io import write_json
from ensemblab.multimodal.text_encoder import pretrained_dir
from ensemblab.multimodal.tokenizer import TextTokenizer
from ensemblab.projects.crossattn_vl import inference
from ensemblab.projects.crossattn_vl.data import (
    ImageStore,
    VLCollate,
    VLTrainDataset,
    answer_vocab,
    split_keys,
)
from ensemblab.projects.crossattn_vl.model import VLModule
from ensemblab.projects.crossattn_vl.overlays import attention_overlay
from ensemblab.projects.crossattn_vl.readers import load_vl_data

# A frozen backbone is kept in eval mode on purpose (BatchNorm statistics stay fixed).
warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")


def _uses_cache(cfg: dict) -> bool:
    return bool(cfg["model"]["cache_features"] and cfg["model"]["image"]["freeze_backbone"])


def _cache_features(module: VLModule, store: ImageStore, keys, cache_path: Path | None) -> None:
    """Fill ``store`` with frozen-backbone maps, reusing ``cache_path`` (same backbone) if set."""
    backbone = module.net.image_encoder.backbone
    if cache_path is not None and cache_path.is_file():
        cached = torch.load(cache_path, map_location="cpu", weights_only=True)
        if cached["size"] == store.size and set(keys) <= set(cached["features"]):
            backbone.load_state_dict(cached["backbone"])
            store.features = cached["features"]
            return
    backbone.eval()
    store.cache(module.net.image_encoder.backbone_features, keys)
    if cache_path is not None:
        from ensemblab.io import atomic_path

        with atomic_path(cache_path) as tmp:
            torch.save({"size": store.size, "backbone": backbone.state_dict(),
                        "features": store.features}, tmp)


def build_tokenizer(cfg: dict, data, train_keys: list[str]) -> TextTokenizer:
    """Train the Unigram tokenizer on the training text, or take the pretrained model's."""
    text, d = cfg["model"]["text"], cfg["data"]
    folder = pretrained_dir(text["kind"], text.get("path"))
    if folder is not None:
        return TextTokenizer.from_file(folder, d["max_length"])
    keys = set(train_keys)
    corpus = [c for k in train_keys for c in data.captions.get(k, [])]
    corpus += [q["question"] for q in data.questions if q["key"] in keys]
    return TextTokenizer.train(corpus, d["tokenizer_vocab"], d["max_length"])


def train_run(cfg: dict, data_dir, out, device: str = "auto", resume: bool = False,
              progress_bar: bool = True, cache_path: Path | None = None) -> Path:
    """Train one model; returns the run folder."""
    data = load_vl_data(data_dir, cfg["data"].get("image_dir"))
    run_dir = prepare_run_dir(out, cfg, resume=resume)
    seed_everything(cfg["seed"])
    splits = split_keys(data, cfg["data"]["split"], cfg["data"]["split_seed"])
    if not splits["train"] or not splits["val"]:
        raise DataError(data_dir, f"too few images for a train/val split ({len(data.images)})")
    write_json(run_dir / "splits.json", splits)
    tok = build_tokenizer(cfg, data, splits["train"])
    tok.save(run_dir / "tokenizer.json")
    train_q = [q for q in data.questions if q["key"] in set(splits["train"])]
    answers = answer_vocab(train_q, cfg["data"]["top_answers"]) if cfg["tasks"]["vqa"] else []
    write_json(run_dir / "answers.json", answers)
    module = VLModule(cfg, tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, len(answers),
                      features=_uses_cache(cfg))
    store = ImageStore(data.images, cfg["data"]["image_size"])
    if _uses_cache(cfg):
        _cache_features(module, store, splits["train"] + splits["val"], cache_path)
    t = cfg["train"]
    collate = VLCollate(tok, cfg["data"]["caption_prompt"])
    per_image = cfg["data"].get("caption_items", "all") == "per_image"
    loaders = [DataLoader(VLTrainDataset(data, splits[s], store, answers, cfg["seed"],
                                         per_image and s == "train"),
                          batch_size=t["batch_size"], shuffle=s == "train", collate_fn=collate,
                          num_workers=t["num_workers"]) for s in ("train", "val")]
    trainer = build_trainer(run_dir, t["epochs"], device=device, monitor="val/loss", mode="min",
                            gradient_clip_val=t["gradient_clip"], progress_bar=progress_bar,
                            log_every_n_steps=5)
    fit(trainer, module, loaders[0], loaders[1], resume=resume)
    return run_dir


def load_run(run_dir, device: str = "auto"):
    """``(cfg, VLModule in eval mode on device, tokenizer, answers, splits)`` of a run."""
    run_dir, cfg = open_run(run_dir)
    tok = TextTokenizer.from_file(run_dir / "tokenizer.json", cfg["data"]["max_length"])
    answers = json.loads((run_dir / "answers.json").read_text())
    splits = json.loads((run_dir / "splits.json").read_text())
    module = VLModule(cfg, tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, len(answers),
                      features=_uses_cache(cfg))
    ckpt = torch.load(best_checkpoint(run_dir), map_location="cpu", weights_only=True)
    module.load_state_dict(ckpt["state_dict"])
    module.to(select_device(device)).eval()
    return cfg, module, tok, answers, splits


def evaluate_run(run_dir, data_dir, device: str = "auto") -> dict:
    """Test-split metrics of a run; writes ``metrics.json``, captions and overlays."""
    run_dir = Path(run_dir)
    cfg, module, tok, answers, splits = load_run(run_dir, device)
    data = load_vl_data(data_dir, cfg["data"].get("image_dir"))
    keys = [k for k in splits["test"] if k in data.images] or sorted(data.images)
    size, e, dev = cfg["data"]["image_size"], cfg["eval"], module.device
    net = module.net
    store = ImageStore(data.images, size)
    if _uses_cache(cfg):
        store.cache(net.image_encoder.backbone_features, keys, device=dev)
    regions = inference.image_regions(net, store, keys, dev, e["batch_size"])
    metrics: dict = {"split": "test", "n_images": len(keys), "variant": net.variant}
    generated: dict[str, str] = {}
    with_caps = [k for k in keys if data.captions.get(k)]
    if net.decoder is not None and with_caps:
        generated = inference.generate_captions(
            net, tok, {k: regions[k] for k in with_caps}, cfg["data"]["caption_prompt"],
            e["beam"], e["max_length"], e["length_penalty"], e["batch_size"])
        metrics["captioning"] = inference.caption_metrics(generated, data.captions)
        write_json(run_dir / "captions_test.json",
                   {k: {"generated": generated[k], "references": data.captions[k]}
                    for k in with_caps})
    if net.matcher is not None and with_caps:
        metrics["retrieval"] = inference.retrieval_scores(
            net, tok, {k: regions[k] for k in with_caps}, data.captions, e["batch_size"])
    keyset = set(keys)
    test_q = [q for q in data.questions if q["key"] in keyset]
    predicted: dict = {}
    if net.classifier is not None and test_q:
        preds = inference.answer_questions(net, tok, regions, test_q, answers, e["batch_size"])
        predicted = {q["question_id"]: p for q, p in zip(test_q, preds)}
        train_q = [q for q in data.questions if q["key"] in set(splits["train"])]
        metrics["vqa"] = inference.vqa_scores(preds, test_q, train_q)
    for i, k in enumerate(keys[: e["overlays"]]):
        q = next((q for q in test_q if q["key"] == k), None)
        text = q["question"] if q else cfg["data"]["caption_prompt"]
        title = (f"{q['question']} -> {predicted.get(q['question_id'], '?')}" if q
                 else f"caption: {generated.get(k, '')}")
        attention_overlay(net, tok, data.images[k], text, title,
                          run_dir / "overlays" / f"overlay_{i}.png", size, dev)
    write_json(run_dir / "metrics.json", metrics)
    return metrics
