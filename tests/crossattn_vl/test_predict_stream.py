"""``crossattn_vl predict`` on an image folder streams it batch by batch: each batch's captions
go to a part file as it finishes, a killed run resumes without redoing finished batches and
ends with the files an uninterrupted run writes, and memory stays flat in the number of
images (a hand-built run with random weights, which captions each image differently)."""

import pytest
import torch

from ensemblab.cli import main
from ensemblab.config import load_config
from ensemblab.io import write_json
from ensemblab.multimodal.tokenizer import TextTokenizer
from ensemblab.projects.crossattn_vl import MODEL, PROJECT, inference
from ensemblab.projects.crossattn_vl.commands import CHOICES, _module, resolve_config
from ensemblab.projects.crossattn_vl.predict import BATCH, predict
from ensemblab.streaming import Parts
from ensemblab.synthetic.shapes import write_shapes_dataset
from ensemblab.testing import assert_flat_peak_memory, write_weights_run

# 32-px scenes, greedy captions of at most 8 tokens: ~100 images a second on one thread.
SMALL = ["data.image_size=32", "eval.beam=1", "eval.max_length=8"]
CORPUS = ["a red circle left of a blue square", "two green triangles",
          "how many shapes are there?", "one yellow square above a red circle"]


@pytest.fixture(scope="module")
def vl_run(tmp_path_factory):
    """A model run as ``train`` lays it out, its weights drawn from N(0, 1): an untrained
    model's default initialisation gives every image the same caption."""
    run = tmp_path_factory.mktemp("crossattn_stream") / "run"
    cfg = load_config(resolve_config("cpu_quick"), SMALL, choices=CHOICES)
    tok = TextTokenizer.train(CORPUS, cfg["data"]["tokenizer_vocab"], cfg["data"]["max_length"])
    torch.manual_seed(0)
    module = _module(cfg, tok, tok, 2)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 1.0)
    write_weights_run(run, cfg, module.state_dict(), PROJECT, MODEL)
    tok.save(run / "tokenizer.json")
    tok.save(run / "text_tokenizer.json")
    write_json(run / "answers.json", ["yes", "no"])
    write_json(run / "splits.json", {"train": [], "val": [], "test": [], "data_dir": ""})
    return run


def _images(root, n, seed=0):
    return write_shapes_dataset(root, n_images=n, size=32, seed=seed, captions_per_image=1
                                ) / "images"


def _predict(run, images, out, *extra):
    return main([PROJECT, "predict", "--run", str(run), "--input", str(images), "--out",
                 str(out), "--device", "cpu", *extra])


def test_a_killed_predict_resumes_and_writes_the_files_of_an_uninterrupted_run(
        vl_run, tmp_path, monkeypatch, capsys):
    images = _images(tmp_path / "data", 2 * BATCH + 6)  # batches of 32, 32 and 6 images
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert _predict(vl_run, images, whole) == 0
    captions = (whole / "captions.csv").read_text().splitlines()[1:]
    assert len(captions) == 70 and len({c.split(",")[1] for c in captions}) > 5
    capsys.readouterr()

    calls, original = [], inference.generate_captions

    def dies_on_the_third(*args, **kw):
        calls.append(len(args[3]))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process is stopped while the 3rd batch runs
        return original(*args, **kw)

    monkeypatch.setattr(inference, "generate_captions", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        _predict(vl_run, images, out)
    parts = Parts(out / "captions.json")
    done = sorted(p.name for p in parts.dir.glob("*.json"))
    assert done == ["batch_000000.json", "batch_000001.json"]
    assert not (out / "captions.json").exists() and not (out / "captions.csv").exists()
    first = {name: (parts.dir / name).stat().st_mtime_ns for name in done}

    seen, remove = {}, Parts.remove

    def remove_noting_mtimes(self):
        seen.update({p.name: p.stat().st_mtime_ns for p in self.dir.glob("*.json")})
        remove(self)

    calls.clear()
    monkeypatch.setattr(inference, "generate_captions",
                        lambda *args, **kw: (calls.append(len(args[3])), original(*args, **kw))[1])
    monkeypatch.setattr(Parts, "remove", remove_noting_mtimes)
    assert _predict(vl_run, images, out, "--resume") == 0
    assert calls == [6]  # only the last batch captioned again
    assert {name: seen[name] for name in done} == first and len(seen) == 3
    printed = capsys.readouterr().out
    assert "resume: 64 of 70 images already predicted, skipped" in printed
    assert "predicted 70/70 images, " in printed and " img/s, took " in printed
    for name in ("captions.json", "captions.csv"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    assert sorted(p.name for p in out.iterdir()) == ["captions.csv", "captions.json",
                                                      "overlays"]
    assert len(list((out / "overlays").glob("*.png"))) == 8


def test_a_changed_folder_does_not_reuse_a_part_of_other_images(vl_run, tmp_path, capsys):
    images = _images(tmp_path / "data", BATCH + 2)
    out = tmp_path / "out"
    parts = Parts(out / "captions.json")
    parts.write("batch_000000", [["another.png", "a caption"]])  # a part of another folder
    assert _predict(vl_run, images, out, "--resume") == 0
    assert "resume: 0 of 34 images already predicted, skipped" in capsys.readouterr().out
    assert "another.png" not in (out / "captions.csv").read_text()


def test_progress_lines_give_the_rate_and_the_time_left(vl_run, tmp_path, monkeypatch,
                                                        capsys):
    import ensemblab.projects.crossattn_vl.predict as predict_module

    progress = predict_module.Progress
    monkeypatch.setattr(predict_module, "Progress",
                        lambda *args, **kw: progress(*args, **{**kw, "every": 0.0}))
    assert _predict(vl_run, _images(tmp_path / "data", BATCH + 3), tmp_path / "out") == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("predicted")]
    assert [line.split(",")[0] for line in lines] == [
        "predicted 32/35 images", "predicted 35/35 images", "predicted 35/35 images"]
    assert " img/s, ETA " in lines[0] and " img/s, took " in lines[2]


def _flat_memory(run, tmp_path, small, large):
    few, many = _images(tmp_path / "few", small), _images(tmp_path / "many", large, seed=1)
    def predict_into(images, out):
        predict(str(run), str(images), str(out), device="cpu")

    assert_flat_peak_memory(predict_into, _images(tmp_path / "warm_in", 2), few, many, tmp_path)
    assert len((tmp_path / "out_many" / "captions.csv").read_text().splitlines()) == large + 1


def test_peak_memory_does_not_grow_with_the_number_of_images(vl_run, tmp_path):
    _flat_memory(vl_run, tmp_path, 20, 100)


@pytest.mark.slow
def test_peak_memory_of_2000_images_is_that_of_20(vl_run, tmp_path):
    _flat_memory(vl_run, tmp_path, 20, 2000)
