"""The verbs of ``ensemblab crossattn_vl`` as plain functions: train, evaluate, ablate.

``cli.py`` only parses arguments; ``predict`` is :func:`.predict.predict`.

A run folder holds ``config.yaml``, ``tokenizer.json`` (the caption decoder's Unigram
vocabulary, trained on the training text), ``text_tokenizer.json`` (the text encoder's:
the same file for the from-config ALBERT, the WordPiece vocabulary for MiniLM),
``answers.json`` (VQA answer vocabulary), ``splits.json`` (image keys per split and the data
folder they came from), ``checkpoints/{best,last}.ckpt`` and, after ``evaluate``,
``metrics.json``, ``captions_<split>.json`` and ``overlays/*.png``: everything needed to
rebuild the model. Frozen encoder outputs are cached beside it (:mod:`.features`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader

from ensemblab.cli_common import (
    ALL_ITEMS,
    AUTO_SPLIT,
    HELD_OUT_SPLIT,
    resolve_split,
    scored_items_line,
)
from ensemblab.config import find_config, load_config
from ensemblab.engine import (
    build_trainer,
    check_run,
    fit,
    load_run_weights,
    open_run,
    prepare_run_dir,
    seed_everything,
    select_device,
)
from ensemblab.errors import ConfigError, DataError
from ensemblab.io import write_json
from ensemblab.multimodal.feature_cache import FeatureCache
from ensemblab.multimodal.image_encoder import FINETUNE
from ensemblab.multimodal.text_encoder import TEXT_SOURCES, pretrained_dir
from ensemblab.multimodal.tokenizer import TextTokenizer
from ensemblab.projects.crossattn_vl import MODEL, PROJECT, inference
from ensemblab.projects.crossattn_vl.data import (
    ImageStore,
    VLCollate,
    VLTrainDataset,
    answer_vocab,
    split_keys,
)
from ensemblab.projects.crossattn_vl.features import (
    VIEW_SETS,
    TextInputs,
    cache_image_features,
    cache_root,
    cache_text_features,
)
from ensemblab.projects.crossattn_vl.model import MATCHING_LOSSES, OPTIMIZERS, VLModule
from ensemblab.projects.crossattn_vl.network import VARIANTS
from ensemblab.projects.crossattn_vl.overlays import attention_overlay
from ensemblab.projects.crossattn_vl.readers import VLData, load_vl_data
from ensemblab.threads import loader_workers, set_threads

# A frozen trunk is kept in eval mode on purpose (BatchNorm statistics stay fixed).
warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")

EVAL_SPLITS = (AUTO_SPLIT, "test", HELD_OUT_SPLIT, "train", ALL_ITEMS)
CONFIG_DIR = Path(__file__).parent / "configs"
BASE_CONFIG = CONFIG_DIR / "paper.yaml"
"""The root config: every default, and the keys an older run's saved config lacks."""
CHOICES = {"train.optimizer": OPTIMIZERS, "model.variant": VARIANTS,
           "model.image.finetune": FINETUNE, "model.text.kind": TEXT_SOURCES.names(),
           "loss.matching": MATCHING_LOSSES.names(), "data.feature_augment": VIEW_SETS.names(),
           "data.caption_items": ("all", "per_image")}
"""The choice-valued config keys and their allowed values, checked when a config loads."""


def resolve_config(name: str | Path) -> Path:
    """A config file path, or the bare name of a file in ``configs/`` (``cpu_quick``)."""
    return find_config(name, CONFIG_DIR)


def build_tokenizers(cfg: dict, data: VLData, train_keys: list[str]):
    """``(decoder tokenizer, text-encoder tokenizer)``.

    The decoder's Unigram vocabulary is trained on the training captions and questions; the
    text encoder uses it too when built from config, or its pretrained folder's tokenizer.
    """
    d, text = cfg["data"], cfg["model"]["text"]
    keys = set(train_keys)
    corpus = [c for k in train_keys for c in data.captions.get(k, [])]
    corpus += [q["question"] for q in data.questions if q["key"] in keys]
    decoder = TextTokenizer.train(corpus, d["tokenizer_vocab"], d["max_length"])
    folder = pretrained_dir(text["kind"], text.get("path"))
    return decoder, decoder if folder is None else TextTokenizer.from_file(folder,
                                                                          d["max_length"])


def _module(cfg: dict, decoder: TextTokenizer, text: TextTokenizer, n_answers: int) -> VLModule:
    return VLModule(cfg, decoder.vocab_size, decoder.pad_id, decoder.bos_id, decoder.eos_id,
                    n_answers, text_vocab_size=text.vocab_size, text_pad_id=text.pad_id)


