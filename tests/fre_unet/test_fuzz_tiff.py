"""Property-based tests of the FRE data reader (:func:`load_slices`) on TIFF stacks (ISBI 2012
layout) and ssTEM slice folders.

Random stacks round-trip exactly (images as written, labels through the pinned map);
truncated or byte-flipped files and unknown label values either still read or fail with one
:class:`~ensemblab.errors.EnsemblabError` line naming a file of the dataset (a damaged image
stack may be reported as the label stack that no longer matches it). Tiny and derandomized.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ensemblab.config import load_config
from ensemblab.projects.fre_unet.commands import BASE_CONFIG
from ensemblab.projects.fre_unet.data import ISBI_LABEL_MAP, SSTEM_LABEL_MAP, load_slices
from ensemblab.testing import corruptions, read_or_one_line_error

FUZZ = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUND_TRIP = settings(FUZZ, max_examples=15)
DATA = load_config(BASE_CONFIG)["data"]  # every data key at its default
STACK = {**DATA, "format": "tiff_stack"}
SLICES = {**DATA, "format": "slices"}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_fre")


def _fresh(work: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=work))


@st.composite
def stacks(draw, label_values: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [Z, H, W], grey labels [Z, H, W]) with Z 1..3 and 8..24 pixels a side."""
    z, h, w = draw(st.integers(1, 3)), draw(st.integers(8, 24)), draw(st.integers(8, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    images = rng.integers(0, 256, (z, h, w)).astype(np.uint8)
    labels = np.asarray(label_values, np.uint8)[rng.integers(0, len(label_values), (z, h, w))]
    return images, labels


def _mapped(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for value, cls in mapping.items():
        lut[value] = cls
    return lut[labels]


def _write_isbi(root: Path, images: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    tifffile.imwrite(root / "train-volume.tif", images)
    tifffile.imwrite(root / "train-labels.tif", labels)
    return root / "train-volume.tif", root / "train-labels.tif"


def _write_sstem(root: Path, images: np.ndarray, labels: np.ndarray) -> list[Path]:
    (root / "raw").mkdir()
    (root / "labels").mkdir()
    files = []
    for i, (image, label) in enumerate(zip(images, labels)):
        tifffile.imwrite(root / "raw" / f"{i:02d}.tif", image)
        Image.fromarray(label).save(root / "labels" / f"labels{i:08d}.png")
        files += [root / "raw" / f"{i:02d}.tif", root / "labels" / f"labels{i:08d}.png"]
    return files


@ROUND_TRIP
@given(stack=stacks(tuple(ISBI_LABEL_MAP)))
def test_isbi_tiff_stack_round_trips(work, stack):
    images, labels = stack
    root = _fresh(work)
    _write_isbi(root, images, labels)
    slices = load_slices(root, STACK)
    assert len(slices) == len(images)
    for s, image, label in zip(slices, images, labels):
        np.testing.assert_array_equal(s.image, image)
        np.testing.assert_array_equal(s.label, _mapped(label, ISBI_LABEL_MAP))


@ROUND_TRIP
@given(stack=stacks(tuple(SSTEM_LABEL_MAP)))
def test_sstem_slices_round_trip(work, stack):
    images, labels = stack
    root = _fresh(work)
    _write_sstem(root, images, labels)
    slices = load_slices(root, SLICES)
    for s, image, label in zip(slices, images, labels):
        np.testing.assert_array_equal(s.image, image)
        np.testing.assert_array_equal(s.label, _mapped(label, SSTEM_LABEL_MAP))


@FUZZ
@given(data=st.data(), stack=stacks(tuple(ISBI_LABEL_MAP)), compression=st.booleans())
def test_corrupt_isbi_tiff_stack_fails_in_one_line(work, data, stack, compression):
    root = _fresh(work)
    files = _write_isbi(root, *stack)
    if compression:
        for path, array in zip(files, stack):
            tifffile.imwrite(path, array, compression="zlib")
    target = data.draw(st.sampled_from(files))
    target.write_bytes(data.draw(corruptions(target.read_bytes())))
    slices = read_or_one_line_error(lambda: load_slices(root, STACK), *files)
    if slices is not None:
        assert all(s.image.shape == s.label.shape for s in slices)


@FUZZ
@given(data=st.data(), stack=stacks(tuple(SSTEM_LABEL_MAP)))
def test_corrupt_sstem_slice_fails_in_one_line(work, data, stack):
    root = _fresh(work)
    files = _write_sstem(root, *stack)
    target = data.draw(st.sampled_from(files))
    target.write_bytes(data.draw(corruptions(target.read_bytes())))
    slices = read_or_one_line_error(lambda: load_slices(root, SLICES), *files)
    if slices is not None:
        assert all(s.image.shape == s.label.shape for s in slices)


@FUZZ
@given(stack=stacks((0, 255, 17, 128)))
def test_unknown_isbi_label_values_fail_in_one_line(work, stack):
    root = _fresh(work)
    _, labels_path = _write_isbi(root, *stack)
    read_or_one_line_error(lambda: load_slices(root, STACK), labels_path)
