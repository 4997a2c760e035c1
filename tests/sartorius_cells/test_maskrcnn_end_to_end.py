"""End to end on tiny synthetic cells: train -> evaluate (vs untrained) -> predict -> submit."""

import json

import pytest

from ensemblab.cli import main
from ensemblab.synthetic.cells import write_cells_dataset

# Tiny and fast: 128 px images with 6 cort-like cells, 20 optimisation steps, and small
# detection budgets (an untrained model otherwise sends 1000 boxes through the mask head).
OVERRIDES = ["model.image_size=128", "train.epochs=5", "train.val_every=5", "data.split.k=5",
             "train.warmup_steps=3", "model.box_detections_per_img=60",
             "model.rpn_post_nms_top_n_test=200", "model.rpn_pre_nms_top_n_test=400",
             "postprocess.search.min_area=[8]", "postprocess.search.mask_thresh=[0.5]"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cells")
    data = write_cells_dataset(root / "data", images_per_type=10, height=128, width=128,
                               n_cells=6, cell_scale=0.7, cell_types=("cort",))
    run = root / "run"
    assert main(["sartorius_cells", "train", "--config", "cpu_maskrcnn_r18", "--data", str(data),
                 "--out", str(run), "--device", "cpu", *OVERRIDES]) == 0
    return data, run


def test_learns_above_untrained_baseline(trained):
    data, run = trained
    assert (run / "postprocess.json").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert main(["sartorius_cells", "evaluate", "--run", str(run), "--data", str(data),
                 "--device", "cpu"]) == 0
    assert main(["sartorius_cells", "evaluate", "--run", str(run), "--data", str(data),
                 "--device", "cpu", "--untrained"]) == 0
    trained_m = json.loads((run / "metrics.json").read_text())
    untrained_m = json.loads((run / "metrics_untrained.json").read_text())
    assert set(trained_m) >= {"kaggle_score", "per_cell_type", "coco_mask_ap", "n_images"}
    assert trained_m["n_images"] == 2 and set(trained_m["per_cell_type"]) == {"cort"}
    assert trained_m["split"] == "val"  # --split auto on the run's own data
    assert untrained_m["kaggle_score"] < 0.05
    # 20 steps from scratch: validation score 0.28 vs 0.00 untrained (seed 0).
    assert trained_m["kaggle_score"] > untrained_m["kaggle_score"] + 0.05, trained_m


def test_evaluate_scores_every_image_of_another_folder(trained, tmp_path, capsys):
    _, run = trained
    other = write_cells_dataset(tmp_path / "other", images_per_type=3, height=128, width=128,
                                n_cells=6, cell_scale=0.7, cell_types=("cort",), seed=5)
    capsys.readouterr()
    assert main(["sartorius_cells", "evaluate", "--run", str(run), "--data", str(other),
                 "--device", "cpu", "--untrained"]) == 0
    assert f"scoring 3 labelled items of {other} (split all)" in capsys.readouterr().out
    assert json.loads((run / "metrics_untrained.json").read_text())["n_images"] == 3


def test_predict_submit_validate(trained, tmp_path):
    data, run = trained
    out = tmp_path / "pred"
    assert main(["sartorius_cells", "predict", "--run", str(run), "--input", str(data),
                 "--out", str(out), "--device", "cpu", "--overlays", "2"]) == 0
    assert len(list((out / "overlays").glob("*.png"))) == 2
    header = (out / "predictions.csv").read_text().splitlines()[0]
    assert header == "id,predicted,score,cell_type"
    sub = tmp_path / "submission.csv"
    assert main(["sartorius_cells", "submit", "--run", str(run), "--input",
                 str(data / "train"), "--out", str(sub), "--device", "cpu"]) == 0
    ids = {line.split(",")[0] for line in sub.read_text().splitlines()[1:]}
    assert ids == {p.stem for p in (data / "train").glob("*.png")}  # every image present
    assert main(["sartorius_cells", "validate-submission", "--csv", str(sub),
                 "--sizes", str(data / "train.csv")]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("id,predicted\n" + "".join(f"{i},1 5\n{i},3 5\n" for i in ids))
    assert main(["sartorius_cells", "validate-submission", "--csv", str(bad),
                 "--images", str(data / "train")]) == 1


def test_bad_input_is_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["sartorius_cells", "train", "--config", "cpu_maskrcnn_r18", "--data",
                 str(tmp_path / "empty"), "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no train.csv" in err[0]
