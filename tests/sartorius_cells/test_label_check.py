"""Cell types of the validation images checked against the training images before a run folder
exists: a type no training image has, or a type outside ``model.classes``, stops ``train``."""

import pytest

from ensemblab.cli import main
from ensemblab.errors import ConfigError, DataError
from ensemblab.projects.sartorius_cells.data import check_cell_types, load_records, split_records
from ensemblab.synthetic.cells import write_cells_dataset

ASTRO = ["astro_000_000", "astro_000_001"]


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    return write_cells_dataset(tmp_path_factory.mktemp("cells") / "d", images_per_type=2,
                               height=96, width=128)


def _train(data, out, *overrides):
    return main(["sartorius_cells", "train", "--config", "cpu_maskrcnn_r18", "--data", str(data),
                 "--out", str(out), "--device", "cpu", *overrides])


def test_validation_type_missing_from_training_stops_train(cells, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(cells, out, f"data.split.val_ids=[{','.join(ASTRO)}]") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "astro_000_000.png" in lines[0] and "cell type 'astro' (2 validation images)" in lines[0]
    assert "training images, which hold cort, shsy5y" in lines[0]  # the types found
    assert not out.exists()


def test_type_outside_the_classes_stops_train(cells, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(cells, out, "model.classes=[cort,shsy5y]",
                  "data.split.val_ids=[cort_000_000]") == 2
    err = capsys.readouterr().err
    assert "astro_000_000.png: cell type 'astro' is not one of model.classes" in err
    assert not out.exists()


def test_declared_type_passes(cells):
    train, val = split_records(load_records(cells), {"val_ids": ASTRO})
    classes = ["astro", "cort", "shsy5y"]
    with pytest.raises(DataError, match="never occurs in the training images"):
        check_cell_types(train, val, classes, [])
    check_cell_types(train, val, classes, ["astro"])  # declared in data.allow_unseen: passes
    with pytest.raises(ConfigError, match=r"data.allow_unseen: \['neuron'\]"):
        check_cell_types(train, val, classes, ["neuron"])
