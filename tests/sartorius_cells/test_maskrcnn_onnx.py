"""``sartorius_cells export --format onnx`` of a native Mask R-CNN member (backbone + FPN, RPN
head, box and mask heads as four graphs) and ``predict --runtime onnx`` through them, against
the torch model (a tiny hand-built ``cpu_maskrcnn_r18`` run at 96 px).

Its class and mask logit layers are scaled up so scores and mask probabilities spread over
(0, 1): with untrained weights every score would sit near 1 / (K + 1) and which detections
survive would be decided by float noise.
"""

import csv
import json

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.data.images import write_png
from ensemblab.engine.onnx_export import part_path
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.commands import resolve_config
from ensemblab.projects.sartorius_cells.members import load_member
from ensemblab.projects.sartorius_cells.members.maskrcnn import model_from_config
from ensemblab.projects.sartorius_cells.members.maskrcnn_bf16 import (
    head_agreement,
    head_outputs,
)
from ensemblab.projects.sartorius_cells.members.maskrcnn_model import image_features
from ensemblab.projects.sartorius_cells.members.maskrcnn_onnx import PARTS, OnnxBackbone
from ensemblab.synthetic.cells import make_cells_image
from ensemblab.testing import write_weights_run

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TINY = ["model.classes=[astro, cort, shsy5y]", "model.image_size=96",
        "model.rpn_pre_nms_top_n_test=200", "model.rpn_post_nms_top_n_test=64",
        "model.box_detections_per_img=32", "model.box_score_thresh=0.05",
        "postprocess.score_thresh=0.0", "postprocess.min_area=0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny untrained Mask R-CNN run with spread scores, exported to ONNX."""
    run = tmp_path_factory.mktemp("maskrcnn_onnx") / "run"
    cfg = load_config(resolve_config("cpu_maskrcnn_r18"), TINY)
    torch.manual_seed(0)
    model = model_from_config(cfg["model"], pretrained=False)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(4)
        model.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(3000)
    write_weights_run(run, cfg, model.state_dict(), PROJECT, MEMBER, prefix="model.")
    assert main([PROJECT, "export", "--run", str(run), "--format", "onnx"]) == 0
    return run


@pytest.fixture(scope="module")
def members(run):
    from ensemblab.projects.sartorius_cells.members.deploy import onnx_member

    return load_member(run, "cpu"), onnx_member(run)


def test_export_writes_four_checked_graphs_and_their_settings(run):
    settings = json.loads((run / "model.json").read_text())
    assert settings["member"] == "maskrcnn"
    assert settings["classes"] == ["background", "astro", "cort", "shsy5y"]
    assert settings["output"]["feature_names"] == ["0", "1", "2", "3", "pool"]
    assert settings["input"]["size"] == 96 and settings["input"]["multiple_of"] == 32
    assert settings["roi_heads"]["detections_per_img"] == 32
    assert set(settings["parts"]) == set(PARTS)
    for part in PARTS:
        assert settings["parts"][part]["file"] == part_path(run / "model.onnx", part).name
        onnx.checker.check_model(str(part_path(run / "model.onnx", part)))


@torch.no_grad()
def test_onnx_features_and_heads_match_torch(members):
    exact_net, onnx_net = members[0].net, members[1].net
    assert isinstance(onnx_net.backbone, OnnxBackbone)
    for shape in [(80, 96), (96, 60)]:  # padded to 96 x 96 and 96 x 64
        image = make_cells_image(1, "shsy5y", *shape)[0]
        batch, exact = image_features(exact_net, [image], 96)
        _, got = image_features(onnx_net, [image], 96)
        assert list(got) == list(exact)
        for level in exact:
            scale = float(exact[level].abs().max())
            assert float((got[level] - exact[level]).abs().max()) < 1e-3 * scale, level
        torch_heads = head_outputs(exact_net, image, 96)
        onnx_heads = head_outputs(onnx_net, image, 96, torch_heads["proposals"])
        agree = head_agreement(torch_heads, onnx_heads)
        print(f"onnx vs torch {shape}: {agree}")
        assert agree["features_rel"] < 1e-3
        assert agree["class_probs"] < 1e-3 and agree["mask_probs"] < 1e-3


def _crop_overlap_error(a, i, b, j) -> float:
    """Max abs difference of two instances' probability crops where their boxes overlap."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.crop_boxes[i], b.crop_boxes[j]
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    pa = np.asarray(a.masks[i], np.float32)[y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0]
    pb = np.asarray(b.masks[j], np.float32)[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
    return float(np.abs(pa - pb).max())


def test_onnx_instances_match_torch(members):
    exact_member, onnx_member = members
    image = make_cells_image(0, "astro", 80, 96)[0]
    exact, got = exact_member.raw(image), onnx_member.raw(image)
    assert len(exact) == len(got) > 5
    assert np.ptp(exact.scores) > 0.3, "scores should spread, not tie"
    ious = box_iou(torch.from_numpy(exact.boxes), torch.from_numpy(got.boxes)).numpy()
    score_error = mask_error = 0.0
    for i in range(len(exact)):
        j = int(np.argmax(np.where(got.labels == exact.labels[i], ious[i], -1)))
        assert got.labels[j] == exact.labels[i] and ious[i, j] > 0.9, i
        score_error = max(score_error, abs(float(exact.scores[i]) - float(got.scores[j])))
        mask_error = max(mask_error, _crop_overlap_error(exact, i, got, j))
    print(f"onnx vs torch instances: {len(exact)} matched, score {score_error:.1e}, "
          f"mask probabilities {mask_error:.1e} (float16 crops)")
    assert score_error < 1e-3 and mask_error < 1e-3


def test_predict_runtime_onnx_writes_the_torch_rows(run, tmp_path):
    write_png(tmp_path / "in" / "a.png", make_cells_image(2, "cort", 80, 96)[0])
    rows = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / runtime
        assert main([PROJECT, "predict", "--run", str(run), "--input", str(tmp_path / "in"),
                     "--out", str(out), "--device", "cpu", "--runtime", runtime,
                     "--overlays", "0"]) == 0
        with open(out / "predictions.csv") as f:
            rows[runtime] = list(csv.DictReader(f))
    assert len(rows["onnx"]) == len(rows["torch"]) > 1
    assert {r["id"] for r in rows["onnx"]} == {"a"}
    for ours, theirs in zip(rows["onnx"], rows["torch"]):
        assert abs(float(ours["score"]) - float(theirs["score"])) < 1e-3


def test_detectron2_imported_runs_refuse_in_one_line(run, tmp_path, capsys):
    cfg = load_config(run / "config.yaml")
    cfg["model"]["detectron2"] = {"MODEL": {"META_ARCHITECTURE": "GeneralizedRCNN"}}
    imported = write_weights_run(tmp_path / "d2", cfg, {}, PROJECT, MEMBER)
    assert main([PROJECT, "export", "--run", str(imported), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "a detectron2-imported Mask R-CNN member has no ONNX export" in err
    assert not (imported / "model.onnx").exists()
