"""detectron2 config and checkpoint import, export round trips, bad files, COCO results."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from pycocotools import mask as coco_mask

from ensemblab.cli import main
from ensemblab.config import save_config
from ensemblab.errors import ConfigError, DataError
from ensemblab.projects.sartorius_cells.data import (
    CellRecord,
    ImageReader,
    image_reader,
    read_gray_uint8,
)
from ensemblab.projects.sartorius_cells.detectron2.checkpoint import (
    read_detectron2_weights,
    to_detectron2_state,
    to_torchvision_state,
)
from ensemblab.projects.sartorius_cells.detectron2.coco_results import (
    instances_to_coco,
    write_coco_results,
)
from ensemblab.projects.sartorius_cells.detectron2.commands import (
    detectron2_member,
    export_detectron2,
    import_detectron2,
    run_state,
)
from ensemblab.projects.sartorius_cells.detectron2.config import model_config
from ensemblab.projects.sartorius_cells.detectron2.model import (
    build_detectron2_maskrcnn,
    predict_detectron2,
    to_input,
)
from ensemblab.projects.sartorius_cells.detectron2.transform import (
    resize_uint8,
    resized_shape,
)
from ensemblab.projects.sartorius_cells.members.maskrcnn_model import build_maskrcnn
from ensemblab.projects.sartorius_cells.structures import Instances
from ensemblab.synthetic.cells import write_cells_dataset

BASE_RCNN_FPN = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  BACKBONE:
    NAME: "build_resnet_fpn_backbone"
  RESNETS:
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  FPN:
    IN_FEATURES: ["res2", "res3", "res4", "res5"]
  ANCHOR_GENERATOR:
    SIZES: [[32], [64], [128], [256], [512]]
    ASPECT_RATIOS: [[0.5, 1.0, 2.0]]
  RPN:
    IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
    PRE_NMS_TOPK_TRAIN: 2000
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
    NAME: "StandardROIHeads"
    IN_FEATURES: ["p2", "p3", "p4", "p5"]
  ROI_BOX_HEAD:
    NAME: "FastRCNNConvFCHead"
    NUM_FC: 2
    POOLER_RESOLUTION: 7
  ROI_MASK_HEAD:
    NAME: "MaskRCNNConvUpsampleHead"
    NUM_CONV: 4
    POOLER_RESOLUTION: 14
SOLVER:
  IMS_PER_BATCH: 16
  BASE_LR: 0.02
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
VERSION: 2
"""

SMALL_CELLS = """
_BASE_: "../Base-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "model_final.pth"
  MASK_ON: True
  FPN:
    OUT_CHANNELS: 32
  ANCHOR_GENERATOR:
    SIZES: [[8], [16], [32], [64], [128]]
  ROI_HEADS:
    NUM_CLASSES: 3
    SCORE_THRESH_TEST: 0.05
  ROI_BOX_HEAD:
    FC_DIM: 64
  ROI_MASK_HEAD:
    NUM_CONV: 1
    CONV_DIM: 16
INPUT:
  MIN_SIZE_TRAIN: (96,)
  MAX_SIZE_TRAIN: 128
  MIN_SIZE_TEST: 96
  MAX_SIZE_TEST: 128
TEST:
  DETECTIONS_PER_IMAGE: 50
DATASETS:
  TRAIN: ("livecell_train",)
"""

MEMBER_CFG = {"seed": 0, "data": {"split": {"k": 5, "fold": 0, "seed": 0, "val_ids": []}},
              "model": {"kind": "maskrcnn", "classes": None, "image_size": 704},
              "postprocess": {"score_thresh": 0.5}}