def prepare_inputs(cfg: dict, module: VLModule, data: VLData, text_tok: TextTokenizer,
                   run_dir: Path, device) -> tuple[ImageStore, TextInputs]:
    """Image store and text inputs of ``data``, with frozen encoder outputs cached."""
    net = module.net
    store = ImageStore(data.images, cfg["data"]["image_size"])
    text = TextInputs(text_tok)
    if cfg["model"]["cache_features"]:
        cache = FeatureCache(cache_root(cfg, run_dir))
        if net.image_encoder.has_trunk:
            cache_image_features(net.image_encoder, store, cache, cfg["data"]["feature_augment"],
                                 device)
        if net.text_encoder.cacheable:
            texts = [c for caps in data.captions.values() for c in caps]
            texts += [q["question"] for q in data.questions] + [cfg["data"]["caption_prompt"]]
            cache_text_features(net.text_encoder, text, texts, cache, device)
    module.features = store.is_features
    return store, text


def _set_threads(cfg: dict) -> None:
    """``train.threads`` CPU threads unless ``--threads`` was given (:mod:`ensemblab.threads`)."""
    set_threads(configured=cfg["train"]["threads"])


def _evalset(cfg, data: VLData, keys, store, text, decoder, answers) -> inference.EvalSet:
    keyset = set(keys)
    return inference.EvalSet(keys=list(keys), store=store, captions=data.captions, text=text,
                             decoder=decoder, prompt=cfg["data"]["caption_prompt"],
                             questions=[q for q in data.questions if q["key"] in keyset],
                             answers=answers)


def train_run(cfg: dict, data_dir, out, device: str = "auto", resume: bool = False,
              progress_bar: bool = True) -> Path:
    """Train one model; returns the run folder."""
    data = load_vl_data(data_dir, cfg["data"].get("image_dir"))
    run_dir = prepare_run_dir(out, cfg, resume=resume, project=PROJECT, kind=MODEL)
    _set_threads(cfg)
    seed_everything(cfg["seed"])
    splits = split_keys(data, cfg["data"]["split"], cfg["data"]["split_seed"])
    if not splits["train"] or not splits["val"]:
        raise DataError(data_dir, f"too few images for a train/val split ({len(data.images)})")
    write_json(run_dir / "splits.json", {**splits, "data_dir": str(Path(data_dir).resolve())})
    decoder, text_tok = build_tokenizers(cfg, data, splits["train"])
    decoder.save(run_dir / "tokenizer.json")
    text_tok.save(run_dir / "text_tokenizer.json")
    train_q = [q for q in data.questions if q["key"] in set(splits["train"])]
    answers = answer_vocab(train_q, cfg["data"]["top_answers"]) if cfg["tasks"]["vqa"] else []
    write_json(run_dir / "answers.json", answers)
    module = _module(cfg, decoder, text_tok, len(answers))
    dev = select_device(device)
    store, text = prepare_inputs(cfg, module, data, text_tok, run_dir, dev)
    t, e = cfg["train"], cfg["eval"]
    collate = VLCollate(decoder, text, cfg["data"]["caption_prompt"])
    per_image = cfg["data"]["caption_items"] == "per_image"
    loaders = [DataLoader(VLTrainDataset(data, splits[s], store, answers, cfg["seed"],
                                         per_image and s == "train", random_view=s == "train"),
                          batch_size=t["batch_size"], shuffle=s == "train", collate_fn=collate,
                          num_workers=loader_workers(t["num_workers"])) for s in ("train", "val")]
    module.val_scores = partial(
        inference.validation_scores,
        evalset=_evalset(cfg, data, splits["val"], store, text, decoder, answers),
        max_length=e["max_length"], batch_size=e["batch_size"])
    stop = ([EarlyStopping("val/score", mode="max", patience=t["early_stop_patience"])]
            if t["early_stop_patience"] else [])
    trainer = build_trainer(run_dir, t["epochs"], device=device, monitor="val/score",
                            mode="max", callbacks=stop, gradient_clip_val=t["gradient_clip"],
                            progress_bar=progress_bar, log_every_n_steps=5)
    fit(trainer, module, loaders[0], loaders[1], resume=resume)
    return run_dir


def train(config: str | Path, data, out, overrides: Sequence[str] = (), device: str = "auto",
          resume: bool = False) -> Path:
    """The ``train`` verb: ``config`` (a file or a name in ``configs/``) with ``key=value``
    ``overrides``, trained on ``data`` into the run folder ``out``."""
    cfg = load_config(resolve_config(config), list(overrides), choices=CHOICES)
    return train_run(cfg, data, out, device, resume=resume)


def ablate(config: str | Path, data, out, overrides: Sequence[str] = (),
           variants: Sequence[str] | None = None, seeds: Sequence[int] = (0,),
           device: str = "auto") -> Path:
    """The ``ablate`` verb: every variant (default: all of them) x seed trained and evaluated
    from ``config``; returns ``OUT/ablation.md`` (:func:`.ablation.run_ablation`)."""
    from ensemblab.projects.crossattn_vl.ablation import run_ablation  # it imports this module

    cfg = load_config(resolve_config(config), list(overrides), choices=CHOICES)
    return run_ablation(cfg, data, out, variants or VARIANTS, seeds, device)


