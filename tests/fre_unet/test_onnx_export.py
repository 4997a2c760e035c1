"""``fre_unet export --format onnx``: the SE-U-Net with FRE, dropout and the supervision head
exports as its eval graph and gives torch's probabilities; ``predict --runtime onnx`` writes
the torch PNGs (a hand-built, untrained run)."""

import json

import numpy as np
import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_config, save_config
from ensemblab.data.images import read_label_png, write_png
from ensemblab.projects.fre_unet import MODEL, PROJECT
from ensemblab.projects.fre_unet.commands import build_module, resolve_config
from ensemblab.run_record import write_run_record

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

CLASSES = ["membrane", "cell"]
OVERRIDES = ["data.scale=1.0", "model.width=0.125", "model.fre.num_enhanced=2",
             "model.fre.factor=250", "model.dropout=0.2", "model.supervision=true"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(run folder, torch SE-U-Net in eval mode)`` of a run exported through the CLI."""
    run = tmp_path_factory.mktemp("fre_onnx") / "run"
    cfg = load_config(resolve_config("cpu_quick"), OVERRIDES)
    torch.manual_seed(0)
    module = build_module(cfg, CLASSES)
    save_config(cfg, run)
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": module.state_dict(),
                "hyper_parameters": {"class_names": CLASSES}},
               run / "checkpoints" / "best.ckpt")
    write_run_record(run, PROJECT, MODEL)
    out = run / "deploy" / "seunet.onnx"
    assert main([PROJECT, "export", "--run", str(run), "--format", "onnx",
                 "--out", str(out)]) == 0
    return run, out, module.model.eval()


def test_onnx_probabilities_match_the_eval_graph(exported):
    _, path, net = exported
    onnx.checker.check_model(str(path))
    settings = json.loads(path.with_suffix(".json").read_text())
    assert settings["classes"] == CLASSES and settings["input"]["multiple_of"] == 2**net.depth
    assert settings["input"]["channels"] == 1 and settings["input"]["dynamic_hw"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 64, 64), (2, 1, 96, 128)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = net(x).softmax(1).numpy()
        got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0]).softmax(1).numpy()
        diff = float(np.abs(got - expected).max())
        print(f"{shape}: max |p_onnx - p_torch| = {diff:.2e}")
        assert diff < 1e-3


def test_predict_runtime_onnx_writes_the_torch_pngs(exported, tmp_path):
    run, path, _ = exported
    (run / "model.onnx").write_bytes(path.read_bytes())  # predict reads RUN/model.onnx
    (run / "model.json").write_text(path.with_suffix(".json").read_text())
    rng = np.random.default_rng(0)
    write_png(tmp_path / "in" / "a.png", rng.integers(0, 256, (70, 60), np.uint8))
    maps = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / runtime
        assert main([PROJECT, "predict", "--run", str(run), "--input", str(tmp_path / "in"),
                     "--out", str(out), "--device", "cpu", "--runtime", runtime]) == 0
        maps[runtime] = read_label_png(out / "a.png")
    assert maps["onnx"].shape == (70, 60)
    assert (maps["onnx"] == maps["torch"]).mean() >= 0.999
