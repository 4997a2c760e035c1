"""Mask R-CNN network: per-image standardisation, encoder backbones, chunked mask head, box head
width."""

import numpy as np
import pytest
import torch

from ensemblab.errors import ConfigError
from ensemblab.projects.sartorius_cells.members.maskrcnn_model import (
    CellImageTransform,
    build_maskrcnn,
    mask_probabilities,
    predict_images,
)

R18 = {"backbone": "resnet18", "v2_heads": False}  # the light CPU network


def test_image_standardize_uses_each_image_own_statistics():
    t = CellImageTransform(64, channels=3, per_image=True, mean=0.5, std=0.25)
    dim = torch.full((1, 8, 8), 0.40)
    dim[:, :4] = 0.44  # a low-contrast frame: 0.04 between its two levels
    out = t.normalize(dim)
    assert out.shape == (3, 8, 8)
    # Two equal halves at 0.40 / 0.44: mean 0.42, sample std 0.02 * sqrt(64/63).
    std = 0.02 * np.sqrt(64 / 63)
    assert out[0, 0, 0].item() == pytest.approx(0.02 / std, rel=1e-4)
    assert out[2, 7, 0].item() == pytest.approx(-0.02 / std, rel=1e-4)
    # A brighter copy with 5x the contrast standardises to the same values.
    assert torch.allclose(t.normalize(dim * 5 - 1.0), out, atol=1e-4)
    # A flat image is not divided by ~0.
    assert t.normalize(torch.full((1, 4, 4), 0.3)).abs().max().item() < 1e-4
    # Fixed normalisation: (x - 0.5) / 0.25; an encoder backbone (mean 0, std 1, one channel)
    # gets the standardised image at mean 0.5, std 0.25 for its own normalisation.
    fixed = CellImageTransform(64, channels=3, per_image=False, mean=0.5, std=0.25)
    assert fixed.normalize(dim)[1, 0, 0].item() == pytest.approx((0.44 - 0.5) / 0.25)
    enc = CellImageTransform(64, channels=1, per_image=True, mean=0.0, std=1.0).normalize(dim)
    assert enc.shape == (1, 8, 8)
    assert torch.allclose(enc, 0.5 + 0.25 * out[:1], atol=1e-6)


def test_training_windows_reach_the_network_at_inference_scale():
    # Inputs arrive resized already; a 256 px training window of a 512 px model keeps its
    # size (torchvision's resize would enlarge it 2x, cells twice their inference size).
    model = build_maskrcnn(2, **R18, image_size=512).train()
    window = torch.rand(1, 256, 256)
    boxes = torch.tensor([[10.0, 20.0, 60.0, 90.0]])
    batch, targets = model.transform([window], [{"boxes": boxes.clone(),
                                                 "labels": torch.tensor([1])}])
    assert batch.image_sizes == [(256, 256)]
    assert torch.equal(targets[0]["boxes"], boxes)
    model.eval()
    assert model.transform([torch.rand(1, 511, 512)])[0].image_sizes == [(511, 512)]


def test_input_norm_choice_is_checked():
    model = build_maskrcnn(2, **R18, image_size=64, input_norm="image")
    assert model.transform.per_image and model.transform.channels == 3
    assert not build_maskrcnn(2, backbone="resnet18", v2_heads=False,
                              image_size=64).transform.per_image
    with pytest.raises(ConfigError, match="input_norm"):
        build_maskrcnn(2, **R18, image_size=64, input_norm="zscore")


def test_box_head_dim_sets_the_fc_width():
    model = build_maskrcnn(3, **R18, image_size=64, box_head_dim=256)
    assert model.roi_heads.box_head.fc7.out_features == 256
    assert model.roi_heads.box_predictor.cls_score.in_features == 256
    v2 = build_maskrcnn(3, backbone="resnet18", v2_heads=True, image_size=64, box_head_dim=128)
    assert v2.roi_heads.box_predictor.bbox_pred.in_features == 128