def load_run(run_dir, device: str = "auto", verb: str | None = None):
    """``(cfg, VLModule in eval mode, decoder tokenizer, text tokenizer, answers, splits)``.

    ``verb`` is named in the message about a run of another project
    (:func:`ensemblab.run_record.check_run`).
    """
    check_run(run_dir, PROJECT, (MODEL,), verb)
    run_dir, cfg = open_run(run_dir, base=BASE_CONFIG)
    length = cfg["data"]["max_length"]
    decoder = TextTokenizer.from_file(run_dir / "tokenizer.json", length)
    text_tok = TextTokenizer.from_file(run_dir / "text_tokenizer.json", length)
    answers = json.loads((run_dir / "answers.json").read_text())
    splits = json.loads((run_dir / "splits.json").read_text())
    module = _module(cfg, decoder, text_tok, len(answers))
    load_run_weights(module, run_dir)
    module.to(select_device(device)).eval()
    return cfg, module, decoder, text_tok, answers, splits


def _eval_keys(splits: dict, data: VLData, data_dir, split: str) -> tuple[str, list[str]]:
    """``(split name, image keys)`` to score.

    ``auto`` (:func:`ensemblab.cli_common.resolve_split`) scores every image of a folder the
    run was not trained on; on its own folder it scores the held-out split, here ``test``
    when the split has one: ``val`` picked the checkpoint, so only ``test`` is unseen.
    """
    if split not in EVAL_SPLITS:
        raise ConfigError(f"--split {split!r}; one of {EVAL_SPLITS}")
    held_out = "test" if splits.get("test") else HELD_OUT_SPLIT
    resolved = resolve_split(split, data_dir, splits.get("data_dir"), held_out=held_out)
    keys = sorted(data.images) if resolved == ALL_ITEMS else \
        [k for k in splits[resolved] if k in data.images]
    if not keys:
        raise DataError(data_dir, f"no image of the run's {resolved} split is in this folder")
    return resolved, keys


def evaluate(run_dir, data_dir, split: str = "auto", device: str = "auto") -> dict:
    """Metrics of a run on ``data_dir``; writes ``metrics.json``, captions and overlays.

    ``metrics.json`` holds ``CIDEr``, ``Bleu_1``..``Bleu_4``, ``METEOR``, ``ROUGE_L``,
    ``i2t_top1/5/10``, ``t2i_top1/5/10`` (and ``vqa_accuracy`` with questions), each beside
    its chance level where one exists.
    """
    run_dir = Path(run_dir)
    cfg, module, decoder, text_tok, answers, splits = load_run(run_dir, device, "evaluate")
    _set_threads(cfg)
    data = load_vl_data(data_dir, cfg["data"].get("image_dir"))
    split, keys = _eval_keys(splits, data, data_dir, split)
    print(scored_items_line(len(keys), data_dir, split), flush=True)
    store, text = prepare_inputs(cfg, module, data, text_tok, run_dir, module.device)
    e, net, dev = cfg["eval"], module.net, module.device
    regions = inference.image_regions(net, store, keys, dev, e["batch_size"])
    metrics: dict = {"split": split, "n_images": len(keys), "variant": net.variant}
    generated: dict[str, str] = {}
    with_caps = [k for k in keys if data.captions.get(k)]
    if net.decoder is not None and with_caps:
        generated = inference.generate_captions(
            net, text, decoder, {k: regions[k] for k in with_caps},
            cfg["data"]["caption_prompt"], e["beam"], e["max_length"], e["length_penalty"],
            e["batch_size"])
        metrics.update(inference.caption_metrics(generated, data.captions,
                                                 e["caption_metrics"]))
        write_json(run_dir / f"captions_{split}.json",
                   {k: {"generated": generated[k], "references": data.captions[k]}
                    for k in with_caps})
    if net.matcher is not None and with_caps:
        metrics.update(inference.retrieval_scores(net, text, {k: regions[k] for k in with_caps},
                                                  data.captions, e["batch_size"]))
    keyset = set(keys)
    test_q = [q for q in data.questions if q["key"] in keyset]
    predicted: dict = {}
    if net.classifier is not None and test_q:
        preds = inference.answer_questions(net, text, regions, test_q, answers, e["batch_size"])
        predicted = {q["question_id"]: p for q, p in zip(test_q, preds)}
        train_q = [q for q in data.questions if q["key"] in set(splits["train"])]
        metrics.update(inference.vqa_scores(preds, test_q, train_q))
    for i, k in enumerate(keys[: e["overlays"]]):
        q = next((q for q in test_q if q["key"] == k), None)
        prompt = q["question"] if q else cfg["data"]["caption_prompt"]
        title = (f"{q['question']} -> {predicted.get(q['question_id'], '?')}" if q
                 else f"caption: {generated.get(k, '')}")
        attention_overlay(net, TextInputs(text_tok), data.images[k], prompt, title,
                          run_dir / "overlays" / f"overlay_{i}.png", cfg["data"]["image_size"],
                          dev)
    write_json(run_dir / "metrics.json", metrics)
    return metrics
