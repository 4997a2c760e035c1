"""``fre_unet predict`` streams a folder one image at a time and resumes where it stopped (a
hand-built, untrained run)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ensemblab.cli import main
from ensemblab.config import load_config, save_config
from ensemblab.data.images import read_label_png, write_png
from ensemblab.projects.fre_unet import MODEL, PROJECT
from ensemblab.projects.fre_unet.commands import (
    CHOICES,
    build_module,
    load_trained,
    resolve_config,
)
from ensemblab.run_record import write_run_record

CLASSES = ["membrane", "cell"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder with random weights, as ``train`` lays it out."""
    run = tmp_path_factory.mktemp("fre_predict") / "run"
    cfg = load_config(resolve_config("cpu_quick"), ["model.width=0.125", "data.scale=1.0"],
                      choices=CHOICES)
    torch.manual_seed(0)
    module = build_module(cfg, CLASSES)
    save_config(cfg, run)
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": module.state_dict(),
                "hyper_parameters": {"class_names": CLASSES}}, run / "checkpoints" / "best.ckpt")
    write_run_record(run, PROJECT, MODEL)
    return run


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):  # sizes that are no multiple of the network's stride
        write_png(tmp_path / "in" / f"{i}.png", rng.integers(0, 256, (30 + i, 32), np.uint8))
    return tmp_path / "in"


def _predict(run, images, out, *extra):
    return main(["fre_unet", "predict", "--run", str(run), "--input", str(images),
                 "--out", str(out), "--device", "cpu", *extra])


def test_predict_writes_the_networks_maps(run, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert _predict(run, images, out) == 0
    model, _, _ = load_trained(run, "cpu")
    step = 2**model.depth
    for path in sorted(images.iterdir()):
        image = read_label_png(path)
        h, w = image.shape
        x = torch.from_numpy(image.astype(np.float32) / 255.0)[None, None]
        x = F.pad(x, (0, (-w) % step, 0, (-h) % step), mode="reflect")
        with torch.no_grad():
            expected = model(x).argmax(1)[0, :h, :w].numpy()
        assert np.array_equal(read_label_png(out / path.name), expected), path.name
    printed = capsys.readouterr().out
    assert "predicted 6/6 images, " in printed and "wrote 6 class-index PNGs" in printed


def test_a_killed_predict_resumes_without_redoing_finished_images(run, images, tmp_path,
                                                                   monkeypatch, capsys):
    out = tmp_path / "out"
    network = type(load_trained(run, "cpu")[0])
    forward = network.forward
    calls = []

    def stops_on_the_fourth(self, x):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return forward(self, x)

    monkeypatch.setattr(network, "forward", stops_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        _predict(run, images, out)
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    calls.clear()
    assert _predict(run, images, out, "--resume") == 0
    assert len(calls) == 3  # the interrupted 4th image, the 5th and the 6th
    assert {n: (out / n).stat().st_mtime_ns for n in mtimes} == mtimes
    assert len(list(out.glob("*.png"))) == 6
    assert "resume: 3 of 6 images already predicted, skipped" in capsys.readouterr().out
