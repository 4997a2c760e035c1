"""Mask R-CNN member pieces: per-image standardisation, chunked mask head, box head width."""

import numpy as np
import pytest
import torch

from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.maskrcnn import (
    ImageStandardize,
    build_maskrcnn,
    mask_probabilities,
    predict_images,
)


def test_image_standardize_uses_each_image_own_statistics():
    t = ImageStandardize(64, 64, [0.5] * 3, [0.25] * 3)
    dim = torch.full((3, 8, 8), 0.40)
    dim[:, :4] = 0.44  # a low-contrast frame: 0.04 between its two levels
    out = t.normalize(dim)
    # Two equal halves at 0.40 / 0.44: mean 0.42, sample std 0.02 * sqrt(192/191).
    std = 0.02 * np.sqrt(192 / 191)
    assert out[0, 0, 0].item() == pytest.approx(0.02 / std, rel=1e-4)
    assert out[0, 7, 0].item() == pytest.approx(-0.02 / std, rel=1e-4)
    # A brighter copy with 5x the contrast standardises to the same values.
    assert torch.allclose(t.normalize(dim * 5 - 1.0), out, atol=1e-4)
    # A flat image is not divided by ~0.
    assert t.normalize(torch.full((3, 4, 4), 0.3)).abs().max().item() == 0.0


def test_input_norm_choice_is_checked():
    model = build_maskrcnn(2, "resnet18", False, 64, input_norm="image")
    assert isinstance(model.transform, ImageStandardize)
    assert not isinstance(build_maskrcnn(2, "resnet18", False, 64).transform, ImageStandardize)
    with pytest.raises(ConfigError, match="input_norm"):
        build_maskrcnn(2, "resnet18", False, 64, input_norm="zscore")


def test_box_head_dim_sets_the_fc_width():
    model = build_maskrcnn(3, "resnet18", False, 64, box_head_dim=256)
    assert model.roi_heads.box_head.fc7.out_features == 256
    assert model.roi_heads.box_predictor.cls_score.in_features == 256
    v2 = build_maskrcnn(3, "resnet18", True, 64, box_head_dim=128)
    assert v2.roi_heads.box_predictor.bbox_pred.in_features == 128


def test_chunked_mask_head_equals_torchvision_mask_branch():
    torch.manual_seed(0)
    model = build_maskrcnn(3, "resnet18", False, 128, box_score_thresh=0.0,
                           box_detections_per_img=150).eval()
    with torch.no_grad():
        batch, _ = model.transform([torch.rand(3, 107, 128)])
        features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        det = model.roi_heads(features, proposals, batch.image_sizes)[0][0]
        assert len(det["boxes"]) == 150
        mine = mask_probabilities(model, features, det["boxes"], det["labels"],
                                  batch.image_sizes[0], chunk=7)
        empty = mask_probabilities(model, features, det["boxes"][:0], det["labels"][:0],
                                   batch.image_sizes[0])
    assert mine.shape == (150, 28, 28)
    assert torch.allclose(mine, det["masks"][:, 0], atol=1e-5)
    assert empty.shape == (0, 28, 28)


def test_predict_images_does_not_depend_on_chunk_size():
    torch.manual_seed(1)
    model = build_maskrcnn(2, "resnet18", False, 96, box_score_thresh=0.0,
                           box_detections_per_img=40)
    image = (np.random.default_rng(0).random((80, 96)) * 255).astype(np.uint8)
    a = predict_images(model, [image], 96, chunk=3)[0]
    b = predict_images(model, [image], 96, chunk=1000)[0]
    assert len(a.scores) == 40
    np.testing.assert_array_equal(a.crop_boxes, b.crop_boxes)
    for x, y in zip(a.masks, b.masks):
        np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32), atol=1e-3)


def test_from_scratch_mask_loss_starts_near_chance():
    # detectron2's mask-logit init: logits ~0 -> BCE ~log(2); torchvision's Kaiming init gave
    # 5-20 on the first steps, which the first few dozen CPU steps spent undoing.
    from ensemblab.projects.sartorius_cells.data import targets_from_idmap
    from ensemblab.synthetic.cells import make_cells_image

    torch.manual_seed(0)
    image, ids = make_cells_image(3, "cort", 128, 128, n_cells=6, cell_scale=0.7)
    model = build_maskrcnn(2, "resnet18", False, 128, input_norm="image").train()
    tensor = torch.from_numpy(image).float().div(255)[None].expand(3, -1, -1)
    losses = model([tensor], [targets_from_idmap(ids, 1)])
    assert abs(losses["loss_mask"].item() - np.log(2)) < 0.05, losses
    torch.manual_seed(0)
    kaiming = build_maskrcnn(2, "resnet18", False, 128, input_norm="image",
                             mask_logit_init="kaiming").train()
    assert kaiming([tensor], [targets_from_idmap(ids, 1)])["loss_mask"].item() > 1.0
    with pytest.raises(ConfigError, match="mask_logit_init"):
        build_maskrcnn(2, "resnet18", False, 64, mask_logit_init="zeros")