@pytest.fixture(scope="module")
def d2_files(tmp_path_factory):
    """A detectron2 ``_BASE_`` chain and a model-zoo pickle of a small random model."""
    root = tmp_path_factory.mktemp("d2cfg")
    (root / "Base-RCNN-FPN.yaml").write_text(BASE_RCNN_FPN)
    (root / "cells").mkdir()
    config = root / "cells" / "mask_rcnn_R_50_FPN_cells.yaml"
    config.write_text(SMALL_CELLS)
    torch.manual_seed(0)
    model = build_detectron2_maskrcnn(model_config(config))
    state = to_detectron2_state(model.state_dict())
    weights = root / "model_final.pkl"
    with weights.open("wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "test"},
                    f, protocol=4)
    return config, weights, state


def test_base_chain_honours_model_keys_and_defaults(d2_files):
    cfg = model_config(d2_files[0])
    assert cfg["MODEL"]["ANCHOR_GENERATOR"]["SIZES"] == [[8], [16], [32], [64], [128]]
    assert cfg["MODEL"]["RPN"]["PRE_NMS_TOPK_TEST"] == 1000  # from _BASE_ (default: 6000)
    assert cfg["MODEL"]["RPN"]["NMS_THRESH"] == 0.7  # detectron2's default
    assert cfg["MODEL"]["ROI_BOX_HEAD"]["POOLER_RESOLUTION"] == 7
    assert cfg["MODEL"]["ROI_MASK_HEAD"]["NUM_CONV"] == 1  # child over base
    assert cfg["INPUT"]["MIN_SIZE_TRAIN"] == [96]  # "(96,)" is a Python tuple to yacs
    assert cfg["TEST"]["DETECTIONS_PER_IMAGE"] == 50
    assert "SOLVER" not in cfg and "DATASETS" not in cfg


def test_config_errors_name_every_key(tmp_path, d2_files):
    bad = tmp_path / "cascade.yaml"
    bad.write_text(f'_BASE_: "{d2_files[0]}"\nMODEL:\n  ROI_HEADS:\n    NAME: CascadeROIHeads\n'
                   "  RESNETS:\n    NORM: GN\n  FCOS:\n    NUM_CLASSES: 3\n")
    with pytest.raises(ConfigError) as err:
        model_config(bad)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg
    for key in ("MODEL.ROI_HEADS.NAME='CascadeROIHeads'", "MODEL.RESNETS.NORM='GN'",
                "MODEL.FCOS.NUM_CLASSES (unknown key)"):
        assert key in msg
    faster = tmp_path / "faster.yaml"
    faster.write_text(f'_BASE_: "{d2_files[0].parent.parent / "Base-RCNN-FPN.yaml"}"\n')
    with pytest.raises(ConfigError, match="MODEL.MASK_ON=False"):
        model_config(faster)
    orphan = tmp_path / "orphan.yaml"
    orphan.write_text('_BASE_: "../Base-RCNN-FPN.yaml"\n')
    with pytest.raises(ConfigError, match="Base-RCNN-FPN.yaml: detectron2 config file not found"):
        model_config(orphan)


def test_bad_checkpoints_are_one_line(tmp_path, d2_files):
    config, weights, state = d2_files
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(weights.read_bytes()[:5000])
    torch.save({"model": {k: v for k, v in list(state.items())[:3]}}, tmp_path / "ok.pth")
    truncated_pth = tmp_path / "truncated.pth"
    truncated_pth.write_bytes((tmp_path / "ok.pth").read_bytes()[:3000])
    lightning = tmp_path / "lightning.pth"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}}, lightning)
    caffe2 = tmp_path / "caffe2.pkl"
    caffe2.write_bytes(pickle.dumps({"model": {"conv1_w": np.zeros(2)}}))
    code = tmp_path / "code.pkl"
    code.write_bytes(pickle.dumps({"model": Path("x"), "__author__": "x"}))
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    cases = {truncated: "truncated", truncated_pth: "truncated", lightning: "no 'model' entry",
             caffe2: "Caffe2", code: "refusing to build pathlib", text: "truncated",
             tmp_path / "absent.pkl": "not found"}
    for path, reason in cases.items():
        with pytest.raises(DataError) as err:
            read_detectron2_weights(path)
        assert str(path) in str(err.value) and reason in str(err.value)
        assert "\n" not in str(err.value)


