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


DOCS = [[], [{}], [[]], [1, "é", None, 2.5],
        [{"image_id": "a", "bbox": [1.0, 2.5], "segmentation": {"size": [4, 5], "counts": "x\n"}},
         {"nested": [[1, [2, {}]], {"k": []}], "s": "quote \" and \\ "}]]


@pytest.mark.parametrize("items", DOCS)
def test_streamed_json_list_is_the_json_of_the_list(tmp_path, items):
    import numpy as np

    from ensemblab.io import write_json_list

    items = [*items, {"numpy": np.float32(0.25), "array": np.arange(2)}] if items else items
    write_json(tmp_path / "whole.json", items)
    write_json_list(tmp_path / "streamed.json", iter(items))
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


@pytest.mark.parametrize("obj", [{}, {"a.png": "a caption"},
                                 {"b": [1, {"c": []}], "é": {"d": None}, "e": "two\nlines"}])
def test_streamed_json_object_is_the_json_of_the_dict(tmp_path, obj):
    from ensemblab.io import write_json_object

    write_json(tmp_path / "whole.json", obj)
    write_json_object(tmp_path / "streamed.json", iter(obj.items()))
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


def test_csv_rows_may_come_from_a_generator(tmp_path):
    write_csv(tmp_path / "t.csv", ["a", "b"], ((i, i * i) for i in range(3)))
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b", "0,0", "1,1", "2,4"]
