"""``export --format onnx`` and ``predict --runtime onnx`` in the core: every project gets the
flag, a project without ONNX export and a missing onnxruntime each give one line."""

import sys

import pytest
import torch

from ensemblab.cli import build_parser, main
from ensemblab.config import save_config
from ensemblab.engine.onnx_export import (
    MISSING_RUNTIME,
    OnnxGraph,
    OnnxRuntimeModel,
    OnnxSpec,
    export_onnx,
    exportable,
    load_onnx,
    load_onnx_part,
    part_path,
    read_settings,
    require_onnxruntime,
)
from ensemblab.errors import ConfigError, DataError
from ensemblab.run_record import write_run_record


def test_every_project_exports_weights_by_default_and_onnx_on_request():
    parser = build_parser()
    for project in ("battery_crystal", "crossattn_vl", "fre_unet", "mineral_ruel",
                    "sartorius_cells"):
        args = parser.parse_args([project, "export", "--run", "r"])
        assert args.format == "weights"
        assert parser.parse_args([project, "export", "--run", "r", "--format", "onnx"]).format \
            == "onnx"
    for project in ("fre_unet", "mineral_ruel", "sartorius_cells"):
        base = [project, "predict", "--run", "r", "--input", "i", "--out", "o"]
        assert parser.parse_args(base).runtime == "torch"
        assert parser.parse_args([*base, "--runtime", "onnx"]).runtime == "onnx"


def test_a_project_without_onnx_export_names_those_with_one(tmp_path, capsys):
    run = tmp_path / "run"
    save_config({"seed": 0}, run)
    write_run_record(run, "crossattn_vl", "model")
    assert main(["crossattn_vl", "export", "--run", str(run), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ensemblab: error: crossattn_vl has no ONNX export (projects with one: "
                   "fre_unet, mineral_ruel, sartorius_cells); use --format weights")


def test_a_missing_onnxruntime_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ConfigError) as err:
        require_onnxruntime()
    assert str(err.value) == MISSING_RUNTIME
    run = tmp_path / "run"
    save_config({"seed": 0}, run)
    write_run_record(run, "fre_unet", "model")
    assert main(["fre_unet", "predict", "--run", str(run), "--input", str(tmp_path),
                 "--out", str(tmp_path / "out"), "--runtime", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == f"ensemblab: error: {MISSING_RUNTIME}"


def test_adaptive_pools_export_with_dynamic_sizes(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1),
                              torch.nn.AdaptiveAvgPool2d((3, 6)), torch.nn.Conv2d(4, 2, 1))
    path, settings = export_onnx(OnnxSpec(net, torch.rand(1, 1, 32, 32), {"classes": ["a", "b"]}),
                                 tmp_path / "pool.onnx")
    assert settings == tmp_path / "pool.json"
    assert read_settings(path)["input"]["dynamic_hw"] is True
    runtime = OnnxRuntimeModel(path)
    for shape in [(1, 1, 32, 32), (2, 1, 37, 50)]:  # bins of unequal widths
        x = torch.rand(*shape)
        with torch.no_grad():
            assert torch.allclose(exportable(net)(x), net(x), atol=1e-6)
            assert torch.allclose(runtime(x), net(x), atol=1e-5)


class _TwoScales(torch.nn.Module):
    """Features at strides 1 and 2: a network with named outputs of different sizes."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y, torch.nn.functional.max_pool2d(y, 2)


def test_a_network_exports_in_parts_with_named_outputs(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net, head = _TwoScales(), torch.nn.Linear(3, 2)
    outputs = {"p1": {0: "batch", 2: "h1", 3: "w1"}, "p2": {0: "batch", 2: "h2", 3: "w2"}}
    head_graph = OnnxGraph(head, {"rois": torch.rand(4, 3)}, ("scores",),
                           {"rois": {0: "rois"}, "scores": {0: "rois"}})
    path, _ = export_onnx(OnnxSpec(net, torch.rand(1, 1, 16, 16), {}, outputs=outputs,
                                   parts={"head": head_graph}), tmp_path / "model.onnx")
    settings = read_settings(path)
    assert settings["output"] == {"names": ["p1", "p2"]}
    assert settings["parts"] == {"head": {"file": "model.head.onnx", "inputs": ["rois"],
                                          "outputs": ["scores"]}}
    main, _ = load_onnx(tmp_path)
    x = torch.rand(1, 1, 20, 12)  # other sizes than the example
    with torch.no_grad():
        for got, expected in zip(main.run(x), net(x), strict=True):
            assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)
        rois = torch.rand(7, 3)
        assert torch.allclose(load_onnx_part(tmp_path, "head")(rois), head(rois), atol=1e-6)
    with pytest.raises(DataError, match="no ONNX part 'tail'"):
        load_onnx_part(tmp_path, "tail")
    part_path(path, "head").unlink()
    with pytest.raises(DataError, match="model.head.onnx: not found"):
        load_onnx_part(tmp_path, "head")
