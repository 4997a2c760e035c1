"""Bad inputs give one-line errors naming the file; the synthetic data is deterministic."""

import numpy as np
import pytest
from PIL import Image

from ensemblab.cli import main
from ensemblab.errors import DataError
from ensemblab.projects.mineral_ruel.data import TileDataset, holdout_split, load_pair, split_pairs
from ensemblab.synthetic.minerals import MINERAL_CLASSES, make_mineral_image, write_mineral_dataset


@pytest.fixture()
def dataset(tmp_path):
    return write_mineral_dataset(tmp_path / "d", n_train=4, n_val=2, size=64, seed=3)


def test_generator_is_deterministic_and_has_a_background_like_gangue(tmp_path):
    a = write_mineral_dataset(tmp_path / "a", 2, 1, 64, seed=5)
    b = write_mineral_dataset(tmp_path / "b", 2, 1, 64, seed=5)
    for rel in ("seg/train/000.png", "raw/train/001.jpg", "seg/val/000.png"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    image, mask = make_mineral_image(np.random.default_rng(0), 128)
    assert mask.max() < len(MINERAL_CLASSES) and (mask == 1).any() and (mask == 0).any()
    bg, gangue = image[mask == 0].mean(0), image[mask == 1].mean(0)
    bright = image[mask >= 2].mean(0) if (mask >= 2).any() else np.full(3, 255.0)
    assert np.abs(gangue - bg).max() < 20 < np.abs(bright - bg).max()


def test_pairs_holdout_and_tiles(dataset):
    pairs = split_pairs(dataset, "train")
    train, rank = holdout_split(pairs, 0.25, seed=0)
    assert len(rank) == 1 and len(train) == 3 and not set(rank) & set(train)
    assert holdout_split(pairs, 0.25, seed=0) == (train, rank)
    tiles = TileDataset(train, 9, tile=32)
    image, mask = tiles[0]
    assert len(tiles) == 3 * 4 and image.shape == (3, 32, 32) and mask.shape == (32, 32)


def test_corrupt_image_names_the_file(dataset):
    bad = dataset / "raw" / "train" / "001.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="001.jpg: cannot read image"):
        load_pair((bad, dataset / "seg" / "train" / "001.png"), 9)


def test_mask_of_wrong_size_names_the_file(dataset):
    mask = dataset / "seg" / "train" / "002.png"
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(mask)
    with pytest.raises(DataError, match=r"002.png: mask shape \(10, 12\) != image shape"):
        load_pair((dataset / "raw" / "train" / "002.jpg", mask), 9)


def test_label_outside_class_list_names_the_file(dataset):
    mask = dataset / "seg" / "train" / "000.png"
    arr = np.zeros((64, 64), np.uint8)
    arr[0, 0] = 9
    Image.fromarray(arr).save(mask)
    with pytest.raises(DataError, match=r"000.png: label values 9 not in the allowed set"):
        load_pair((dataset / "raw" / "train" / "000.jpg", mask), 9)


def test_cli_reports_bad_data_in_one_line(dataset, tmp_path, capsys):
    (dataset / "seg" / "train" / "003.png").unlink()
    code = main(["mineral_ruel", "train", "--config", "synthetic_quick", "--data", str(dataset),
                 "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("ensemblab: error:") and "no mask for 1 name(s): 003" in err
