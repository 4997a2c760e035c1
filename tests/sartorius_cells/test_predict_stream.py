"""``sartorius_cells predict`` and ``submit`` stream a folder one image at a time: each image's
rows go to a part file as it finishes, a killed run resumes without redoing finished images
and ends with the file an uninterrupted run writes, and memory stays flat in the number of
images (hand-built, untrained Mask R-CNN runs that detect plenty on noise)."""

import numpy as np
import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.data.images import write_png
from ensemblab.ensemble.manifest import Manifest, Member, save_manifest
from ensemblab.projects.sartorius_cells import MEMBER, PROJECT
from ensemblab.projects.sartorius_cells.commands import predict, resolve_config
from ensemblab.projects.sartorius_cells.members.maskrcnn import LoadedMaskRCNN, model_from_config
from ensemblab.streaming import Parts
from ensemblab.testing import assert_flat_peak_memory, write_weights_run

TINY = ["model.classes=[shsy5y, astro, cort]", "model.image_size=64",
        "model.rpn_pre_nms_top_n_test=100", "model.rpn_post_nms_top_n_test=50",
        "model.box_detections_per_img=20", "model.box_score_thresh=0.0",
        "postprocess.score_thresh=0.0", "postprocess.min_area=0"]
# The memory test's member: one detection per image on 32-px inputs, ~25 ms an image.
SMALLEST = [*TINY, "model.image_size=32", "model.rpn_pre_nms_top_n_test=5",
            "model.rpn_post_nms_top_n_test=1", "model.box_detections_per_img=1"]


def _run(path, overrides):
    cfg = load_config(resolve_config("cpu_maskrcnn_r18"), overrides)
    torch.manual_seed(0)
    state = model_from_config(cfg["model"], pretrained=False).state_dict()
    return write_weights_run(path, cfg, state, PROJECT, MEMBER, prefix="model.")


@pytest.fixture(scope="module")
def member_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("sartorius_stream") / "maskrcnn", TINY)


