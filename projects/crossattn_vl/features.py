"""Cached encoder outputs for crossattn_vl: frozen image-trunk maps and frozen text states.

Image maps are cached per dataset (all of its images), encoder weights, image size and
augmentation views; text states per encoder weights, tokenizer length and text list. Both live
in a :class:`~ensemblab.multimodal.feature_cache.FeatureCache` under ``cache_dir`` (default: the
run folder's parent, so runs side by side share them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ensemblab.multimodal.feature_cache import (
    FeatureCache,
    digest_of,
    files_digest,
    state_digest,
)
from ensemblab.multimodal.image_encoder import ImageEncoder
from ensemblab.multimodal.text_encoder import TextEncoder
from ensemblab.multimodal.tokenizer import TextTokenizer
from ensemblab.projects.crossattn_vl.data import ImageStore, load_image
from ensemblab.registry import Registry

VIEW_SETS = Registry("feature augmentation")
"""Name -> the augmented views cached per image (functions of ``[B, 3, H, W]``)."""
VIEW_SETS.register("none", (lambda x: x,))
VIEW_SETS.register("hflip", (lambda x: x, lambda x: x.flip(-1)))


def cache_root(cfg: dict, run_dir: str | Path) -> Path:
    """``cfg["cache_dir"]``, or ``feature_cache/`` beside the run folder."""
    return Path(cfg["cache_dir"]) if cfg.get("cache_dir") else \
        Path(run_dir).resolve().parent / "feature_cache"


def _log(message: str) -> None:
    print(f"crossattn_vl: {message}", file=sys.stderr, flush=True)


@torch.no_grad()
def cache_image_features(encoder: ImageEncoder, store: ImageStore, cache: FeatureCache,
                         augment: str = "none", device="cpu", batch_size: int = 32) -> None:
    """Attach the trunk maps of every image in ``store`` (computed once, then read back).

    Args:
        encoder: the image encoder whose frozen trunk is cached.
        store: images to cover; served as maps ``[V, C, h, w]`` afterwards.
        cache: where the maps live.
        augment: a name in :data:`VIEW_SETS` (view 0 is always the plain image).
        device: where the trunk runs.
        batch_size: images per trunk call.
    """
    views = VIEW_SETS.get(augment)
    keys = sorted(store.paths)
    encoder.trunk.to(device).eval()
    probe = encoder.trunk_features(load_image(store.paths[keys[0]], store.size)[None].to(device))
    fields = {"kind": "image trunk", "encoder": encoder.encoder_name,
              "weights_sha256": state_digest(encoder.trunk), "size": store.size,
              "augment": augment, "images": files_digest((k, store.paths[k]) for k in keys)}

    def fill(out: np.ndarray) -> None:
        _log(f"caching {encoder.encoder_name} maps of {len(keys)} images x {len(views)} "
             f"view(s) at {store.size} px")
        for i in range(0, len(keys), batch_size):
            x = torch.stack([load_image(store.paths[k], store.size)
                             for k in keys[i:i + batch_size]]).to(device)
            for v, view in enumerate(views):
                out[i:i + len(x), v] = encoder.trunk_features(view(x)).cpu().numpy()

    label = f"{encoder.encoder_name}_{store.size}px_{augment}"
    shape = (len(keys), len(views), *probe.shape[1:])
    store.attach(cache.get(label, fields, shape, "float16", fill), keys)


class TextInputs:
    """Texts -> the text encoder's input ``{"pad": [B, T], "ids" | "hidden": ...}``.

    Without a cache it tokenises (``ids [B, T]``); with :meth:`attach` it reads the frozen
    encoder's token states ``hidden [B, T, H]`` of known texts from the cache and tokenises
    any other text (the network then runs the encoder on it).

    Args:
        tokenizer: the text encoder's tokenizer.
    """

    def __init__(self, tokenizer: TextTokenizer):
        self.tok = tokenizer
        self.hidden: np.ndarray | None = None
        self.lengths: np.ndarray | None = None
        self.rows: dict[str, int] = {}

    def attach(self, hidden: np.ndarray, lengths: np.ndarray, texts: list[str]) -> None:
        """Serve ``hidden [N, T, H]`` with ``lengths [N]`` for ``texts`` (rows in order)."""
        self.hidden, self.lengths = hidden, lengths
        self.rows = {t: i for i, t in enumerate(texts)}

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if self.hidden is None or any(t not in self.rows for t in texts):
            ids, pad = self.tok.encode(texts)
            return {"pad": pad, "ids": ids}
        rows = [self.rows[t] for t in texts]
        lengths = self.lengths[rows]
        length = int(lengths.max())
        hidden = torch.from_numpy(np.asarray(self.hidden[rows, :length], dtype=np.float32))
        pad = torch.arange(length)[None, :] >= torch.from_numpy(lengths)[:, None]
        return {"pad": pad, "hidden": hidden}


@torch.no_grad()
def cache_text_features(encoder: TextEncoder, inputs: TextInputs, texts: list[str],
                        cache: FeatureCache, device="cpu", batch_size: int = 64) -> None:
    """Attach the frozen transformer's token states of ``texts`` to ``inputs``."""
    texts = sorted(set(texts))
    tok = inputs.tok
    lengths = np.array([min(len(e.ids), tok.max_length)
                        for e in tok.tok.encode_batch(texts)], dtype=np.int64)
    fields = {"kind": "text states", "folder": str(encoder.folder),
              "weights_sha256": state_digest(encoder.model), "max_length": tok.max_length,
              "tokenizer_sha256": digest_of({"tokenizer": tok.tok.to_str()}),
              "texts_sha256": digest_of({"texts": texts})}
    model = encoder.model.to(device).eval()

    def fill(out: np.ndarray) -> None:
        _log(f"caching text-encoder states of {len(texts)} texts")
        order = np.argsort(lengths, kind="stable")  # similar lengths per batch: less padding
        for i in range(0, len(texts), batch_size):
            rows = order[i:i + batch_size]
            ids, pad = tok.encode([texts[r] for r in rows])
            hidden = model(input_ids=ids.to(device),
                           attention_mask=(~pad).long().to(device)).last_hidden_state
            out[rows, :ids.shape[1]] = hidden.cpu().numpy()
            out[rows, ids.shape[1]:] = 0

    shape = (len(texts), int(lengths.max()), encoder.hidden_size)
    hidden = cache.get(f"text_{Path(str(encoder.folder)).parent.name}", fields, shape,
                       "float16", fill)
    inputs.attach(hidden, lengths, texts)
