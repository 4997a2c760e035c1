"""Property-based tests of the image readers: instance-id PNGs, class-index PNGs (plain and
palette), gray/RGB images and TIFF stacks (:mod:`ensemblab.data.images`).

Random valid images round-trip exactly; truncated or byte-flipped files either still read or
fail with one :class:`~ensemblab.errors.EnsemblabError` line naming the file. Images are tiny
(8..24 pixels a side) and the runs derandomized.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ensemblab.data.images import read_image, read_label_png, read_tiff_stack, write_png
from ensemblab.data.rle import instance_map_to_masks, masks_to_instance_map
from ensemblab.testing import corruptions, read_or_one_line_error

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUND_TRIP = settings(FUZZ, max_examples=20)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_images")


def _fresh(work: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=work))


@st.composite
def label_maps(draw, max_value: int = 9) -> np.ndarray:
    """[H, W] integer map, 8..24 pixels a side, values 0..``max_value`` (random blocks)."""
    h, w = draw(st.integers(8, 24)), draw(st.integers(8, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    block = draw(st.sampled_from((1, 2, 4)))
    small = rng.integers(0, max_value + 1, (-(-h // block), -(-w // block)))
    return np.kron(small, np.ones((block, block), np.int64))[:h, :w]


@st.composite
def images(draw) -> np.ndarray:
    """uint8/uint16 gray [H, W] or uint8 RGB [H, W, 3], 8..24 pixels a side."""
    h, w = draw(st.integers(8, 24)), draw(st.integers(8, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(("gray8", "gray16", "rgb")))
    if kind == "gray16":
        return rng.integers(256, 65536, (h, w)).astype(np.uint16)
    return rng.integers(0, 256, (h, w, 3) if kind == "rgb" else (h, w)).astype(np.uint8)


def _palette_png(path: Path, classes: np.ndarray) -> Path:
    img = Image.fromarray(classes.astype(np.uint8), mode="P")
    img.putpalette([v for c in range(256) for v in (c, 255 - c, (7 * c) % 256)])
    img.save(path)
    return path


# --------------------------------------------------------------------------- round trips
@ROUND_TRIP
@given(idmap=label_maps(max_value=300))
def test_instance_png_round_trips(work, idmap):
    """Instance maps with more than 255 ids are stored as 16-bit PNGs and still round-trip."""
    masks, ids = instance_map_to_masks(idmap)
    path = _fresh(work) / "instances_ids.png"
    write_png(path, masks_to_instance_map(masks))
    read = read_label_png(path, shape=idmap.shape).astype(np.int64)
    back, _ = instance_map_to_masks(read)
    np.testing.assert_array_equal(back, masks)
    np.testing.assert_array_equal(np.where(read > 0, ids[np.maximum(read - 1, 0)], 0), idmap)


@ROUND_TRIP
@given(classes=label_maps(max_value=8), palette=st.booleans())
def test_class_index_png_round_trips(work, classes, palette):
    path = _fresh(work) / "mask.png"
    if palette:
        _palette_png(path, classes)
    else:
        write_png(path, classes)
    read = read_label_png(path, allowed_values=range(9), shape=classes.shape)
    np.testing.assert_array_equal(read, classes)


@ROUND_TRIP
@given(image=images(), suffix=st.sampled_from((".png", ".tif")))
def test_image_round_trips(work, image, suffix):
    path = _fresh(work) / f"image{suffix}"
    if suffix == ".png":
        write_png(path, image)
    else:
        tifffile.imwrite(path, image)
    read = read_image(path)
    assert read.dtype == image.dtype
    np.testing.assert_array_equal(read, image)


@ROUND_TRIP
@given(data=st.data(), z=st.integers(1, 4), dtype=st.sampled_from((np.uint8, np.uint16)),
       compression=st.sampled_from((None, "zlib")))
def test_tiff_stack_round_trips(work, data, z, dtype, compression):
    first = data.draw(label_maps(max_value=np.iinfo(dtype).max))
    rng = np.random.default_rng(int(first.sum()))
    stack = np.stack([first] + [rng.permutation(first.ravel()).reshape(first.shape)
                                for _ in range(z - 1)]).astype(dtype)
    path = _fresh(work) / "stack.tif"
    tifffile.imwrite(path, stack, compression=compression)
    np.testing.assert_array_equal(read_tiff_stack(path), stack)
    folder = path.parent / "slices"
    folder.mkdir()
    for i, plane in enumerate(stack):
        tifffile.imwrite(folder / f"{i:03d}.tif", plane)
    np.testing.assert_array_equal(read_tiff_stack(folder), stack)


# --------------------------------------------------------------------------- corrupt files
def _encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "tif":
        tifffile.imwrite(buffer, array)
    elif fmt == "tif-zlib":
        tifffile.imwrite(buffer, array, compression="zlib")
    elif fmt == "png-palette":
        img = Image.fromarray(array.astype(np.uint8), mode="P")
        img.putpalette(list(range(256)) * 3)
        img.save(buffer, format="PNG")
    else:
        Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@FUZZ
@given(data=st.data(), classes=label_maps(max_value=300),
       fmt=st.sampled_from(("png", "png-palette", "tif", "tif-zlib")))
def test_corrupt_label_image_fails_in_one_line(work, data, classes, fmt):
    classes = classes.astype(np.uint16 if classes.max() > 255 else np.uint8)
    if fmt == "png-palette":
        classes = np.minimum(classes, 255)
    path = _fresh(work) / ("mask.tif" if fmt.startswith("tif") else "mask.png")
    path.write_bytes(data.draw(corruptions(_encoded(classes, fmt))))
    read = read_or_one_line_error(
        lambda: read_label_png(path, allowed_values=range(301), shape=classes.shape), path)
    if read is not None:
        assert read.shape == classes.shape


@FUZZ
@given(data=st.data(), image=images(), fmt=st.sampled_from(("png", "tif", "tif-zlib")),
       mode=st.sampled_from(("any", "gray", "rgb")))
def test_corrupt_image_fails_in_one_line(work, data, image, fmt, mode):
    path = _fresh(work) / ("image.tif" if fmt.startswith("tif") else "image.png")
    path.write_bytes(data.draw(corruptions(_encoded(image, fmt))))
    read = read_or_one_line_error(lambda: read_image(path, mode=mode), path)
    if read is not None:
        assert read.ndim in (2, 3) and read.dtype in (np.uint8, np.uint16)


@FUZZ
@given(data=st.data(), z=st.integers(1, 3), fmt=st.sampled_from(("tif", "tif-zlib")))
def test_corrupt_tiff_stack_fails_in_one_line(work, data, z, fmt):
    plane = data.draw(label_maps(max_value=255)).astype(np.uint8)
    path = _fresh(work) / "stack.tif"
    path.write_bytes(data.draw(corruptions(_encoded(np.stack([plane] * z), fmt))))
    read = read_or_one_line_error(lambda: read_tiff_stack(path), path)
    if read is not None:
        assert read.ndim == 3 and read.dtype in (np.uint8, np.uint16)
