"""Train -> evaluate -> predict on synthetic EM; the model must clearly beat an untrained one."""

import json

import numpy as np
import tifffile
import torch
from PIL import Image

from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.projects.fre_unet.commands import (
    BASE_CONFIG,
    build_module,
    evaluate,
    train_run,
)
from ensemblab.projects.fre_unet.data import load_slices
from ensemblab.projects.fre_unet.datamodule import EMTileData
from ensemblab.projects.fre_unet.magnitude import read_magnitudes
from ensemblab.projects.fre_unet.module import evaluate_loader
from ensemblab.run_record import write_run_record


def test_train_evaluate_predict_learns(em_stack, tiny_cfg, tmp_path):
    cfg = tiny_cfg
    run = train_run(cfg, em_stack, tmp_path / "run", device="cpu", progress_bar=False)
    assert (run / "checkpoints" / "best.ckpt").is_file()
    magnitudes = (run / "feature_magnitude.csv").read_text().splitlines()
    assert magnitudes[0] == "epoch,deep,skip" and len(magnitudes) == 1 + 12
    assert main(["fre_unet", "magnitudes", str(run), "--out", str(tmp_path / "mag.png")]) == 0
    assert (tmp_path / "mag.png").stat().st_size > 0

    torch.manual_seed(0)
    data = EMTileData(em_stack, cfg["data"])
    untrained = evaluate_loader(build_module(cfg, list(data.classes)).model, data.loader("test"),
                                list(data.classes), torch.device("cpu"))
    metrics = evaluate(run, device="cpu")
    assert json.loads((run / "metrics.json").read_text())["miou"] == metrics["miou"]
    assert metrics["miou"] > 0.45
    assert metrics["miou"] > untrained["miou"] + 0.25
    assert metrics["iou"]["membrane"] > 0.6

    assert main(["fre_unet", "predict", "--run", str(run), "--input", str(em_stack / "raw"),
                 "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 0
    pred = np.asarray(Image.open(tmp_path / "pred" / "07.png"))
    assert pred.shape == (128, 128) and set(np.unique(pred)) <= {0, 1, 2, 3}


def test_multi_seed_evaluate_reports_mean_std(em_stack, tiny_overrides, tmp_path):
    assert main(["fre_unet", "train", "--config", "cpu_quick", "--data", str(em_stack),
                 "--out", str(tmp_path / "v"), "--device", "cpu", "--seeds", "0,1",
                 *tiny_overrides, "train.epochs=1"]) == 0
    assert main(["fre_unet", "evaluate", "--run", str(tmp_path / "v"), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "v" / "metrics.json").read_text())
    mious = [r["miou"] for r in summary["runs"]]
    assert summary["seeds"] == [0, 1]
    assert np.isclose(summary["miou_mean"], np.mean(mious))
    assert np.isclose(summary["miou_std"], np.std(mious, ddof=1))
    assert main(["fre_unet", "table", str(tmp_path / "v")]) == 0
    assert summary["split"] == "test"  # --split auto on the runs' own data: the pinned test
    # A resumed run keeps the feature magnitudes of the epochs before it stopped.
    assert main(["fre_unet", "train", "--config", "cpu_quick", "--data", str(em_stack),
                 "--out", str(tmp_path / "v" / "seed0"), "--device", "cpu", "--resume",
                 *tiny_overrides, "train.epochs=2"]) == 0
    rows = (tmp_path / "v" / "seed0" / "feature_magnitude.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "0", "1"]


def test_evaluate_on_another_folder_scores_every_slice(em_stack, tiny_overrides, tmp_path,
                                                       capsys):
    from ensemblab.synthetic.em import make_em_stack

    assert main(["fre_unet", "train", "--config", "cpu_quick", "--data", str(em_stack),
                 "--out", str(tmp_path / "run"), "--device", "cpu", *tiny_overrides,
                 "train.epochs=1", "train.track_magnitudes=false"]) == 0
    capsys.readouterr()
    # three sections of 64 px: fewer than the split names, 4 tiles of 32 px each
    other = make_em_stack(tmp_path / "other", n_slices=3, size=64, seed=1)
    assert main(["fre_unet", "evaluate", "--run", str(tmp_path / "run"), "--data", str(other),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"scoring 12 labelled items of {other} (split all)" in out
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["split"] == "all"
    assert main(["fre_unet", "evaluate", "--run", str(tmp_path / "run"), "--split", "val",
                 "--device", "cpu"]) == 0
    assert "labelled items of" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["split"] == "val"


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "raw").mkdir(parents=True)
    (bad / "labels").mkdir()
    assert main(["fre_unet", "train", "--config", "cpu_quick", "--data", str(bad),
                 "--out", str(tmp_path / "r")]) == 2
    assert "raw: no image files" in capsys.readouterr().err
    assert main(["fre_unet", "train", "--config", "nope", "--data", str(bad),
                 "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_binary_membrane_tiff_stack_learns_with_the_cpu_schedule(em_stack, tmp_path):
    # A binary-membrane stack in the ISBI 2012 layout (membrane 0, cells 255), read with the
    # isbi2012_cpu config (stacks and label map found without overrides), bf16, Dice + CE,
    # random crops, FRE on.
    slices = load_slices(em_stack, load_config(BASE_CONFIG)["data"])
    root = tmp_path / "isbi"
    root.mkdir()
    tifffile.imwrite(root / "train-volume.tif", np.stack([s.image for s in slices]))
    tifffile.imwrite(root / "train-labels.tif",
                     np.where(np.stack([s.label for s in slices]) == 1, 0, 255).astype(np.uint8))
    run = tmp_path / "fre" / "seed0"
    assert main(["fre_unet", "train", "--config", "isbi2012_cpu_fre", "--data", str(root),
                 "--out", str(run), "--device", "cpu", "data.tile=32", "model.width=0.125",
                 "model.fre.num_enhanced=1", "train.epochs=8", "train.lr=0.01",
                 "data.split={train: 0-4, val: '5', test: 6-7}"]) == 0
    metrics = evaluate(run, device="cpu")
    assert list(metrics["iou"]) == ["background", "membrane"]
    assert metrics["iou"]["membrane"] > 0.6 and metrics["miou"] > 0.7
    assert len((run / "feature_magnitude.csv").read_text().splitlines()) == 1 + 8


def test_magnitudes_of_a_seed_folder_are_averaged(tmp_path):
    for seed, (deep, skip) in enumerate(((1.0, 4.0), (3.0, 2.0))):
        folder = tmp_path / "fre" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "feature_magnitude.csv").write_text(
            f"epoch,deep,skip\n0,{deep},{skip}\n1,{2 * deep},{skip}\n")
        write_run_record(folder, "fre_unet", "model")
    write_run_record(tmp_path / "fre", "fre_unet", "seeds")
    assert read_magnitudes(tmp_path / "fre") == [(0, 2.0, 3.0), (1, 4.0, 3.0)]
    assert main(["fre_unet", "magnitudes", str(tmp_path / "fre"), str(tmp_path / "fre/seed1"),
                 "--out", str(tmp_path / "mag.png")]) == 0
    rows = (tmp_path / "mag.csv").read_text().splitlines()
    assert rows[1] == "fre (mean of seeds),0,2.0,3.0" and rows[3] == "fre/seed1,0,3.0,2.0"
