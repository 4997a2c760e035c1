"""Loaders: pinned ssTEM mapping, clear errors, TIFF stacks, folders, splits, tiles."""

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from ensemblab.config import load_config
from ensemblab.errors import ConfigError, DataError
from ensemblab.projects.fre_unet.commands import BASE_CONFIG
from ensemblab.projects.fre_unet.data import (
    SSTEM_LABEL_MAP,
    Slice,
    find_stacks,
    load_slices,
    resolve_label_map,
    split_slices,
)
from ensemblab.projects.fre_unet.datamodule import EMTileData, RandomCropDataset, tile_slices
from ensemblab.synthetic.em import make_em_stack
from ensemblab.testing import real_data

DATA = load_config(BASE_CONFIG)["data"]  # every data key at its default
SSTEM = {**DATA, "format": "slices", "image_dir": "raw", "label_dir": "labels",
         "label_map": "sstem"}


def _write_slice(root, i, image, label):
    (root / "raw").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(root / "raw" / f"{i:02d}.tif", image)
    Image.fromarray(label).save(root / "labels" / f"labels{i:08d}.png")


def test_sstem_mapping_is_pinned(tmp_path):
    codes = np.array([[0, 32, 64, 96, 128, 159, 191, 223, 255]], np.uint8)
    _write_slice(tmp_path, 0, np.zeros_like(codes), codes)
    (s,) = load_slices(tmp_path, SSTEM)
    assert s.label.tolist() == [[1, 1, 1, 1, 1, 0, 2, 3, 0]]
    assert sorted(SSTEM_LABEL_MAP) == codes[0].tolist()


def test_unknown_label_value_names_the_file(tmp_path):
    label = np.full((4, 4), 255, np.uint8)
    label[0, 0] = 77
    _write_slice(tmp_path, 3, np.zeros((4, 4), np.uint8), label)
    with pytest.raises(DataError, match=r"labels00000003\.png: unknown label values \[77\]"):
        load_slices(tmp_path, SSTEM)


def test_mismatched_slice_sizes(tmp_path):
    _write_slice(tmp_path, 0, np.zeros((8, 8), np.uint8), np.full((8, 6), 255, np.uint8))
    with pytest.raises(DataError, match=r"labels00000000\.png: .*shape \(8, 6\)"):
        load_slices(tmp_path, SSTEM)