def test_missing_and_unexpected_tensors_are_all_reported(d2_files):
    config, _, state = d2_files
    model = build_detectron2_maskrcnn(model_config(config))
    broken = dict(state)
    del broken["roi_heads.box_head.fc2.weight"], broken["backbone.bottom_up.res4.5.conv3.weight"]
    broken["roi_heads.keypoint_head.conv_fcn1.weight"] = torch.zeros(1)
    broken["backbone.fpn_output2.bias"] = torch.zeros(7)
    broken["pixel_mean"] = torch.zeros(3, 1, 1)  # saved by old detectron2: ignored
    with pytest.raises(DataError) as err:
        to_torchvision_state(broken, model.state_dict(), "x.pkl")
    msg = str(err.value)
    assert "2 missing (" in msg and "roi_heads.box_head.fc2.weight" in msg
    assert "backbone.bottom_up.res4.5.conv3.weight" in msg
    assert "1 unexpected (roi_heads.keypoint_head.conv_fcn1.weight)" in msg
    assert "1 mis-shaped (backbone.fpn_output2.bias [7])" in msg and "pixel_mean" not in msg


def test_import_export_round_trip_is_bit_exact(tmp_path, d2_files):
    config, weights, state = d2_files
    run = import_detectron2(weights, config, tmp_path / "run", MEMBER_CFG, ["a", "b", "c"])
    cfg, ours = run_state(run)
    assert cfg["model"]["classes"] == ["a", "b", "c"] and cfg["postprocess"]["score_thresh"] == 0.5
    assert json.loads((run / "import.json").read_text())["tensors_mapped"] == len(ours)
    for suffix in (".pth", ".pkl"):
        checkpoint, exported_cfg = export_detectron2(run, tmp_path / f"export{suffix}")
        back = read_detectron2_weights(checkpoint)
        assert list(back) == list(state)
        assert all(torch.equal(back[k], state[k]) for k in state)
        again = import_detectron2(checkpoint, exported_cfg, tmp_path / f"again{suffix}",
                                  MEMBER_CFG, ["a", "b", "c"])
        cfg2, ours2 = run_state(again)
        assert cfg2["model"]["detectron2"] == cfg["model"]["detectron2"]
        assert all(torch.equal(ours2[k], ours[k]) for k in ours) and ours2.keys() == ours.keys()
    with pytest.raises(ConfigError, match="NUM_CLASSES is 3 but 2 class names"):
        import_detectron2(weights, config, tmp_path / "two", MEMBER_CFG, ["a", "b"])
    with pytest.raises(ConfigError, match="run folder exists"):
        import_detectron2(weights, config, run, MEMBER_CFG)


def test_torchvision_recipe_run_exports_its_tensors(tmp_path):
    model_cfg = {"kind": "maskrcnn", "classes": ["astro", "cort", "shsy5y"],
                 "backbone": "resnet50", "v2_heads": False, "image_size": 256,
                 "anchor_sizes": [8, 16, 32, 64, 128], "aspect_ratios": [0.5, 1.0, 2.0],
                 "mask_head_layers": 2, "mask_head_channels": 32, "box_head_dim": 64,
                 "rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 200,
                 "rpn_pre_nms_top_n_test": 300, "rpn_post_nms_top_n_test": 300,
                 "box_batch_size_per_image": 64, "box_detections_per_img": 500,
                 "box_score_thresh": 0.05, "box_nms_thresh": 0.5, "input_norm": "fixed"}
    kwargs = {k: v for k, v in model_cfg.items() if k not in ("kind", "classes")}
    native = build_maskrcnn(num_classes=4, **kwargs).state_dict()
    run = tmp_path / "native"
    save_config({**MEMBER_CFG, "model": model_cfg}, run)
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in native.items()}},
               run / "checkpoints" / "best.ckpt")
    checkpoint, config = export_detectron2(run, tmp_path / "native.pth")
    d2 = yaml.safe_load(config.read_text())
    assert d2["MODEL"]["RESNETS"]["STRIDE_IN_1X1"] is False and d2["INPUT"]["FORMAT"] == "RGB"
    assert d2["MODEL"]["PIXEL_STD"] == [63.75] * 3 and d2["MODEL"]["WEIGHTS"] == "native.pth"
    imported = import_detectron2(checkpoint, config, tmp_path / "imported", MEMBER_CFG,
                                 model_cfg["classes"])
    _, ours = run_state(imported)
    background_slots = {"roi_heads.box_predictor.bbox_pred.weight",
                        "roi_heads.box_predictor.bbox_pred.bias",
                        "roi_heads.mask_predictor.mask_fcn_logits.weight",
                        "roi_heads.mask_predictor.mask_fcn_logits.bias"}
    for name, tensor in native.items():
        if name.endswith("num_batches_tracked"):
            assert name not in ours
        elif name in background_slots:  # never read by either library; zero after import
            slot = 4 if "bbox_pred" in name else 1
            assert torch.equal(ours[name][slot:], tensor[slot:])
            assert not ours[name][:slot].any()
        else:
            assert torch.equal(ours[name], tensor), name
    save_config({**MEMBER_CFG, "model": {**model_cfg, "v2_heads": True}}, run)
    with pytest.raises(ConfigError, match="model.v2_heads=True"):
        export_detectron2(run, tmp_path / "v2.pth")


