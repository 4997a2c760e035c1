"""datasets/prepare_mineral*.py: tiling with scale, Labelme JSON -> class-index PNG."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from ensemblab.data.images import read_label_png
from ensemblab.synthetic.minerals import write_mineral_dataset

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, DATASETS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiling_with_scale_keeps_labels_nearest(tmp_path):
    src = write_mineral_dataset(tmp_path / "src", n_train=2, n_val=1, size=96, seed=0)
    tool = _load("prepare_mineral")
    assert tool.main(["--src", str(src), "--dst", str(tmp_path / "dst"), "--tile", "32",
                      "--scale", "0.5", "--num-classes", "9"]) == 0
    tiles = sorted((tmp_path / "dst" / "seg" / "train").glob("*.png"))
    assert len(tiles) == 2 * 4  # 96 * 0.5 = 48 px -> 2 x 2 tiles of 32 (last shifted inward)
    original = set(np.unique(read_label_png(src / "seg" / "train" / "000.png")).tolist())
    tile = read_label_png(tiles[0])
    assert tile.shape == (32, 32) and set(np.unique(tile).tolist()) <= original
    assert (tmp_path / "dst" / "raw" / "train" / f"{tiles[0].stem}.jpg").is_file()


def test_tiling_rejects_out_of_range_labels(tmp_path, capsys):
    src = write_mineral_dataset(tmp_path / "src", n_train=1, n_val=1, size=64, seed=0)
    tool = _load("prepare_mineral")
    assert tool.main(["--src", str(src), "--dst", str(tmp_path / "d"), "--tile", "32",
                      "--num-classes", "2"]) == 2
    assert "000.png: label values" in capsys.readouterr().err


def test_labelme_polygons_rectangles_circles(tmp_path, capsys):
    doc = {"imageHeight": 20, "imageWidth": 30, "shapes": [
        {"label": "gangue", "points": [[0, 0], [9, 0], [9, 9], [0, 9]], "shape_type": "polygon"},
        {"label": "pyrite", "points": [[20, 10], [29, 19]], "shape_type": "rectangle"},
        {"label": "galena", "points": [[5, 5], [7, 5]], "shape_type": "circle"},
    ]}
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "s1.json").write_text(json.dumps(doc))
    tool = _load("prepare_mineral_labelme")
    classes = ["background", "gangue", "galena", "pyrite"]
    assert tool.main(["--json-dir", str(tmp_path / "ann"), "--out", str(tmp_path / "seg"),
                      "--classes", *classes]) == 0
    mask = read_label_png(tmp_path / "seg" / "s1.png")
    assert mask.shape == (20, 30)
    assert mask[1, 1] == 1 and mask[5, 5] == 2 and mask[15, 25] == 3 and mask[15, 5] == 0
    doc["shapes"][0]["label"] = "quartz"
    (tmp_path / "ann" / "s2.json").write_text(json.dumps(doc))
    assert tool.main(["--json-dir", str(tmp_path / "ann"), "--out", str(tmp_path / "seg2"),
                      "--classes", *classes]) == 2
    assert "s2.json: shape 0: label 'quartz' not in the class list" in capsys.readouterr().err