def test_missing_partner_slice(tmp_path):
    _write_slice(tmp_path, 0, np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8))
    tifffile.imwrite(tmp_path / "raw" / "01.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="slice 1 has no partner"):
        load_slices(tmp_path, SSTEM)


def test_isbi_tiff_stack_and_mismatch(tmp_path):
    vol = np.random.default_rng(0).integers(0, 255, (3, 16, 16), dtype=np.uint8)
    lab = np.where(vol > 128, 255, 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "train-volume.tif", vol)
    tifffile.imwrite(tmp_path / "train-labels.tif", lab)
    cfg = {**DATA, "format": "tiff_stack", "image_stack": "train-volume.tif",
           "label_stack": "train-labels.tif", "label_map": "isbi2012"}
    slices = load_slices(tmp_path, cfg)
    assert len(slices) == 3
    assert np.array_equal(slices[1].label, (lab[1] == 0).astype(np.uint8))
    tifffile.imwrite(tmp_path / "train-labels.tif", lab[:, :8])
    with pytest.raises(DataError, match="train-labels.tif: label stack shape"):
        load_slices(tmp_path, cfg)


def test_tiff_stacks_found_by_name_with_format_default_map(tmp_path):
    vol = np.random.default_rng(0).integers(0, 255, (2, 8, 8), dtype=np.uint8)
    lab = np.where(vol > 128, 255, 0).astype(np.uint8)
    # ISBI 2012's download: two volumes, one label stack; the train volume shares its prefix.
    tifffile.imwrite(tmp_path / "train-volume.tif", vol)
    tifffile.imwrite(tmp_path / "test-volume.tif", vol[::-1])
    tifffile.imwrite(tmp_path / "train-labels.tif", lab)
    cfg = {**DATA, "format": "tiff_stack", "image_stack": None, "label_stack": None,
           "label_map": None, "classes": None}
    assert find_stacks(tmp_path, cfg) == (tmp_path / "train-volume.tif",
                                          tmp_path / "train-labels.tif")
    assert resolve_label_map(cfg) == (("background", "membrane"), {0: 1, 255: 0})
    slices = load_slices(tmp_path, cfg)
    assert np.array_equal(slices[0].image, vol[0])
    assert np.array_equal(slices[1].label, (lab[1] == 0).astype(np.uint8))
    assert find_stacks(tmp_path, {**cfg, "image_stack": "test-volume.tif"})[0].name == \
        "test-volume.tif"
    tifffile.imwrite(tmp_path / "train-volumf.tif", vol)
    with pytest.raises(DataError, match="all match train-labels.tif; set data.image_stack"):
        find_stacks(tmp_path, cfg)
    tifffile.imwrite(tmp_path / "val-labels.tif", lab)
    with pytest.raises(DataError, match="2 label TIFFs .*set data.label_stack"):
        find_stacks(tmp_path, cfg)
    with pytest.raises(ConfigError, match="needed for data.format='folder'"):
        resolve_label_map({**DATA, "format": "folder", "label_map": None})


def test_binary_stack_with_custom_mapping(tmp_path):
    lab = np.zeros((2, 8, 8), np.uint8)
    lab[:, :, :2] = 1
    tifffile.imwrite(tmp_path / "em.tif", np.full((2, 8, 8), 7, np.uint8))
    tifffile.imwrite(tmp_path / "em_labels.tif", lab)
    cfg = {**DATA, "format": "tiff_stack", "label_map": {0: 0, 1: 1},
           "classes": ["cell", "membrane"]}
    slices = load_slices(tmp_path, cfg)
    assert [s.label.sum() for s in slices] == [16, 16]
    with pytest.raises(DataError, match=r"em_labels.tif \(slice 0\): unknown label values \[1\]"):
        load_slices(tmp_path, {**DATA, "format": "tiff_stack"})


def test_random_crops_keep_image_and_label_aligned():
    label = (np.arange(40 * 48).reshape(40, 48) % 7 % 4).astype(np.uint8)
    section = Slice("s", (label * 60).astype(np.uint8), label)
    torch.manual_seed(0)
    crops = RandomCropDataset([section, section], tile=16, length=30)
    assert len(crops) == 30
    corners = set()
    for i in range(len(crops)):
        x, y = crops[i]
        assert x.shape == (1, 16, 16) and y.shape == (16, 16)
        assert torch.equal((x[0] * 255 / 60).round().long(), y)
        corners.add(tuple(x[0, :2, :2].flatten().tolist()))
    assert len(corners) > 10  # positions and D4 transforms vary
    jittered = RandomCropDataset([section], tile=16, length=8, jitter=0.2)
    xs = torch.stack([jittered[i][0] for i in range(8)])
    assert xs.min() >= 0 and xs.max() <= 1


def test_folder_with_class_list(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) % 3).save(
            tmp_path / "masks" / f"{name}.png")
    cfg = {**DATA, "format": "folder", "image_dir": "images", "label_dir": "masks",
           "classes": ["background", "nucleus", "cytoplasm"], "label_map": {0: 0, 1: 1, 2: 2}}
    slices = load_slices(tmp_path, cfg)
    assert [s.name for s in slices] == ["a", "b"] and slices[0].image.shape == (8, 8)
    with pytest.raises(ConfigError, match="class indices"):
        load_slices(tmp_path, {**cfg, "label_map": {0: 0, 1: 5}})


def test_split_and_tiles(em_stack):
    slices = load_slices(em_stack, SSTEM)
    parts = split_slices(slices, {"train": "0-4", "val": 5, "test": [6, 7]})
    assert [len(parts[k]) for k in ("train", "val", "test")] == [5, 1, 2]
    images, labels = tile_slices(parts["train"], 64, 1.0)
    assert images.shape == (20, 64, 64) and labels.max() <= 3
    images, _ = tile_slices(parts["test"], 32, 0.5)
    assert images.shape == (8, 32, 32)
    with pytest.raises(ConfigError, match="slice 5 is in both"):
        split_slices(slices, {"train": "0-5", "val": 5})
    with pytest.raises(ConfigError, match="outside the 8 slices"):
        split_slices(slices, {"train": "0-11"})


def test_synthetic_stack_is_deterministic(tmp_path):
    a = make_em_stack(tmp_path / "a", n_slices=2, size=64, seed=3)
    b = make_em_stack(tmp_path / "b", n_slices=2, size=64, seed=3)
    for rel in ("raw/01.tif", "labels/labels00000001.png"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    codes = np.unique(np.asarray(Image.open(a / "labels/labels00000000.png")))
    assert set(codes.tolist()) <= set(SSTEM_LABEL_MAP)
    assert {0, 1, 2, 3} == set(np.unique(load_slices(a, SSTEM)[0].label).tolist())


@pytest.mark.realdata
def test_real_sstem_stack_pinned_split():
    root = real_data("em/drosophila_sstem/stack1")
    data = EMTileData(root, {**SSTEM, "tile": 256, "scale": 1.0})
    data.setup()
    sizes = {k: len(v) for k, v in data.tiles.items()}
    assert sizes == {"train": 12 * 16, "val": 4 * 16, "test": 4 * 16}
    assert set(data.tiles["test"].labels.unique().tolist()) == {0, 1, 2, 3}
