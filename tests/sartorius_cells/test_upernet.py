"""UPerNet member: targets, the auxiliary-head network, crops, instances from the semantic map."""

import numpy as np
import torch

from ensemblab.config import load_config
from ensemblab.projects.sartorius_cells.commands import resolve_config
from ensemblab.projects.sartorius_cells.members.upernet import UperNetLitModule
from ensemblab.projects.sartorius_cells.members.upernet_data import semantic_target
from ensemblab.projects.sartorius_cells.members.upernet_model import (
    UperNetWithAux,
    predict_crops,
    semantic_instances,
)


def test_semantic_target_marks_only_cell_cell_borders():
    ids = np.zeros((6, 8), np.int32)
    ids[1:5, 1:4] = 1
    ids[1:5, 4:7] = 2
    t = semantic_target(ids)
    assert t[0].tolist() == [0] * 8
    assert t[2].tolist() == [0, 1, 1, 2, 2, 1, 1, 0]  # columns 3|4 touch; edges to bg stay 1
    assert semantic_target(ids, border=False).max() == 1


def test_upernet_with_aux_shapes_and_loss_falls():
    torch.manual_seed(0)
    net = UperNetWithAux("resnet18", classes=3, decoder_channels=32, pretrained=False)
    x = torch.randn(2, 1, 64, 64)
    main, aux = net(x)
    assert main.shape == aux.shape == (2, 3, 64, 64)
    net.eval()
    assert net(x).shape == (2, 3, 64, 64)
    cfg = load_config(resolve_config("cpu_upernet_full_r18"),
                      ["model.encoder=resnet18", "model.decoder_channels=32", "train.lr=3e-3",
                       "train.weight_decay=0.0", "train.epochs=1", "train.class_weights=null"])
    module = UperNetLitModule("full", cfg["model"], cfg["train"], pretrained=False)
    target = (x[:, 0] > 0).long()
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    module.train()
    losses = []
    for _ in range(8):
        loss = module.training_step((x, target), 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_semantic_instances_split_touching_cells_along_the_border():
    probs = np.zeros((3, 10, 12), np.float32)
    probs[0] = 1.0
    probs[:, 2:8, 1:11] = 0.0
    probs[1, 2:8, 1:11] = 0.9
    probs[0, 2:8, 1:11] = 0.1
    probs[1, 2:8, 6], probs[2, 2:8, 6] = 0.2, 0.7  # border column between two cells
    inst = semantic_instances(probs, min_area=4)
    assert len(inst) == 2
    areas = sorted(int(m.sum()) for m in inst.masks)
    assert sum(areas) == 60  # every cell and border pixel is assigned
    np.testing.assert_allclose(inst.scores, 0.9)


def test_predict_crops_returns_windows_around_boxes_inside_the_image():
    net = UperNetWithAux("resnet18", classes=1, decoder_channels=16,
                         pretrained=False).eval()
    image = np.random.default_rng(0).integers(0, 255, (50, 60), dtype=np.uint8)
    boxes = np.array([[10, 10, 20, 30], [0, 0, 8, 8], [55, 40, 60, 50]], np.float32)
    windows, probs = predict_crops(net, image, boxes, "cpu", crop=32, context=0.25, batch=2)
    assert len(probs) == 3
    for (x0, y0, x1, y1), p, b in zip(windows, probs, boxes):
        assert p.shape == (y1 - y0, x1 - x0) and 0 <= p.min() and p.max() <= 1
        assert x0 <= b[0] and y0 <= b[1] and x1 >= b[2] and y1 >= b[3]
        assert x0 >= 0 and y0 >= 0 and x1 <= 60 and y1 <= 50
