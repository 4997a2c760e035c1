"""Splits, answer vocabulary, image loading and the training datasets.

Training items are (image, caption) pairs (each caption of a training image is one item) with,
when the dataset has questions, one question of the same image; a VQA-only dataset yields one
item per question. The collate function tokenises the captions for the decoder, gives the text
encoder its input (token ids, or cached token states, see :mod:`.features`) and marks which
(image, caption) pairs of the batch match (``same [B, B]``): every other pair is a negative of
the matching loss.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ensemblab.errors import DataError
from ensemblab.metrics.vqa import normalize_answer
from ensemblab.projects.crossattn_vl.readers import VLData


def split_keys(data: VLData, fractions=(0.75, 0.125, 0.125), seed: int = 0):
    """Image keys per split: the source's split when it has one, else a seeded split by image.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` (sorted within each split).
    """
    keys = sorted(data.images)
    if data.splits:
        return {s: sorted(k for k in keys if data.splits.get(k) == s)
                for s in ("train", "val", "test")}
    perm = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
    n_train = int(round(fractions[0] * len(keys)))
    n_val = int(round(fractions[1] * len(keys)))
    return {"train": sorted(perm[:n_train]), "val": sorted(perm[n_train:n_train + n_val]),
            "test": sorted(perm[n_train + n_val:])}


def answer_vocab(questions: list[dict], top_k: int = 1000) -> list[str]:
    """The ``top_k`` most frequent normalised answers (VQA v2 practice)."""
    counts = Counter(normalize_answer(a) for q in questions for a in q["answers"])
    return [a for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]]


def soft_target(answers: list[str], index: dict[str, int]) -> torch.Tensor:
    """VQA soft score per answer: ``min(#humans that gave it / 3, 1)``; ``[K]`` float."""
    target = torch.zeros(len(index))
    for ans, n in Counter(normalize_answer(a) for a in answers).items():
        if ans in index:
            target[index[ans]] = min(n / 3.0, 1.0)
    return target


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """RGB image resized to ``size x size``, values in [0, 1]: ``[3, size, size]``.

    The image encoders normalise their input themselves.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((size, size), Image.BILINEAR)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(path, f"cannot read image ({exc.__class__.__name__})") from None
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


class ImageStore:
    """Image key -> model input: pixels ``[3, S, S]``, or cached trunk maps after
    :meth:`attach` (one of ``V`` augmented views, each ``[C, h, w]``)."""

    def __init__(self, paths: dict[str, Path], size: int):
        self.paths, self.size = paths, size
        self.features: np.ndarray | None = None
        self.rows: dict[str, int] = {}

    @property
    def is_features(self) -> bool:
        return self.features is not None

    @property
    def views(self) -> int:
        return 1 if self.features is None else self.features.shape[1]

    def attach(self, features: np.ndarray, keys: list[str]) -> None:
        """Serve ``features [N, V, C, h, w]`` (rows in ``keys`` order) instead of pixels."""
        self.features, self.rows = features, {k: i for i, k in enumerate(keys)}

    def get(self, key: str, view: int = 0) -> torch.Tensor:
        if self.features is None:
            return load_image(self.paths[key], self.size)
        return torch.from_numpy(np.asarray(self.features[self.rows[key], view],
                                           dtype=np.float32))

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.get(key)


class VLTrainDataset(Dataset):
    """Training items: (image, caption[, question, answer target]).

    With ``per_image`` an epoch visits each image once with one of its captions drawn at
    random (a shorter epoch); otherwise every caption is one item. With ``random_view`` each
    item reads a random cached augmented view of its image.
    """

    def __init__(self, data: VLData, keys: list[str], store: ImageStore,
                 answers: list[str] | None = None, seed: int = 0, per_image: bool = False,
                 random_view: bool = False):
        self.store, self.random_view = store, random_view
        self.rng = random.Random(seed)
        self.index = {a: i for i, a in enumerate(answers or [])}
        self.by_key: dict[str, list[dict]] = {}
        for q in data.questions:
            self.by_key.setdefault(q["key"], []).append(q)
        keyset = set(keys)
        self.captions = data.captions
        caps = [(k, c) for k in keys for c in data.captions.get(k, [])]
        self.per_image = per_image and bool(caps)
        if self.per_image:
            self.items = [{"key": k, "caption": None} for k in keys if data.captions.get(k)]
        elif caps:
            self.items = [{"key": k, "caption": c} for k, c in caps]
        else:
            self.items = [{"key": q["key"], "caption": None, "q": q}
                          for q in data.questions if q["key"] in keyset]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.items[i])
        if self.per_image:
            item["caption"] = self.rng.choice(self.captions[item["key"]])
        q = item.pop("q", None)
        if q is None and self.by_key.get(item["key"]) and self.index:
            q = self.rng.choice(self.by_key[item["key"]])
        if q is not None and self.index:
            item["question"], item["target"] = q["question"], soft_target(q["answers"],
                                                                        self.index)
        view = self.rng.randrange(self.store.views) if self.random_view else 0
        item["image"] = self.store.get(item["key"], view)
        return item


class VLCollate:
    """Stack images, encode texts, mark matching pairs ``same [B, B]`` (image keys equal).

    Args:
        decoder_tokenizer: the caption decoder's tokenizer (targets ``cap_dec [B, T]``).
        text_inputs: a :class:`~ensemblab.projects.crossattn_vl.features.TextInputs` giving
            the text encoder's input (``{"pad", "ids" | "hidden"}``) for a list of texts.
        prompt: text fed to the cross-attention when captioning.
    """

    def __init__(self, decoder_tokenizer, text_inputs, prompt: str = ""):
        self.dec, self.text, self.prompt = decoder_tokenizer, text_inputs, prompt

    def __call__(self, items: list[dict]) -> dict:
        batch = {"keys": [it["key"] for it in items],
                 "image": torch.stack([it["image"] for it in items]),
                 "prompt": self.text([self.prompt] * len(items))}
        if all(it.get("caption") for it in items):
            captions = [it["caption"] for it in items]
            batch["cap_dec"] = self.dec.encode(captions)[0]
            batch["cap"] = self.text(captions)
            keys = batch["keys"]
            batch["same"] = torch.tensor([[a == b for b in keys] for a in keys])
        if all("question" in it for it in items):
            batch["q"] = self.text([it["question"] for it in items])
            batch["target"] = torch.stack([it["target"] for it in items])
        return batch
