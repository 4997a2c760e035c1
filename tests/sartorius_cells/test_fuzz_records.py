"""Property-based tests of the instance-id PNG folder layout
(``images/<name>/{phase.png, instances_ids.png}``) read by :func:`load_records`.

Random instance maps round-trip exactly (the masks read back are those written); a truncated
or byte-flipped image or instance PNG either still reads or fails with one
:class:`~ensemblab.errors.EnsemblabError` line naming the file. Tiny and derandomized.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ensemblab.data.images import write_png
from ensemblab.data.rle import instance_map_to_masks
from ensemblab.projects.sartorius_cells.data import load_records
from ensemblab.testing import corruptions, read_or_one_line_error

FUZZ = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUND_TRIP = settings(FUZZ, max_examples=15)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_cells")


@st.composite
def instance_maps(draw) -> np.ndarray:
    """[H, W] instance ids (0 background), 8..24 pixels a side, up to 300 ids."""
    h, w = draw(st.integers(8, 24)), draw(st.integers(8, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(0, draw(st.sampled_from((2, 5, 300))), (h, w))


def _folder(work: Path, idmaps: list[np.ndarray]) -> tuple[Path, list[Path]]:
    root = Path(tempfile.mkdtemp(dir=work))
    files = []
    for i, idmap in enumerate(idmaps):
        folder = root / "images" / f"cell{i}"
        folder.mkdir(parents=True)
        write_png(folder / "phase.png", (idmap * 37 % 256).astype(np.uint8))
        write_png(folder / "instances_ids.png", idmap)
        files += [folder / "phase.png", folder / "instances_ids.png"]
    return root, files


def _read(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(r.load_image(), r.load_masks()) for r in load_records(root)]


@ROUND_TRIP
@given(idmaps=st.lists(instance_maps(), min_size=1, max_size=2))
def test_instance_folders_round_trip(work, idmaps):
    root, _ = _folder(work, idmaps)
    read = _read(root)
    assert len(read) == len(idmaps)
    for (image, masks), idmap in zip(read, idmaps):
        assert image.shape == idmap.shape
        np.testing.assert_array_equal(masks, instance_map_to_masks(idmap)[0])


@FUZZ
@given(data=st.data(), idmaps=st.lists(instance_maps(), min_size=1, max_size=2))
def test_corrupt_instance_folder_fails_in_one_line(work, data, idmaps):
    root, files = _folder(work, idmaps)
    target = data.draw(st.sampled_from(files))
    target.write_bytes(data.draw(corruptions(target.read_bytes())))
    read_or_one_line_error(lambda: _read(root), *files)
