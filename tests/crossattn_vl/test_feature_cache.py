"""The frozen-encoder feature cache: reused when nothing changed, recomputed when anything did."""

import numpy as np
import torch

from ensemblab.multimodal.feature_cache import FeatureCache
from ensemblab.multimodal.image_encoder import ImageEncoder
from ensemblab.multimodal.text_encoder import TextEncoder, minilm_dir
from ensemblab.multimodal.tokenizer import TextTokenizer
from ensemblab.projects.crossattn_vl.data import ImageStore, load_image
from ensemblab.projects.crossattn_vl.features import (
    TextInputs,
    cache_image_features,
    cache_text_features,
)
from ensemblab.projects.crossattn_vl.readers import load_vl_data
from ensemblab.synthetic.shapes import write_shapes_dataset


def test_cache_entry_is_filled_once_per_fields(tmp_path):
    calls = []

    def fill(out):
        calls.append(1)
        out[:] = np.arange(6).reshape(2, 3)

    first = FeatureCache(tmp_path).get("x", {"a": 1}, (2, 3), "float32", fill)
    again = FeatureCache(tmp_path).get("x", {"a": 1}, (2, 3), "float32", fill)
    assert len(calls) == 1 and isinstance(again, np.memmap) and not again.flags.writeable
    assert np.array_equal(first, again) and again[1, 2] == 5
    FeatureCache(tmp_path).get("x", {"a": 2}, (2, 3), "float32", fill)
    assert len(calls) == 2 and len(list(tmp_path.glob("x-*/features.npy"))) == 2
    assert not list(tmp_path.glob("x-*/.features.*"))  # no temporary file left


def _store(data, size):
    return ImageStore(data.images, size)


def test_image_maps_reused_and_invalidated_by_encoder_or_size(tmp_path):
    data = load_vl_data(write_shapes_dataset(tmp_path / "shapes", n_images=6, size=64, seed=0))
    root = tmp_path / "cache"
    lite0 = ImageEncoder(16, encoder="efficientnet_lite0").eval()

    cache = FeatureCache(root)
    store = _store(data, 64)
    cache_image_features(lite0, store, cache, augment="hflip")
    assert cache.computed == ["efficientnet_lite0_64px_hflip"]
    key = sorted(data.images)[2]
    plain = lite0.trunk_features(load_image(data.images[key], 64)[None])[0]
    assert store.get(key, 0).shape == (320, 2, 2) and store.views == 2
    assert torch.allclose(store.get(key, 0), plain, atol=2e-2, rtol=1e-2)  # float16 storage
    assert not torch.allclose(store.get(key, 1), store.get(key, 0), atol=1e-3)  # mirrored

    second = FeatureCache(root)  # a second run: same encoder, weights, size, views
    again = _store(data, 64)
    cache_image_features(ImageEncoder(16, encoder="efficientnet_lite0"), again, second,
                         augment="hflip")
    assert second.computed == []
    assert torch.equal(again.get(key, 1), store.get(key, 1))

    for encoder, size, augment in (("efficientnet_lite1", 64, "hflip"),
                                   ("efficientnet_lite0", 96, "hflip"),
                                   ("efficientnet_lite0", 64, "none")):
        fresh = FeatureCache(root)
        cache_image_features(ImageEncoder(16, encoder=encoder), _store(data, size), fresh,
                             augment=augment)
        assert fresh.computed == [f"{encoder}_{size}px_{augment}"]
    randomised = FeatureCache(root)  # same name and size, other weights
    cache_image_features(ImageEncoder(16, encoder="efficientnet_lite0", pretrained=False),
                         _store(data, 64), randomised, augment="hflip")
    assert randomised.computed == ["efficientnet_lite0_64px_hflip"]


def test_text_states_cached_equal_live_encoder(tmp_path):
    tok = TextTokenizer.from_file(minilm_dir(), max_length=16)
    enc = TextEncoder(8, kind="minilm", freeze=True).eval()
    texts = ["a dog runs on the grass", "two children play in the water", ""]
    inputs = TextInputs(tok)
    cache_text_features(enc, inputs, texts, FeatureCache(tmp_path))
    cached = inputs(texts[:2])
    assert set(cached) == {"pad", "hidden"}
    ids, pad = tok.encode(texts[:2])
    live = enc.hidden_states(ids, pad)
    assert torch.equal(cached["pad"], pad)
    keep = ~pad
    assert torch.allclose(cached["hidden"][keep], live[keep], atol=1e-2)
    assert set(inputs(["an unseen caption"])) == {"pad", "ids"}  # falls back to the encoder
    again = FeatureCache(tmp_path)
    cache_text_features(enc, TextInputs(tok), list(reversed(texts)), again)
    assert again.computed == []