def test_chunked_mask_head_equals_torchvision_mask_branch():
    torch.manual_seed(0)
    model = build_maskrcnn(3, **R18, image_size=128, box_score_thresh=0.0,
                           box_detections_per_img=150).eval()
    with torch.no_grad():
        batch, _ = model.transform([torch.rand(1, 107, 128)])
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
    model = build_maskrcnn(2, **R18, image_size=96, box_score_thresh=0.0,
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
    from ensemblab.projects.sartorius_cells.members.maskrcnn_data import targets_from_idmap
    from ensemblab.synthetic.cells import make_cells_image

    torch.manual_seed(0)
    image, ids = make_cells_image(3, "cort", 128, 128, n_cells=6, cell_scale=0.7)
    model = build_maskrcnn(2, **R18, image_size=128, input_norm="image").train()
    tensor = torch.from_numpy(image).float().div(255)[None]
    losses = model([tensor], [targets_from_idmap(ids, 1)])
    assert abs(losses["loss_mask"].item() - np.log(2)) < 0.05, losses
    torch.manual_seed(0)
    kaiming = build_maskrcnn(2, **R18, image_size=128, input_norm="image",
                             mask_logit_init="kaiming").train()
    assert kaiming([tensor], [targets_from_idmap(ids, 1)])["loss_mask"].item() > 1.0
    with pytest.raises(ConfigError, match="mask_logit_init"):
        build_maskrcnn(2, **R18, image_size=64, mask_logit_init="zeros")


def test_efficientnet_lite_backbone_takes_gray_and_keeps_imagenet_features():
    """The encoder FPN: one input channel, the packaged ImageNet stem (summed over RGB), the
    same FPN levels as the ResNet FPN, and a forward/backward pass at 64 px."""
    from ensemblab.backbones import create_encoder

    torch.manual_seed(0)
    model = build_maskrcnn(2, backbone="efficientnet_lite0", pretrained=True, v2_heads=False,
                           image_size=64, input_norm="image", box_detections_per_img=20)
    assert model.transform.channels == 1
    rgb = create_encoder("efficientnet_lite0", pretrained=True, in_chans=3)
    stem = model.backbone.body.body.conv_stem.weight
    assert stem.shape[1] == 1
    assert torch.allclose(stem, rgb.body.conv_stem.weight.sum(1, keepdim=True))
    image = torch.rand(1, 64, 64)
    batch, _ = model.transform([image])
    assert list(model.backbone(batch.tensors)) == ["0", "1", "2", "3", "pool"]
    ids = np.zeros((64, 64), np.int32)
    ids[10:30, 10:30], ids[35:55, 30:50] = 1, 2
    from ensemblab.projects.sartorius_cells.members.maskrcnn_data import targets_from_idmap

    losses = model.train()([image], [targets_from_idmap(ids, 1)])
    sum(losses.values()).backward()
    assert stem.grad is not None and stem.grad.abs().sum() > 0


def test_anchor_sizes_take_several_sizes_per_level():
    model = build_maskrcnn(2, image_size=64, anchor_sizes=[[16, 23], [32, 45], [64, 91],
                                                           [128, 181], [256, 362]], **R18)
    assert model.rpn.anchor_generator.num_anchors_per_location() == [6] * 5
    assert model.rpn.head.cls_logits.out_channels == 6
    cell = model.rpn.anchor_generator.cell_anchors[0]  # P2: 3 ratios x (16, 23), ratio-major
    sides = (cell[:, 2] - cell[:, 0]) * (cell[:, 3] - cell[:, 1])
    roots = torch.sqrt(sides)  # torchvision rounds the corners: within 1.5 px
    assert ((roots - 16).abs() < 1.5).sum() == 3 and ((roots - 23).abs() < 1.5).sum() == 3
    for bad in ([[16, 23], [32]], [[], [32]]):
        with pytest.raises(ConfigError, match="anchor_sizes"):
            build_maskrcnn(2, image_size=64, anchor_sizes=bad, **R18)


def test_mask_resolution_56_predicts_56_pixel_masks():
    torch.manual_seed(0)
    model = build_maskrcnn(2, image_size=64, mask_resolution=56, mask_head_layers=1,
                           mask_head_channels=16, **R18).eval()
    features = model.backbone(torch.rand(1, 3, 64, 64))
    boxes = torch.tensor([[4.0, 4.0, 40.0, 30.0], [10.0, 12.0, 60.0, 60.0]])
    probs = mask_probabilities(model, features, boxes, torch.tensor([1, 1]), (64, 64))
    assert probs.shape == (2, 56, 56)
    with pytest.raises(ConfigError, match="mask_resolution"):
        build_maskrcnn(2, image_size=64, mask_resolution=42, **R18)
