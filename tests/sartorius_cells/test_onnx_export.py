"""``sartorius_cells export --format onnx`` of the UPerNet members (full and crop): the pyramid
pooling exports with dynamic sizes and the graphs give torch's probabilities; ``predict
--runtime onnx`` runs the full member's ONNX file (hand-built, untrained runs). The Mask R-CNN
member's export: ``test_maskrcnn_onnx.py``."""

import json

import numpy as np
import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_config, save_config
from ensemblab.data.images import write_png
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.commands import resolve_config
from ensemblab.projects.sartorius_cells.members.base import load_member
from ensemblab.projects.sartorius_cells.members.upernet import UperNetLitModule
from ensemblab.run_record import write_run_record

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TINY = ["model.classes=[shsy5y, astro, cort]", "model.decoder_channels=32", "model.size=64",
        "model.crop=64"]


def _exported_run(root, config, mode):
    run = root / mode
    cfg = load_config(resolve_config(config), TINY)
    torch.manual_seed(0)
    module = UperNetLitModule(mode, cfg["model"], cfg["train"], pretrained=False)
    save_config(cfg, run)
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": module.state_dict()}, run / "checkpoints" / "best.ckpt")
    write_run_record(run, PROJECT, MEMBER)
    assert main([PROJECT, "export", "--run", str(run), "--format", "onnx"]) == 0
    return run, module.net.eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sartorius_onnx")
    return {"full": _exported_run(root, "cpu_upernet_full_r18", "full"),
            "crop": _exported_run(root, "cpu_upernet_crop_r18", "crop")}


@pytest.mark.parametrize("mode, shapes", [("full", [(1, 1, 64, 64), (1, 1, 64, 96)]),
                                          ("crop", [(3, 1, 64, 64)])])
def test_onnx_probabilities_match_torch(runs, mode, shapes):
    run, net = runs[mode]
    onnx.checker.check_model(str(run / "model.onnx"))
    settings = json.loads((run / "model.json").read_text())
    assert settings["member"] == f"upernet_{mode}"
    assert settings["cell_types"] == ["shsy5y", "astro", "cort"]
    assert settings["output"]["activation"] == ("softmax" if mode == "full" else "sigmoid")
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    for shape in shapes:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = net(x)
        got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
        act = (lambda t: t.softmax(1)) if mode == "full" else torch.sigmoid
        diff = float((act(got) - act(expected)).abs().max())
        print(f"{mode} {shape}: max |p_onnx - p_torch| = {diff:.2e}")
        assert diff < 1e-3


def test_predict_runtime_onnx_runs_the_full_member(runs, tmp_path):
    from ensemblab.projects.sartorius_cells.members.deploy import onnx_member

    run, _ = runs["full"]
    image = np.random.default_rng(0).integers(90, 110, (52, 70), np.uint8)
    torch_probs = load_member(run, "cpu").probabilities(image)
    onnx_probs = onnx_member(run).probabilities(image)
    assert onnx_probs.shape == torch_probs.shape == (3, 52, 70)
    assert np.abs(onnx_probs - torch_probs).max() < 1e-3
    write_png(tmp_path / "in" / "a.png", image)
    assert main([PROJECT, "predict", "--run", str(run), "--input", str(tmp_path / "in"),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--runtime", "onnx"]) == 0
    assert (tmp_path / "out" / "predictions.csv").is_file()


def test_members_without_onnx_export_say_so(tmp_path, capsys):
    run = tmp_path / "yolox"
    save_config(load_config(resolve_config("cpu_yolox_nano")), run)
    write_run_record(run, PROJECT, MEMBER)
    assert main([PROJECT, "export", "--run", str(run), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "a yolox member has no ONNX export (members with one: upernet_full" in err
