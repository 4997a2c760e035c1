"""Members memoise their network pass per image: an ensemble asks a Mask R-CNN for its boxes
and then for its masks on the fused windows of two set-ups; the answers must be those of the
unmemoised functions, and only the last few images are held."""

import numpy as np
import pytest
import torch

from ensemblab.config import load_config
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.commands import resolve_config
from ensemblab.projects.sartorius_cells.ensemble.consensus import flip_image
from ensemblab.projects.sartorius_cells.members import load_member
from ensemblab.projects.sartorius_cells.members.base import ImageMemo
from ensemblab.projects.sartorius_cells.members.maskrcnn import model_from_config
from ensemblab.projects.sartorius_cells.members.maskrcnn_model import (
    predict_images,
    window_probs,
)
from ensemblab.synthetic.cells import make_cells_image
from ensemblab.testing import write_weights_run

TINY = ["model.classes=[astro, cort, shsy5y]", "model.image_size=96",
        "model.rpn_pre_nms_top_n_test=200", "model.rpn_post_nms_top_n_test=64",
        "model.box_detections_per_img=32", "model.box_score_thresh=0.0",
        "postprocess.score_thresh=0.0", "postprocess.min_area=0"]


def test_memo_computes_once_per_image_and_holds_only_the_last_ones():
    memo, calls = ImageMemo(2), []

    def compute(tag):
        calls.append(tag)
        return tag

    a = np.arange(64, dtype=np.uint8).reshape(8, 8)
    b, c = flip_image(a, "h"), a.reshape(4, 16)  # same pixels, other order / shape
    assert [memo.get(x, lambda t=t: compute(t)) for x, t in ((a, "a"), (b, "b"), (a.copy(), "x"))
            ] == ["a", "b", "a"]
    assert calls == ["a", "b"]
    memo.get(c, lambda: compute("c"))      # a third image drops the oldest (b)
    memo.get(b, lambda: compute("b2"))
    assert calls == ["a", "b", "c", "b2"]


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    """A hand-built, untrained ``cpu_maskrcnn_r18`` member at 96 px."""
    run = tmp_path_factory.mktemp("memo") / "run"
    cfg = load_config(resolve_config("cpu_maskrcnn_r18"), TINY)
    torch.manual_seed(0)
    model = model_from_config(cfg["model"], pretrained=False)
    write_weights_run(run, cfg, model.state_dict(), PROJECT, MEMBER, prefix="model.")
    return load_member(run, "cpu")


def test_memoised_raw_and_window_probs_equal_the_direct_pass(member):
    images = [make_cells_image(s, "astro", 80, 96)[0] for s in (0, 1)]
    windows = np.array([[4, 6, 40, 30], [50, 50, 90, 96]], np.int64)
    labels = np.array([1, 2])
    for image in images + [flip_image(images[0], "h"), images[0]]:
        raw = member.raw(image)
        again = member.raw(image)
        direct = predict_images(member.net, [image], 96)[0]
        assert again is raw and len(raw.boxes) == len(direct.boxes) > 0
        np.testing.assert_array_equal(raw.boxes, direct.boxes)
        np.testing.assert_array_equal(raw.scores, direct.scores)
        for got, want in zip(member.window_probs(image, windows, labels, windows),
                             window_probs(member.net, image, windows, labels, 96)):
            np.testing.assert_array_equal(got, want)
    assert len(member._features._items) == 2 and len(member._raw._items) == 2
    member.forget()
    assert not member._features._items and not member._raw._items
