"""Atomic writers leave nothing half-written."""

import json

import pytest

from ensemblab.io import atomic_path, write_csv, write_json


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{partial")
        raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_json_and_csv_writers(tmp_path):
    import numpy as np

    write_json(tmp_path / "m.json", {"x": np.float32(0.5), "v": np.arange(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 0.5, "v": [0, 1, 2]}
    write_csv(tmp_path / "t.csv", ["a", "b"], [[1, 2], [3, 4]])
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b", "1,2", "3,4"]


def test_atomic_files_get_the_usual_mode(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
    finally:
        os.umask(umask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