def test_prediction_matches_the_models_own_forward(d2_files):
    config = d2_files[0]
    torch.manual_seed(1)
    model = build_detectron2_maskrcnn(model_config(config)).eval()
    image = (np.random.default_rng(0).random((90, 130)) * 255).astype(np.uint8)
    inst = predict_detectron2(model, [image], chunk=7)[0]
    with torch.no_grad():
        forward = model([to_input(image)])[0]
    assert 0 < len(inst) <= 50
    assert np.allclose(inst.boxes, forward["boxes"].numpy())
    assert np.array_equal(inst.labels, forward["labels"].numpy())
    masks = forward["masks"][:, 0].numpy() >= 0.5
    assert all(np.array_equal(inst.full_mask(i), masks[i]) for i in range(len(inst)))


def test_fine_tuning_start_keeps_all_but_the_class_layers(tmp_path, d2_files):
    config, weights, _ = d2_files
    run = import_detectron2(weights, config, tmp_path / "livecell", MEMBER_CFG)
    _, source = run_state(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())["model"]
    model = detectron2_member({**cfg, "classes": ["only"],
                               "weights": str(run / "checkpoints" / "best.ckpt")})
    own = model.state_dict()
    fresh = {k for k in own
             if own[k].shape != source[k].shape or not torch.equal(own[k], source[k])}
    assert fresh == {"roi_heads.box_predictor.cls_score.weight",
                     "roi_heads.box_predictor.cls_score.bias",
                     "roi_heads.box_predictor.bbox_pred.weight",
                     "roi_heads.box_predictor.bbox_pred.bias",
                     "roi_heads.mask_predictor.mask_fcn_logits.weight",
                     "roi_heads.mask_predictor.mask_fcn_logits.bias"}


def test_coco_results_records(tmp_path):
    crop = np.zeros((6, 8), np.float32)
    crop[1:5, 2:6] = 0.9
    inst = Instances(np.array([[2.5, 3.0, 8.5, 9.0]], np.float32), np.array([0.75], np.float32),
                     np.array([2]), [crop], np.array([[1, 2, 9, 8]]), 12, 10)
    (record,) = instances_to_coco(7, inst, category_ids={1: 10, 2: 20})
    assert record["image_id"] == 7 and record["category_id"] == 20
    assert record["bbox"] == [2.5, 3.0, 6.0, 6.0] and record["score"] == 0.75
    mask = coco_mask.decode({"size": record["segmentation"]["size"],
                             "counts": record["segmentation"]["counts"].encode()})
    assert mask.shape == (12, 10) and mask.sum() == 16 and mask[3:7, 3:7].all()
    n = write_coco_results(tmp_path / "r.json", [("0042", inst), ("img_b", inst)])
    records = json.loads((tmp_path / "r.json").read_text())
    assert n == 2 and [r["image_id"] for r in records] == [42, "img_b"]
    assert records[0]["category_id"] == 2


