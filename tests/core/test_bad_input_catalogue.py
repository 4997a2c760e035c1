"""Bad inputs through the real CLI: exit 2, one line naming the file or key, no traceback, and
no output left behind (the working folder holds the same files, unchanged, afterwards).

Each case builds its inputs under ``tmp_path`` and returns the ``ensemblab`` arguments and the
words the message must contain. The command runs in-process with ``tmp_path`` as the working
folder, so a stray file written to the current folder is caught too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ensemblab.cli import main
from ensemblab.config import find_config, load_config
from ensemblab.synthetic.battery import write_battery_csv
from ensemblab.synthetic.em import make_em_stack
from ensemblab.synthetic.minerals import write_mineral_dataset
from ensemblab.synthetic.shapes import write_shapes_dataset

PROJECTS = Path(__file__).resolve().parents[2] / "projects"
Case = Callable[[Path], tuple[list[str], list[str]]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def _edit_csv(path: Path, row: int | None, column: str, value: str | None) -> Path:
    """Set one cell (``row`` 0-based after the header) or, with ``value=None``, drop a column."""
    lines = path.read_text().splitlines()
    j = lines[0].split(",").index(column)
    cells = [line.split(",") for line in lines]
    if value is None:
        cells = [c[:j] + c[j + 1:] for c in cells]
    else:
        cells[row + 1][j] = value
    path.write_text("\n".join(",".join(c) for c in cells) + "\n")
    return path


def _run_folder(root: Path, project: str, config: str, overrides: list[str] = (),
                checkpoint: bytes | dict | None = None) -> Path:
    """A run folder with the resolved config and a given ``checkpoints/best.ckpt``."""
    cfg = load_config(find_config(config, PROJECTS / project / "configs"), list(overrides))
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = run / "checkpoints" / "best.ckpt"
    if isinstance(checkpoint, bytes):
        target.write_bytes(checkpoint)
    elif checkpoint is not None:
        torch.save(checkpoint, target)
    return run


TRUNCATED_CKPT = b"PK\x03\x04 this checkpoint was cut off"
FOREIGN_CKPT = {"state_dict": {"tabular.dense.weight": torch.zeros(3, 4)},
                "hyper_parameters": {"class_names": ["a", "b"]}}


# --------------------------------------------------------------------- core: configs, paths
@case
def config_typo_in_override(tmp: Path):
    csv = write_battery_csv(tmp / "b.csv", n_rows=12, seed=0)
    return (["battery_crystal", "train", "--config", "cpu_quick", "--data", str(csv),
             "--out", str(tmp / "out"), "sead=3"], ["'sead'", "cpu_quick.yaml", "seed"])


@case
def config_typo_in_user_file(tmp: Path):
    base = PROJECTS / "fre_unet" / "configs" / "cpu_quick.yaml"
    (tmp / "mine.yaml").write_text(f"_base_: {base}\ntrain:\n  epoch: 3\n")
    return (["fre_unet", "train", "--config", str(tmp / "mine.yaml"), "--data", str(tmp),
             "--out", str(tmp / "out")], ["mine.yaml", "'train.epoch'", "train.epochs"])


@case
def config_value_of_wrong_type(tmp: Path):
    return (["crossattn_vl", "train", "--config", "cpu_quick", "--data", str(tmp),
             "--out", str(tmp / "out"), "train.epochs=many"], ["train.epochs", "cpu_quick.yaml"])


@case
def config_invalid_yaml(tmp: Path):
    (tmp / "broken.yaml").write_text("train: {epochs: 3\n")
    return (["mineral_ruel", "train", "--config", str(tmp / "broken.yaml"), "--data", str(tmp),
             "--out", str(tmp / "out")], ["broken.yaml", "invalid YAML"])


@case
def config_name_unknown(tmp: Path):
    return (["battery_crystal", "train", "--config", "cpu_quik", "--data", str(tmp),
             "--out", str(tmp / "out")], ["cpu_quik", "cpu_quick"])


@case
def evaluate_nonexistent_run(tmp: Path):
    return (["fre_unet", "evaluate", "--run", str(tmp / "no_run"), "--data", str(tmp)],
            ["no_run"])


@case
def train_nonexistent_data(tmp: Path):
    return (["mineral_ruel", "train", "--config", "synthetic_quick", "--data",
             str(tmp / "nowhere"), "--out", str(tmp / "out"), "--device", "cpu"], ["nowhere"])


# --------------------------------------------------------------------- battery_crystal (CSV)
def _battery_train(tmp: Path, row: int | None, column: str, value: str | None):
    csv = _edit_csv(write_battery_csv(tmp / "b.csv", n_rows=12, seed=0), row, column, value)
    return ["battery_crystal", "train", "--config", "cpu_quick", "--data", str(csv),
            "--out", str(tmp / "out")]


@case
def battery_csv_missing_column(tmp: Path):
    return _battery_train(tmp, None, "Volume", None), ["b.csv", "Volume"]


@case
def battery_csv_text_in_numeric_column(tmp: Path):
    return _battery_train(tmp, 3, "Density (gm/cc)", "heavy"), ["b.csv", "row 4", "Density"]


@case
def battery_csv_nan_in_numeric_column(tmp: Path):
    return _battery_train(tmp, 5, "Band Gap (eV)", "NaN"), ["b.csv", "row 6", "Band Gap"]


@case
def battery_csv_unknown_label(tmp: Path):
    return _battery_train(tmp, 2, "Crystal System", "cubic"), ["b.csv", "cubic"]


@case
def battery_csv_header_only(tmp: Path):
    csv = write_battery_csv(tmp / "b.csv", n_rows=12, seed=0)
    csv.write_text(csv.read_text().splitlines()[0] + "\n")
    return (["battery_crystal", "train", "--config", "cpu_quick", "--data", str(csv),
             "--out", str(tmp / "out")], ["b.csv"])


@case
def battery_corrupt_model_file(tmp: Path):
    run = _run_folder(tmp, "battery_crystal", "cpu_quick")
    (run / "model.pkl").write_bytes(b"\x80\x04 cut off")
    csv = write_battery_csv(tmp / "new.csv", n_rows=5, seed=1, with_label=False)
    return (["battery_crystal", "predict", "--run", str(run), "--input", str(csv),
             "--out", str(tmp / "pred")], ["model.pkl"])


# --------------------------------------------------------------------- mineral_ruel (images)
def _minerals(tmp: Path) -> Path:
    return write_mineral_dataset(tmp / "minerals", n_train=4, n_val=1, size=64, seed=0)


def _mineral_train(data: Path, tmp: Path) -> list[str]:
    return ["mineral_ruel", "train", "--config", "synthetic_quick", "--data", str(data),
            "--out", str(tmp / "out"), "--device", "cpu"]


@case
def mineral_truncated_image(tmp: Path):
    data = _minerals(tmp)
    image = data / "raw" / "train" / "001.jpg"
    image.write_bytes(image.read_bytes()[:200])
    return _mineral_train(data, tmp), ["001.jpg"]


@case
def mineral_text_file_as_image(tmp: Path):
    data = _minerals(tmp)
    (data / "raw" / "train" / "002.jpg").write_text("hello")
    return _mineral_train(data, tmp), ["002.jpg"]


@case
def mineral_mask_size_mismatch(tmp: Path):
    data = _minerals(tmp)
    Image.fromarray(np.zeros((60, 64), np.uint8)).save(data / "seg" / "train" / "000.png")
    return _mineral_train(data, tmp), ["000.png", "shape"]


@case
def mineral_unknown_class_value(tmp: Path):
    data = _minerals(tmp)
    mask = np.zeros((64, 64), np.uint8)
    mask[3, 3] = 40
    Image.fromarray(mask).save(data / "seg" / "train" / "003.png")
    return _mineral_train(data, tmp), ["003.png", "40"]


@case
def mineral_val_mask_value_outside_the_classes(tmp: Path):
    data = _minerals(tmp)  # LumenStone layout; classes 0-8 everywhere but this patch
    mask_path = data / "seg" / "val" / "000.png"
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[10:15, 20:25] = 201
    Image.fromarray(mask).save(mask_path)
    return _mineral_train(data, tmp), ["seg/val/000.png", "value 201 (25 px)", "not a class"]


@case
def mineral_missing_mask(tmp: Path):
    data = _minerals(tmp)
    (data / "seg" / "train" / "002.png").unlink()
    return _mineral_train(data, tmp), ["002"]


@case
def mineral_empty_dataset_folder(tmp: Path):
    (tmp / "empty").mkdir()
    return _mineral_train(tmp / "empty", tmp), ["empty"]


@case
def mineral_truncated_checkpoint(tmp: Path):
    data = _minerals(tmp)
    run = _run_folder(tmp, "mineral_ruel", "synthetic_quick", [f"data.root={data}"],
                      TRUNCATED_CKPT)
    return (["mineral_ruel", "evaluate", "--run", str(run), "--device", "cpu"], ["best.ckpt"])


@case
def mineral_foreign_checkpoint(tmp: Path):
    data = _minerals(tmp)
    run = _run_folder(tmp, "mineral_ruel", "synthetic_quick", [f"data.root={data}"],
                      FOREIGN_CKPT)
    return (["mineral_ruel", "evaluate", "--run", str(run), "--device", "cpu"], ["best.ckpt"])


@case
def mineral_evaluate_of_another_projects_run(tmp: Path):
    run = _run_folder(tmp, "battery_crystal", "cpu_quick")  # no run.json: known by its config
    return (["mineral_ruel", "evaluate", "--run", str(run), "--device", "cpu"],
            [f"{run} is a battery_crystal run", "mineral_ruel evaluate needs a mineral_ruel run"])


# --------------------------------------------------------------------- fre_unet (EM stacks)
FRE_TINY = ["data.scale=1.0", "data.tile=32", "model.width=0.125",
            "data.split={train: 0-3, val: '4', test: 5-5}"]


def _stack(tmp: Path) -> Path:
    return make_em_stack(tmp / "stack", n_slices=6, size=64, seed=0)


def _fre_train(data: Path, tmp: Path, extra: list[str] = ()) -> list[str]:
    return ["fre_unet", "train", "--config", "cpu_quick", "--data", str(data),
            "--out", str(tmp / "out"), "--device", "cpu", *FRE_TINY, *extra]


@case
def fre_unknown_label_value(tmp: Path):
    data = _stack(tmp)
    label = data / "labels" / "labels00000002.png"
    values = np.asarray(Image.open(label)).copy()
    values[0, 0] = 17
    Image.fromarray(values).save(label)
    return _fre_train(data, tmp), ["labels00000002.png", "17"]


@case
def fre_label_size_mismatch(tmp: Path):
    data = _stack(tmp)
    Image.fromarray(np.full((32, 64), 255, np.uint8)).save(data / "labels" / "labels00000001.png")
    return _fre_train(data, tmp), ["labels00000001.png", "shape"]


@case
def fre_truncated_tiff(tmp: Path):
    data = _stack(tmp)
    image = data / "raw" / "03.tif"
    image.write_bytes(image.read_bytes()[:100])
    return _fre_train(data, tmp), ["03.tif"]


@case
def fre_empty_image_folder(tmp: Path):
    data = _stack(tmp)
    for p in (data / "raw").iterdir():
        p.unlink()
    return _fre_train(data, tmp), ["raw"]


@case
def fre_split_outside_the_stack(tmp: Path):
    return _fre_train(_stack(tmp), tmp, ["data.split.test=40-44"]), ["data.split.test"]


@case
def fre_truncated_checkpoint(tmp: Path):
    run = _run_folder(tmp, "fre_unet", "cpu_quick", FRE_TINY, TRUNCATED_CKPT)
    return (["fre_unet", "evaluate", "--run", str(run), "--data", str(_stack(tmp)),
             "--device", "cpu"], ["best.ckpt"])


@case
def fre_foreign_checkpoint(tmp: Path):
    run = _run_folder(tmp, "fre_unet", "cpu_quick", FRE_TINY, {"state_dict": {}})
    return (["fre_unet", "evaluate", "--run", str(run), "--data", str(_stack(tmp)),
             "--device", "cpu"], ["best.ckpt"])


# --------------------------------------------------------------------- crossattn_vl (VL data)
def _shapes(tmp: Path) -> Path:
    return write_shapes_dataset(tmp / "shapes", n_images=8, size=32, seed=0)


def _vl_train(data: Path, tmp: Path) -> list[str]:
    return ["crossattn_vl", "train", "--config", "cpu_quick", "--data", str(data),
            "--out", str(tmp / "out"), "--device", "cpu", "train.epochs=1"]


@case
def vl_question_without_image(tmp: Path):
    data = _shapes(tmp)
    questions = json.loads((data / "questions.json").read_text())
    questions["questions"][0]["image_id"] = 999
    (data / "questions.json").write_text(json.dumps(questions))
    return _vl_train(data, tmp), ["999"]


@case
def vl_truncated_image(tmp: Path):
    data = _shapes(tmp)
    image = sorted((data / "images").iterdir())[2]
    image.write_bytes(image.read_bytes()[:40])
    return _vl_train(data, tmp), [image.name]


@case
def vl_annotations_not_json(tmp: Path):
    data = _shapes(tmp)
    (data / "annotations.json").write_text("{'answers': oops")
    return _vl_train(data, tmp), ["annotations.json"]


@case
def vl_captions_csv_missing_column(tmp: Path):
    data = _shapes(tmp)
    shutil.rmtree(data / "images")
    (data / "captions.json").unlink()
    (data / "questions.json").unlink()
    (data / "captions.csv").write_text("image,text\na.jpg,a red square\n")
    return _vl_train(data, tmp), ["captions.csv", "caption"]


@case
def vl_caption_for_unknown_image(tmp: Path):
    data = _shapes(tmp)
    captions = json.loads((data / "captions.json").read_text())
    captions["annotations"][0]["image_id"] = 12345
    (data / "captions.json").write_text(json.dumps(captions))
    return _vl_train(data, tmp), ["captions.json", "12345"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path, capsys, monkeypatch):
    argv, words = CASES[name](tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crash_logs").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "crash_logs"))
    monkeypatch.setattr("tempfile.tempdir", None)
    before = _snapshot(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ensemblab: error: "), err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert _snapshot(tmp_path) == before  # nothing written, nothing half-written


def test_catalogue_covers_four_projects_and_the_core():
    prefixes = {name.split("_")[0] for name in CASES}
    assert {"battery", "mineral", "fre", "vl", "config"} <= prefixes
    assert len(CASES) >= 30
