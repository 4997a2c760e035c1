"""ImageNet weights matter: on synthetic scenes the pretrained EfficientNet-Lite0 grid features
retrieve captions clearly better than the same network with random weights."""

import json

import pytest

from ensemblab.config import load_config
from ensemblab.projects.crossattn_vl.commands import evaluate, resolve_config, train_run
from ensemblab.synthetic.shapes import write_shapes_dataset

# Matching only, frozen cached encoders (EfficientNet-Lite0 at 96 px, MiniLM): a short run.
OVERRIDES = ["model.image.encoder=efficientnet_lite0", "data.image_size=96",
             "tasks.caption=false", "tasks.vqa=false", "model.dim=64", "model.matching_dim=64",
             "model.heads=4", "model.dropout=0.0", "train.epochs=8",
             "train.early_stop_patience=0", "eval.overlays=0", "data.feature_augment=none"]


def _mean_r5(metrics: dict) -> float:
    return (metrics["i2t_top5"] + metrics["t2i_top5"]) / 2


@pytest.mark.slow  # two trainings with cached features: ~15 s, beyond the default budget
def test_pretrained_image_encoder_beats_random_weights(tmp_path):
    data = write_shapes_dataset(tmp_path / "shapes", n_images=160, size=64, seed=1)
    scores = {}
    for pretrained in (True, False):
        cfg = load_config(resolve_config("flickr8k_cpu"),
                          OVERRIDES + [f"model.image.pretrained={pretrained}"])
        run = train_run(cfg, data, tmp_path / f"pretrained_{pretrained}", "cpu",
                        progress_bar=False)
        scores[pretrained] = evaluate(run, data, device="cpu")
    assert json.loads((tmp_path / "pretrained_True" / "metrics.json").read_text())["n_images"] == 20
    chance_r5 = 5 * scores[True]["chance_top1"]  # 5 of 20 test images: 0.25
    assert _mean_r5(scores[True]) > chance_r5 + 0.3
    assert _mean_r5(scores[True]) > _mean_r5(scores[False]) + 0.1
    assert scores[True]["t2i_top1"] > scores[False]["t2i_top1"]
    # Both runs read their trunk maps from one cache beside the run folders.
    assert len(list((tmp_path / "feature_cache").glob("efficientnet_lite0_96px_none-*"))) == 2