def test_runs_read_colour_in_their_checkpoints_channel_order(tmp_path, d2_files, capsys):
    """A BGR and an RGB import read one colour file into swapped backbone channels; a grey
    file becomes three equal channels; native members read grey and note a colour file once."""
    config, weights, _ = d2_files
    rgb_config = config.with_name("rgb.yaml")  # beside it: its _BASE_ path is relative
    rgb_config.write_text(SMALL_CELLS.replace("INPUT:\n", "INPUT:\n  FORMAT: RGB\n").replace(
        "MODEL:\n", "MODEL:\n  PIXEL_MEAN: [123.675, 116.28, 103.53]\n"))
    photo = (np.random.default_rng(0).random((30, 41, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(photo[..., 1]).save(tmp_path / "grey.png")
    batches = {}
    for fmt, cfg_file in (("BGR", config), ("RGB", rgb_config)):
        run = import_detectron2(weights, cfg_file, tmp_path / fmt, MEMBER_CFG, ["a", "b", "c"])
        again = import_detectron2(*export_detectron2(run, tmp_path / f"{fmt}.pth"),
                                  tmp_path / f"{fmt}_again", MEMBER_CFG, ["a", "b", "c"])
        for folder in (run, again):  # the channel order survives export + import
            model_cfg = yaml.safe_load((folder / "config.yaml").read_text())["model"]
            assert model_cfg["detectron2"]["INPUT"]["FORMAT"] == fmt
            read = image_reader(model_cfg)
            model = detectron2_member(model_cfg, load_weights=False).eval()
            assert np.array_equal(read(tmp_path / "photo.png"), photo)
            record = CellRecord("photo", tmp_path / "photo.png", "x", "x", 30, 41, reader=read)
            assert np.array_equal(record.load_image(), photo)  # what evaluate scores
            grey = read(tmp_path / "grey.png")
            assert grey.shape == (30, 41, 3) and (grey == photo[..., 1:2]).all()
            with torch.no_grad():  # what the backbone receives
                batch = [model.transform([to_input(read(tmp_path / name))])[0].tensors[0]
                         for name in ("photo.png", "grey.png")]
            assert all(torch.equal(a, b) for a, b in zip(batch, batches.get(fmt, batch)))
            batches[fmt] = batch
    mean = torch.tensor([103.53, 116.28, 123.675]).view(3, 1, 1)
    h, w = resized_shape(30, 41, 96, 128)  # the small config's MIN/MAX_SIZE_TEST
    resized = resize_uint8(np.ascontiguousarray(photo[..., ::-1]), h, w)
    expected = torch.from_numpy(resized.transpose(2, 0, 1).astype(np.float32)) - mean
    assert torch.equal(batches["BGR"][0][:, :h, :w], expected)  # channel 0 is blue
    assert torch.equal(batches["RGB"][0], batches["BGR"][0].flip(0))
    grey = batches["BGR"][1][:, :h, :w] + mean
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    capsys.readouterr()
    native = ImageReader()
    assert np.array_equal(native(tmp_path / "grey.png"), photo[..., 1])
    assert capsys.readouterr().err == ""
    for _ in range(2):
        assert np.array_equal(native(tmp_path / "photo.png"), read_gray_uint8(tmp_path /
                                                                            "photo.png"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "photo.png is a colour image" in err


def test_cli_predict_reads_colour_for_an_imported_run(tmp_path, d2_files):
    config, weights, _ = d2_files
    run = import_detectron2(weights, config, tmp_path / "run", MEMBER_CFG, ["a", "b", "c"])
    photo = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    (tmp_path / "images").mkdir()
    Image.fromarray(photo).save(tmp_path / "images" / "7.png")
    assert main(["sartorius_cells", "predict", "--run", str(run), "--input",
                 str(tmp_path / "images"), "--out", str(tmp_path / "pred"), "--format",
                 "coco", "--device", "cpu"]) == 0
    records = json.loads((tmp_path / "pred" / "coco_instances_results.json").read_text())
    model = detectron2_member(yaml.safe_load((run / "config.yaml").read_text())["model"],
                              load_weights=False)
    model.load_state_dict(run_state(run)[1])
    expected = instances_to_coco(7, predict_detectron2(model, [photo])[0])
    assert records and len(records) == len(expected)
    assert np.allclose([r["bbox"] for r in records], [r["bbox"] for r in expected])
    assert [r["segmentation"] for r in records] == [r["segmentation"] for r in expected]
    assert main(["sartorius_cells", "predict", "--run", str(run), "--input",
                 str(tmp_path / "images"), "--out", str(tmp_path / "kaggle"), "--device",
                 "cpu"]) == 0
    with Image.open(tmp_path / "kaggle" / "overlays" / "7.png") as overlay:  # drawn on colour
        assert overlay.mode == "RGB" and overlay.size == (384, 288)


@pytest.mark.slow  # ~65 s: one fine-tuning epoch of a ResNet-50 model on 2 CPU cores
def test_cli_import_predict_coco_fine_tune_export(tmp_path, d2_files, capsys):
    config, weights, state = d2_files
    data = write_cells_dataset(tmp_path / "cells", images_per_type=2, height=96, width=128)
    run, tuned = tmp_path / "imported", tmp_path / "tuned"
    assert main(["sartorius_cells", "import-detectron2", "--weights", str(weights),
                 "--d2-config", str(config), "--out", str(run), "--classes", "a,b,c",
                 "--config", "cpu_maskrcnn_r18"]) == 0
    assert main(["sartorius_cells", "predict", "--run", str(run), "--input",
                 str(data / "train"), "--out", str(tmp_path / "pred"), "--format", "coco"]) == 0
    records = json.loads((tmp_path / "pred" / "coco_instances_results.json").read_text())
    assert records and set(records[0]) == {"image_id", "category_id", "bbox", "score",
                                           "segmentation"}
    assert all(r["category_id"] in (1, 2, 3) and r["bbox"][2] > 0 for r in records)
    # One sample per type: the validation fold's type (shsy5y) is in no training image.
    assert main(["sartorius_cells", "train", "--config", "cpu_maskrcnn_r18", "--init", str(run),
                 "--data", str(data), "--out", str(tuned), "train.epochs=1", "train.val_every=1",
                 "data.split.k=3", "data.allow_unseen=[shsy5y]"]) == 0
    cfg, ours = run_state(tuned)
    _, start = run_state(run)
    assert cfg["model"]["classes"] == ["astro", "cort", "shsy5y"]  # from the training data
    assert cfg["model"]["detectron2"] == yaml.safe_load((run / "config.yaml").read_text())[
        "model"]["detectron2"]
    stem = "backbone.body.conv1.weight"  # FREEZE_AT 2: stem and res2 stay as imported
    assert torch.equal(ours[stem], start[stem])
    assert not torch.equal(ours["roi_heads.box_head.fc6.weight"],
                           start["roi_heads.box_head.fc6.weight"])
    exported = tmp_path / "d2" / "model_final.pth"
    assert main(["sartorius_cells", "export-detectron2", "--run", str(tuned), "--out",
                 str(exported)]) == 0
    assert yaml.safe_load(exported.with_suffix(".yaml").read_text())["MODEL"]["ROI_HEADS"][
        "NUM_CLASSES"] == 3
    back = read_detectron2_weights(exported)
    assert torch.equal(back["backbone.bottom_up.stem.conv1.weight"], ours[stem])
    capsys.readouterr()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(weights.read_bytes()[:4096])
    assert main(["sartorius_cells", "import-detectron2", "--weights", str(truncated),
                 "--d2-config", str(config), "--out", str(tmp_path / "bad")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(truncated) in err and "truncated" in err
