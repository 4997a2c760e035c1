"""Bad inputs give one-line errors naming the file; the synthetic data is deterministic."""

import numpy as np
import pytest
import torch
from PIL import Image

from ensemblab.cli import main
from ensemblab.errors import ConfigError, DataError
from ensemblab.projects.mineral_ruel.classes import resolve_classes
from ensemblab.projects.mineral_ruel.data import (
    RandomCropDataset,
    TileDataset,
    holdout_split,
    load_pair,
    load_scaled,
    split_pairs,
)
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
    tiles = TileDataset(*load_scaled(train, 9, 1.0, 32), tile=32)
    image, mask = tiles[0]
    assert len(tiles) == 3 * 4 and image.shape == (3, 32, 32) and mask.shape == (32, 32)
    assert 0 <= image.min() and image.max() <= 1  # learners normalise their own input


def test_holdout_leaves_every_class_in_training(tmp_path):
    # Ten masks; class 5 only in mask 7 and class 6 only in masks 2 and 3. A plain draw that
    # holds out mask 7 (or both 2 and 3) takes a whole class away from the learners; with
    # max_class_share=0.5 the split is redrawn, and a plain split that qualifies is kept as is.
    pairs = []
    for i in range(10):
        mask = np.zeros((8, 8), np.uint8)
        mask[:4] = 1
        mask[6:, :2] = {7: 5, 2: 6, 3: 6}.get(i, 0)
        Image.fromarray(mask).save(tmp_path / f"{i}.png")
        pairs.append((tmp_path / f"{i}.jpg", tmp_path / f"{i}.png"))

    def takes_a_class(rank):
        names = {p[1].name for p in rank}
        return "7.png" in names or {"2.png", "3.png"} <= names

    plain = {seed: holdout_split(pairs, 0.2, seed) for seed in range(30)}
    bad = [seed for seed, (_, rank) in plain.items() if takes_a_class(rank)]
    good = [seed for seed in plain if seed not in bad]
    assert bad and good
    for seed in bad:
        train, rank = holdout_split(pairs, 0.2, seed, max_class_share=0.5)
        assert not takes_a_class(rank) and len(rank) == 2 and not set(rank) & set(train)
        assert holdout_split(pairs, 0.2, seed, max_class_share=0.5) == (train, rank)
    for seed in good:
        assert holdout_split(pairs, 0.2, seed, max_class_share=0.5) == plain[seed]
    with pytest.raises(DataError, match="holdout_max_class_share"):
        holdout_split(pairs, 0.2, 0, max_class_share=0)


def test_random_crops_are_aligned_reproducible_and_cover_the_images():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8),
              rng.integers(0, 256, (40, 32, 3), dtype=np.uint8)]
    masks = [rng.integers(0, 9, im.shape[:2], dtype=np.uint8) for im in images]
    crops = RandomCropDataset(images, masks, tile=32, length=300, seed=1)
    assert len(crops) == 300
    x, y = crops[5]
    k, y0, x0 = crops.crop_box(5)
    assert x.shape == (3, 32, 32) and y.shape == (32, 32)
    assert np.array_equal(y.numpy(), masks[k][y0:y0 + 32, x0:x0 + 32])
    assert np.allclose(x.numpy() * 255, images[k][y0:y0 + 32, x0:x0 + 32].transpose(2, 0, 1))
    assert torch.equal(crops[5][0], x)  # same epoch, same item
    first_epoch = [crops.crop_box(i) for i in range(20)]
    crops.epoch = 1
    assert sum(a != b for a, b in zip(first_epoch, [crops.crop_box(i) for i in range(20)])) > 15
    crops.epoch = 0
    # Every pixel of both images is seen, borders included, and images in proportion to area.
    seen = [np.zeros(m.shape, int) for m in masks]
    for i in range(len(crops)):
        k, y0, x0 = crops.crop_box(i)
        seen[k][y0:y0 + 32, x0:x0 + 32] += 1
    assert all((s > 0).all() for s in seen)
    share = sum(crops.crop_box(i)[0] == 0 for i in range(len(crops))) / len(crops)
    assert abs(share - 64 * 96 / (64 * 96 + 40 * 32)) < 0.08


