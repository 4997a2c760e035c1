"""Image, label-PNG and TIFF readers: dtypes, modes and every validation error."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from ensemblab.data.images import (
    list_pairs,
    read_image,
    read_label_png,
    read_tiff_stack,
    write_png,
)
from ensemblab.errors import DataError


@pytest.fixture
def gray8():
    return (np.arange(12 * 10).reshape(12, 10) % 256).astype(np.uint8)


def test_png_8bit_gray_rgb_modes(tmp_path, gray8):
    write_png(tmp_path / "g.png", gray8)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), gray8)
    rgb = read_image(tmp_path / "g.png", mode="rgb")
    assert rgb.shape == (12, 10, 3) and (rgb[..., 1] == gray8).all()
    color = np.stack([gray8, gray8 // 2, np.full_like(gray8, 200)], axis=-1)
    write_png(tmp_path / "c.png", color)
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), color)
    gray = read_image(tmp_path / "c.png", mode="gray")
    expected = np.rint(color @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    assert gray.dtype == np.uint8 and np.abs(gray.astype(int) - expected).max() == 0


def test_png_16bit_and_rgba(tmp_path):
    img16 = (np.arange(20).reshape(4, 5) * 3000).astype(np.uint16)
    write_png(tmp_path / "d.png", img16)
    back = read_image(tmp_path / "d.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img16)
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0] = 9
    write_png(tmp_path / "a.png", rgba)
    assert read_image(tmp_path / "a.png").shape == (3, 3, 3)


def test_tiff_16bit_and_rgb(tmp_path):
    img16 = (np.arange(30).reshape(5, 6) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "r.tif", img16)
    np.testing.assert_array_equal(read_image(tmp_path / "r.tif"), img16)
    rgb = np.random.default_rng(0).integers(0, 255, (5, 6, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "c.tiff", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "c.tiff"), rgb)
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(rgb, -1, 0), photometric="rgb",
                     planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "p.tif"), rgb)


def test_tiff_stack_file_and_folder(tmp_path):
    stack = np.random.default_rng(1).integers(0, 255, (4, 6, 5), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    np.testing.assert_array_equal(read_tiff_stack(tmp_path / "s.tif"), stack)
    with pytest.raises(DataError, match="is a stack of 4 pages"):
        read_image(tmp_path / "s.tif")
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(3):
        tifffile.imwrite(folder / f"{z:02d}.tif", stack[z])
    np.testing.assert_array_equal(read_tiff_stack(folder), stack[:3])
    assert read_tiff_stack(tmp_path / "s.tif").ndim == 3
    tifffile.imwrite(folder / "03.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"03\.tif: slice shape \(2, 2\) != first slice"):
        read_tiff_stack(folder)


def test_corrupt_and_missing_images_one_line(tmp_path, gray8):
    write_png(tmp_path / "ok.png", gray8)
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    (tmp_path / "junk.tif").write_bytes(b"II*\x00garbage")
    for name in ("trunc.png", "junk.png", "junk.tif"):
        with pytest.raises(DataError) as err:
            read_image(tmp_path / name)
        msg = str(err.value)
        assert msg.startswith(f"{tmp_path / name}: cannot read") and "\n" not in msg
    with pytest.raises(DataError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(DataError, match="cannot read label image"):
        read_label_png(tmp_path / "junk.png")


def test_label_png_values_shape_and_palette(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = Image.fromarray(labels, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png", {0, 1, 2}, (2, 3)), labels)
    with pytest.raises(DataError, match=r"mask shape \(2, 3\) != image shape \(3, 2\)"):
        read_label_png(tmp_path / "p.png", shape=(3, 2))
    with pytest.raises(DataError, match=r"label values 2 not in the allowed set \[0, 1\]"):
        read_label_png(tmp_path / "p.png", allowed_values=[0, 1])
    write_png(tmp_path / "rgb.png", np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DataError, match="expected a single-channel"):
        read_label_png(tmp_path / "rgb.png")


def test_write_png_instance_map_and_bad_dtype(tmp_path):
    idmap = np.array([[0, 300], [5, 0]], np.int32)
    write_png(tmp_path / "ids.png", idmap)
    back = read_label_png(tmp_path / "ids.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, idmap)
    with pytest.raises(DataError, match="unsupported pixel type float32"):
        write_png(tmp_path / "f.png", np.zeros((2, 2), np.float32))
    with pytest.raises(DataError, match="do not fit 16 bits"):
        write_png(tmp_path / "big.png", np.array([[70000]]))
    assert not (tmp_path / "f.png").exists()


def test_list_pairs(tmp_path):
    img_dir, mask_dir = tmp_path / "img", tmp_path / "mask"
    img_dir.mkdir()
    mask_dir.mkdir()
    for name in ("b.jpg", "a.png", "notes.txt"):
        (img_dir / name).write_bytes(b"")
    for name in ("a.png", "b.png"):
        (mask_dir / name).write_bytes(b"")
    pairs = list_pairs(img_dir, mask_dir)
    assert [(i.name, m.name) for i, m in pairs] == [("a.png", "a.png"), ("b.jpg", "b.png")]
    (img_dir / "c.tif").write_bytes(b"")
    with pytest.raises(DataError, match=r"mask: no mask for 1 name\(s\): c"):
        list_pairs(img_dir, mask_dir)
    (img_dir / "c.tif").unlink()
    (mask_dir / "d.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"img: no image for 1 name\(s\): d"):
        list_pairs(img_dir, mask_dir)
    (img_dir / "a.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="two images share the name 'a'"):
        list_pairs(img_dir, mask_dir)
    with pytest.raises(DataError, match="folder not found"):
        list_pairs(tmp_path / "none", mask_dir)


@pytest.mark.realdata
def test_real_usiigaci_images_and_masks():
    from ensemblab.testing import real_data

    root = real_data("cells/usiigaci") / "images"
    phase = read_image(root / "set1" / "phase.png")
    raw = read_image(root / "set21" / "raw.tif")
    assert phase.dtype == np.uint8 and raw.dtype == np.uint16
    assert phase.shape == raw.shape == (1022, 1024)
    ids = read_label_png(root / "set1" / "instances_ids.png", shape=phase.shape)
    assert ids.max() == 66
    with pytest.raises(DataError, match=r"instances_ids\.png: mask shape \(1022, 1024\) != "):
        read_label_png(root / "set1" / "instances_ids.png", shape=(1024, 1022))
