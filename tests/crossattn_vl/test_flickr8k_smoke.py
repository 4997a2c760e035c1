"""Real photos: 40 shared Flickr8k images, a short flickr8k_cpu run, retrieval above chance.

Also checks ``evaluate --data DIR`` on a separate Flickr-layout folder (its images only, all
scored as a test set) and the keys of ``metrics.json``.
"""

import csv
import json
from math import comb

import pytest

from ensemblab.cli import main
from ensemblab.testing import real_data

KEYS = ["CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "i2t_top1",
        "i2t_top5", "i2t_top10", "t2i_top1", "t2i_top5", "t2i_top10"]


def _flickr_folder(root, rows: list[dict], images: list[str], out):
    (out / "images").mkdir(parents=True)
    for name in images:
        (out / "images" / name).write_bytes((root / "images" / name).read_bytes())
    with open(out / "captions.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "caption"])
        writer.writeheader()
        writer.writerows(r for r in rows if r["image"] in set(images))
    return out


@pytest.mark.realdata
@pytest.mark.slow  # trains on 40 real photos: about half a minute of CPU
def test_flickr8k_40_images_retrieval_above_chance(tmp_path):
    root = real_data("vl/flickr8k")
    with open(root / "captions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["image"] for r in rows})[:40]
    train = _flickr_folder(root, rows, names[:28], tmp_path / "train")
    held_out = _flickr_folder(root, rows, names[28:], tmp_path / "held_out")  # 12 images
    run = tmp_path / "runs" / "f8k"
    assert main(["crossattn_vl", "train", "--config", "flickr8k_cpu", "--data", str(train),
                 "--out", str(run), "--device", "cpu", "data.split=[0.86, 0.14, 0.0]",
                 "train.epochs=8", "train.early_stop_patience=0", "loss.matching=contrastive",
                 "eval.beam=1", "eval.overlays=1"]) == 0
    assert main(["crossattn_vl", "evaluate", "--run", str(run), "--data", str(held_out),
                 "--device", "cpu"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "all" and metrics["n_images"] == 12
    assert set(KEYS) <= set(metrics)
    # Chance: text->image top-k = k / 12; image->text top-k (5 of 60 captions are right) =
    # 1 - C(55, k) / C(60, k). Trained on 24 images (the paper's contrastive L_CL: VSE++'s
    # hardest negatives need more images), text->image is clearly above chance; image->text
    # over 12 images moves in steps of 8 points, so its sum with text->image is asserted.
    chance = {f"t2i_top{k}": k / 12 for k in (1, 5, 10)}
    chance.update({f"i2t_top{k}": 1 - comb(55, k) / comb(60, k) for k in (1, 5, 10)})
    assert metrics["t2i_top1"] > 1.5 * chance["t2i_top1"]
    assert metrics["t2i_top5"] > chance["t2i_top5"] + 0.15
    assert sum(metrics[k] for k in chance) > sum(chance.values()) + 0.5
    caps = json.loads((run / "captions_all.json").read_text())
    assert len(caps) == 12 and all(c["generated"] for c in caps.values())
    assert (run / "overlays" / "overlay_0.png").is_file()
    assert list((tmp_path / "runs" / "feature_cache").glob("efficientnet_lite2_256px_hflip-*"))
