"""``predict --precision bf16``: the Mask R-CNN fast path (bf16 autocast on channels-last
tensors, box decoding / NMS / RoIAlign / pasting in float32) on a tiny untrained member run.

Untrained class scores all sit near 1 / (K + 1), so which instances survive the score cut is
decided by float noise; the fast path is compared through the raw head outputs on the exact
path's proposals instead (instance agreement on calibrated weights: the detectron2 reference
test and ``tools/bench_predict.py``).
"""

import copy
import csv

import numpy as np
import pytest
import torch

from ensemblab.backbones.precision import bf16_supported
from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.data.images import write_png
from ensemblab.data.rle import rle_decode
from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.commands import resolve_config
from ensemblab.projects.sartorius_cells.detectron2.masks import (
    paste_crop,
    paste_crops,
    paste_region,
)
from ensemblab.projects.sartorius_cells.members import load_member
from ensemblab.projects.sartorius_cells.members.maskrcnn import model_from_config
from ensemblab.projects.sartorius_cells.members.maskrcnn_bf16 import (
    Bf16Part,
    check_precision,
    head_agreement,
    head_outputs,
    is_bf16,
    to_bf16,
)
from ensemblab.synthetic.cells import make_cells_image
from ensemblab.testing import write_weights_run

TINY = ["model.classes=[astro, cort, shsy5y]", "model.image_size=96",
        "model.rpn_pre_nms_top_n_test=200", "model.rpn_post_nms_top_n_test=64",
        "model.box_detections_per_img=32", "model.box_score_thresh=0.0",
        "postprocess.score_thresh=0.0", "postprocess.min_area=0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A hand-built, untrained ``cpu_maskrcnn_r18`` run at 96 px."""
    run = tmp_path_factory.mktemp("maskrcnn_bf16") / "run"
    cfg = load_config(resolve_config("cpu_maskrcnn_r18"), TINY)
    torch.manual_seed(0)
    model = model_from_config(cfg["model"], pretrained=False)
    return write_weights_run(run, cfg, model.state_dict(), PROJECT, MEMBER, prefix="model.")


def test_predict_precision_bf16_writes_valid_predictions(run, tmp_path):
    image = make_cells_image(0, "astro", 80, 96)[0]
    write_png(tmp_path / "in" / "a.png", image)
    assert main([PROJECT, "predict", "--run", str(run), "--input", str(tmp_path / "in"),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--precision", "bf16",
                 "--overlays", "0"]) == 0
    with open(tmp_path / "out" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["id", "predicted", "score", "cell_type"]
    assert {r["id"] for r in rows} == {"a"}
    masks = [rle_decode(r["predicted"], image.shape) for r in rows if r["predicted"]]
    assert masks, "the score and area cuts are off: every detection should be written"
    assert not (np.sum(masks, axis=0) > 1).any()  # post-processed: no pixel in two instances
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows if r["score"])


def test_use_precision_converts_only_mask_rcnn_members(run):
    member = load_member(run, "cpu")
    member.use_precision("fp32")
    assert not is_bf16(member.net)
    member.use_precision("bf16")
    assert is_bf16(member.net) and isinstance(member.net.roi_heads.mask_head, Bf16Part)
    assert not isinstance(member.net.roi_heads.box_predictor, Bf16Part)  # float32 logits
    with pytest.raises(ConfigError, match="fp16"):
        check_precision("fp16")


@torch.no_grad()
def test_bf16_heads_agree_with_fp32_and_leave_the_exact_model_alone(run):
    model = load_member(run, "cpu").net
    image = make_cells_image(1, "shsy5y", 80, 96)[0]
    before = head_outputs(model, image, 96)
    fast = to_bf16(copy.deepcopy(model))
    exact = head_outputs(model, image, 96)
    for key in exact:  # converting a copy does not touch the float32 model's kernels
        assert torch.equal(exact[key], before[key]), key
    got = head_outputs(fast, image, 96, exact["proposals"])
    assert all(v.dtype == torch.float32 for v in got.values())
    agree = head_agreement(exact, got)
    print(f"bf16 vs fp32 heads: {agree}")
    # The backbone stays float32 (norms folded, channels-last: rounding only); the box and
    # mask heads run in bf16 (8 mantissa bits). Measured on this run (AMD EPYC, AVX-512 BF16):
    # P2 2.1e-06, class probs 6.8e-04, mask probs 2.2e-04; bounds about 15x that.
    assert agree["features_rel"] < 1e-4
    assert agree["class_probs"] < 0.01
    assert agree["mask_probs"] < 0.005
    if bf16_supported("cpu"):  # a fast path that silently ran fp32 would agree to 1e-6
        assert agree["class_probs"] > 1e-5 and agree["mask_probs"] > 1e-5


def test_batched_paste_gives_the_per_instance_crops():
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(40, 28, 28, generator=generator)
    xy = torch.rand(40, 2, generator=generator) * 90
    wh = torch.rand(40, 2, generator=generator) * 40 + 0.5
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes[0] = torch.tensor([3.2, 4.7, 95.0, 99.0])  # one large box among small ones
    regions = [paste_region(b, 100, 100) for b in boxes]
    batched = paste_crops(masks, boxes, torch.tensor(regions), max_pixels=20_000)
    for mask, box, region, crop in zip(masks, boxes, regions, batched):
        single = paste_crop(mask, box, region)
        assert crop.shape == single.shape
        assert (crop - single).abs().max() <= 1e-6


@pytest.mark.parametrize("kind", ["torchvision", "detectron2"])
def test_threaded_pooler_pools_the_same_numbers_in_the_same_order(kind):
    from torchvision.ops import MultiScaleRoIAlign

    from ensemblab.projects.sartorius_cells.detectron2.roi_heads import LevelROIAlign
    from ensemblab.projects.sartorius_cells.members.maskrcnn_bf16 import ThreadedPooler

    generator = torch.Generator().manual_seed(0)
    features = {str(k): torch.randn(2, 8, 64 >> k, 64 >> k, generator=generator)
                for k in range(4)}
    boxes = []
    for n in (70, 45):  # two images, uneven counts: slices interleave per image
        xy = torch.rand(n, 2, generator=generator) * 200
        boxes.append(torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=generator) * 50], 1))
    pooler = (MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2) if kind == "torchvision"
              else LevelROIAlign(7))
    shapes = [(256, 256), (256, 256)]
    expected = pooler(features, boxes, shapes)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        got = ThreadedPooler(pooler, min_boxes=8)(features, boxes, shapes)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(got, expected)
