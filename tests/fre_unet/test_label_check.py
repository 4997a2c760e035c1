"""Val / test slice labels checked against the training slices before a run folder exists: a
grey value outside the label map, or a class no training slice holds, stops ``train``."""

import numpy as np
import pytest
from PIL import Image

from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.errors import DataError
from ensemblab.projects.fre_unet.commands import resolve_config
from ensemblab.projects.fre_unet.datamodule import EMTileData
from ensemblab.synthetic.em import make_em_stack

TINY = ["data.scale=1.0", "data.tile=32", "model.width=0.125",
        "data.split={train: 0-3, val: '4', test: 5-5}"]
SYNAPSE, INTRACELLULAR = 223, 255  # grey values of the sstem map (class 3, class 0)


def _edit(path, fn) -> None:
    values = np.asarray(Image.open(path)).copy()
    fn(values)
    Image.fromarray(values).save(path)


def _plant(values: np.ndarray, grey: int) -> None:
    values[10:15, 20:25] = grey


@pytest.fixture
def stack(tmp_path):
    return make_em_stack(tmp_path / "stack", n_slices=6, size=64, seed=0)


def test_grey_value_outside_the_map_in_a_val_slice_stops_train(stack, tmp_path, capsys):
    _edit(stack / "labels" / "labels00000004.png", lambda v: _plant(v, 201))
    out = tmp_path / "run"
    code = main(["fre_unet", "train", "--config", "cpu_quick", "--data", str(stack),
                 "--out", str(out), "--device", "cpu", *TINY])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "labels00000004.png" in lines[0] and "201: 25 px" in lines[0]
    assert not out.exists()


def test_class_missing_from_training_slices_stops_unless_declared(stack, tmp_path):
    def no_synapse(values):
        values[values == SYNAPSE] = INTRACELLULAR

    for path in (stack / "labels").iterdir():
        _edit(path, no_synapse)
    _edit(stack / "labels" / "labels00000005.png", lambda v: _plant(v, SYNAPSE))
    out = tmp_path / "run"
    assert main(["fre_unet", "train", "--config", "cpu_quick", "--data", str(stack),
                 "--out", str(out), "--device", "cpu", *TINY]) == 2
    assert not out.exists()
    cfg = load_config(resolve_config("cpu_quick"), TINY)
    data = EMTileData(stack, cfg["data"])
    data.setup()
    with pytest.raises(DataError, match=r"labels00000005.png: test class 3 \(synapse, 25 px\) "
                                        r"never occurs in the training slices, which hold "
                                        r"0 background, 1 membrane, 2 mitochondria"):
        data.check_labels(cfg["data"]["allow_unseen"])
    data.check_labels([3])  # declared in data.allow_unseen: passes
