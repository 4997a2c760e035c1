"""``mineral_ruel export --format onnx`` and ``predict --runtime onnx``: the exported learner
gives torch's probabilities and the same class-index PNGs (a hand-built, untrained run)."""

import json

import numpy as np
import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.data.images import read_label_png, write_png
from ensemblab.projects.mineral_ruel import LEARNER, PROJECT
from ensemblab.projects.mineral_ruel.commands import CHOICES, resolve_config
from ensemblab.projects.mineral_ruel.inference import module_from_config
from ensemblab.testing import write_weights_run

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

OVERRIDES = ["data.tile=64", "data.overlap=16", "model.decoder_channels=[8,8,8,8]"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(run folder, torch network)`` of a learner run exported as ONNX through the CLI."""
    run = tmp_path_factory.mktemp("mineral_onnx") / "learner"
    cfg = load_config(resolve_config("synthetic_quick"), OVERRIDES, choices=CHOICES)
    torch.manual_seed(0)
    module = module_from_config(cfg).eval()
    write_weights_run(run, cfg, module.state_dict(), PROJECT, LEARNER)
    assert main([PROJECT, "export", "--run", str(run), "--format", "onnx"]) == 0
    return run, module.net


def test_onnx_probabilities_match_torch(exported):
    run, net = exported
    onnx.checker.check_model(str(run / "model.onnx"))
    settings = json.loads((run / "model.json").read_text())
    assert settings["format"] == "ensemblab-onnx" and settings["opset"] >= 17
    assert settings["tiling"] == {**settings["tiling"], "tile": 64, "overlap": 16}
    assert len(settings["classes"]) == 9 and settings["input"]["scale"] == 1.0
    assert settings["input"]["dynamic_hw"] and settings["checkpoint"] == "best.ckpt"
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 96, 128)]:  # the tile and another size: dynamic H, W
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = net(x).softmax(1).numpy()
        got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0]).softmax(1).numpy()
        diff = float(np.abs(got - expected).max())
        print(f"{shape}: max |p_onnx - p_torch| = {diff:.2e}")
        assert diff < 1e-3


def test_predict_runtime_onnx_writes_the_torch_pngs(exported, tmp_path):
    run, _ = exported
    rng = np.random.default_rng(0)
    write_png(tmp_path / "in" / "a.png", rng.integers(0, 256, (80, 72, 3), np.uint8))
    maps = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / runtime
        assert main([PROJECT, "predict", "--run", str(run), "--input", str(tmp_path / "in"),
                     "--out", str(out), "--device", "cpu", "--runtime", runtime]) == 0
        assert (out / "a_overlay.png").is_file()
        maps[runtime] = read_label_png(out / "a.png")
    assert maps["onnx"].shape == (80, 72)
    assert (maps["onnx"] == maps["torch"]).mean() >= 0.999