def _images(folder, n, size=(48, 64), seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_png(folder / f"img_{i:04d}.png", rng.integers(60, 200, size, np.uint8))
    return folder


def _predict(run, images, out, *extra):
    return main([PROJECT, "predict", "--run", str(run), "--input", str(images), "--out",
                 str(out), "--device", "cpu", *extra])


def _submit(source, images, out, *extra):
    return main([PROJECT, "submit", *source, "--input", str(images), "--out", str(out),
                 "--device", "cpu", *extra])


def _dies_on_the_fourth(monkeypatch, calls):
    """Every image's network pass is counted; the 4th one stops the process."""
    original = LoadedMaskRCNN.raw

    def raw(self, image):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the process is stopped while the 4th image runs
        return original(self, image)

    monkeypatch.setattr(LoadedMaskRCNN, "raw", raw)
    return original


def _kill_then_resume(monkeypatch, final, run_it):
    """``run_it(*extra)`` killed at the 4th of 6 images, then run with ``--resume``: only
    images 4 to 6 are predicted again, and the first three parts, seen right before the merge
    removes the folder, are the killed run's (same modification times)."""
    calls = []
    original = _dies_on_the_fourth(monkeypatch, calls)
    with pytest.raises(KeyboardInterrupt):
        run_it()
    parts = Parts(final)
    done = sorted(p.name for p in parts.dir.glob("*.json"))
    assert done == ["img_0000.json", "img_0001.json", "img_0002.json"]
    assert not final.exists()
    first = {name: (parts.dir / name).stat().st_mtime_ns for name in done}

    seen = {}
    remove = Parts.remove

    def remove_noting_mtimes(self):
        seen.update({p.name: p.stat().st_mtime_ns for p in self.dir.glob("*.json")})
        remove(self)

    calls.clear()
    monkeypatch.setattr(LoadedMaskRCNN, "raw",
                        lambda self, image: (calls.append(1), original(self, image))[1])
    monkeypatch.setattr(Parts, "remove", remove_noting_mtimes)
    assert run_it("--resume") == 0
    assert len(calls) == 3  # only images 4 to 6 predicted again
    assert {name: seen[name] for name in done} == first
    assert len(seen) == 6 and not parts.dir.exists()


@pytest.mark.parametrize("fmt, name", [
    ("kaggle", "predictions.csv"),
    pytest.param("coco", "coco_instances_results.json", marks=pytest.mark.slow)])  # same parts
def test_a_killed_predict_resumes_and_writes_the_file_of_an_uninterrupted_run(
        member_run, tmp_path, monkeypatch, capsys, fmt, name):
    images = _images(tmp_path / "in", 6)
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert _predict(member_run, images, whole, "--format", fmt) == 0
    capsys.readouterr()
    _kill_then_resume(monkeypatch, out / name,
                      lambda *extra: _predict(member_run, images, out, "--format", fmt, *extra))
    printed = capsys.readouterr().out
    assert "resume: 3 of 6 images already predicted, skipped" in printed
    assert "predicted 6/6 images, " in printed and " img/s, took " in printed
    assert (out / name).read_bytes() == (whole / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in whole.iterdir())
    if fmt == "kaggle":  # the overlays of the first 4 images, the first 3 from the killed run
        for k in range(4):
            overlay = f"overlays/img_{k:04d}.png"
            assert (out / overlay).read_bytes() == (whole / overlay).read_bytes()


def test_a_killed_submit_resumes_and_writes_the_file_of_an_uninterrupted_run(
        member_run, tmp_path, monkeypatch, capsys):
    images = _images(tmp_path / "in", 6)
    source = ["--run", str(member_run)]
    assert _submit(source, images, tmp_path / "whole.csv") == 0
    out = tmp_path / "sub" / "submission.csv"
    _kill_then_resume(monkeypatch, out, lambda *extra: _submit(source, images, out, *extra))
    printed = capsys.readouterr().out
    assert "resume: 3 of 6 images already predicted, skipped" in printed
    assert "(validated)" in printed
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ["submission.csv"]


def test_a_killed_ensemble_submit_resumes_and_writes_the_file_of_an_uninterrupted_run(
        member_run, tmp_path, monkeypatch, capsys):
    images = _images(tmp_path / "in", 6)
    manifest = save_manifest(Manifest("one", "nms", [Member("maskrcnn", "maskrcnn",
                                                            str(member_run))]),
                             tmp_path / "manifest.yaml")
    source = ["--manifest", str(manifest)]
    assert _submit(source, images, tmp_path / "whole.csv") == 0
    out = tmp_path / "sub" / "submission.csv"
    _kill_then_resume(monkeypatch, out, lambda *extra: _submit(source, images, out, *extra))
    printed = capsys.readouterr().out
    assert "resume: 3 of 6 images already predicted, skipped" in printed
    assert "(validated, set-up nms)" in printed
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_progress_lines_give_the_rate_and_the_time_left(member_run, tmp_path, monkeypatch,
                                                        capsys):
    import ensemblab.streaming as streaming

    progress = streaming.Progress
    monkeypatch.setattr(streaming, "Progress",
                        lambda *args, **kw: progress(*args, **{**kw, "every": 0.0}))
    assert _predict(member_run, _images(tmp_path / "in", 3), tmp_path / "out") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines if line.startswith("predicted")] == [
        "predicted 1/3 images", "predicted 2/3 images", "predicted 3/3 images",
        "predicted 3/3 images"]
    assert all(" img/s, ETA " in line for line in lines[:3])
    assert " img/s, took " in lines[3]


def _flat_memory(tmp_path, small, large):
    run = _run(tmp_path / "smallest", SMALLEST)
    few = _images(tmp_path / "few", small, size=(16, 16))
    many = _images(tmp_path / "many", large, size=(16, 16), seed=1)
    def predict_into(images, out):
        predict(str(run), str(images), str(out), device="cpu")

    warm = _images(tmp_path / "warm_in", 2, size=(16, 16))
    assert_flat_peak_memory(predict_into, warm, few, many, tmp_path)
    rows = (tmp_path / "out_many" / "predictions.csv").read_text().splitlines()
    assert len({row.split(",")[0] for row in rows[1:]}) == large


def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    _flat_memory(tmp_path, 20, 100)


@pytest.mark.slow
def test_peak_memory_of_2000_images_is_that_of_20(tmp_path):
    _flat_memory(tmp_path, 20, 2000)