def test_class_balanced_crops_reach_a_rare_class():
    # A 4x4 patch of class 3 in two 128 px images (0.05 % of the pixels): few uniform 32 px
    # crops contain it; centring half the crops on a uniformly drawn class (three classes
    # present) puts it in at least a sixth of them, and every crop stays aligned.
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(2)]
    masks = [np.zeros((128, 128), np.uint8) for _ in range(2)]
    masks[0][:, 64:] = 1
    masks[1][100:104, 20:24] = 3
    masks[1][:40] = 1

    def rare_share(crops):
        hits = 0
        for i in range(len(crops)):
            k, y0, x0 = crops.crop_box(i)
            hits += (masks[k][y0:y0 + 32, x0:x0 + 32] == 3).any()
        return hits / len(crops)

    uniform = RandomCropDataset(images, masks, tile=32, length=2000, seed=0)
    balanced = RandomCropDataset(images, masks, tile=32, length=2000, seed=0,
                                 class_balanced=0.5)
    assert sorted(balanced.centres) == [0, 1, 3] and len(balanced.centres[3]) == 16
    assert rare_share(uniform) < 0.07 and 0.17 < rare_share(balanced) < 0.25
    _, mask = balanced[7]
    k, y0, x0 = balanced.crop_box(7)
    assert np.array_equal(mask.numpy(), masks[k][y0:y0 + 32, x0:x0 + 32])
    with pytest.raises(DataError, match="class_balanced"):
        RandomCropDataset(images, masks, tile=32, length=4, class_balanced=1.5)


def test_class_list_comes_from_the_dataset(dataset):
    (dataset / "classes.txt").write_text("# name per line\nresin\nquartz\n\nore\n")
    assert resolve_classes(None, dataset) == ["resin", "quartz", "ore"]
    assert len(resolve_classes("lumenstone")) == 13 and len(resolve_classes("minerals9")) == 9
    with pytest.raises(ConfigError, match="unknown mineral class set 'lumenston'"):
        resolve_classes("lumenston")
    (dataset / "classes.txt").unlink()
    with pytest.raises(DataError, match="classes.txt: class list not found"):
        resolve_classes(None, dataset)


def test_label_outside_a_dataset_class_list_names_the_file_and_value(dataset, tmp_path, capsys):
    (dataset / "classes.txt").write_text("background\ngangue\npyrite\n")  # 3 classes: 0..2
    code = main(["mineral_ruel", "train", "--config", "synthetic_quick", "--data", str(dataset),
                 "--out", str(tmp_path / "run"), "--device", "cpu", "data.classes=null"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "seg/train/000.png: label values" in err and "not in the allowed set" in err


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


def test_holdout_tiles_carry_their_index_and_a_repeated_tile_counts_once(dataset):
    from ensemblab.projects.mineral_ruel.module import MineralDataModule, MineralSegmenter

    dm = MineralDataModule(dataset, 9, tile=32, holdout=0.25, batch_size=4)
    dm.setup()
    assert len(dm.train_set[0]) == 2  # training items carry no index
    images, masks, index = next(iter(dm.val_dataloader()))
    assert index.tolist() == list(range(len(images)))
    torch.manual_seed(0)
    module = MineralSegmenter(9, MINERAL_CLASSES, {"arch": "resunet", "encoder": "resnet18",
                                                   "decoder_channels": (16, 16, 16, 8, 8)},
                              {"name": "ce"}).eval()
    module.on_validation_epoch_start()
    with torch.no_grad():
        module.validation_step((images, masks, index), 0)
        once = module.evaluator.compute()["confusion_matrix"]
        module.validation_step((images[:2], masks[:2], index[:2]), 1)  # the sampler's padding
    assert module.evaluator.compute()["confusion_matrix"] == once
    assert np.sum(once) == images.shape[0] * 32 * 32
