"""Progress lines (rate, time left), the streaming predict loop, and ``predict --resume`` of a
project whose predict writes one file."""

import argparse

import pytest

from ensemblab import threads
from ensemblab.errors import DataError, EnsemblabError
from ensemblab.progress import Progress, format_duration
from ensemblab.project import Project, register_project
from ensemblab.streaming import Parts, input_files, stream_predict


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_line_every_30_s_with_rate_and_time_left_and_one_at_the_end():
    clock, lines = FakeClock(), []
    progress = Progress(2000, done=20, every=30, echo=lines.append, clock=clock)
    for _ in range(100):  # 100 images in 32 s, one every 0.32 s
        clock.now += 0.32
        progress.step()
    assert lines == ["predicted 114/2000 images, 3.1 img/s, ETA 10 min"]
    clock.now += 60
    progress.step()
    assert lines[-1].startswith("predicted 121/2000 images, 1.1 img/s, ETA 29 min")
    progress.close()
    assert lines[-1] == "predicted 121/2000 images, 1.1 img/s, took 2 min"
    assert [format_duration(s) for s in (4.2, 600, 9000)] == ["4 s", "10 min", "2.5 h"]


def _files(tmp_path, n):
    for i in range(n):
        (tmp_path / f"{i}.txt").write_text(str(i))
    return input_files(tmp_path, (".txt",))


def _read(path):
    if path.read_text() == "bad":
        raise DataError(path, "corrupt")
    return int(path.read_text())


def test_stream_skips_finished_items_and_reads_in_a_worker(tmp_path, monkeypatch):
    files = _files(tmp_path, 5)
    out = tmp_path / "out"
    out.mkdir()
    (out / "1.out").write_text("1")
    (out / "3.out").write_text("3")
    seen, lines = [], []

    def predict_write(path, item):
        seen.append(item)
        (out / f"{path.stem}.out").write_text(str(item))

    monkeypatch.setattr(threads, "loader_workers", lambda configured: 1)
    written = stream_predict(files, _read, lambda p: out / f"{p.stem}.out", predict_write,
                             resume=True, echo=lines.append)
    assert seen == [0, 2, 4] and written == [out / f"{i}.out" for i in range(5)]
    assert lines[0] == "resume: 2 of 5 images already predicted, skipped"
    assert lines[-1].startswith("predicted 5/5 images, ")
    (tmp_path / "2.txt").write_text("bad")  # a reader's error keeps its file name
    with pytest.raises(DataError, match=r"2\.txt: corrupt"):
        stream_predict(files, _read, lambda p: out / f"{p.stem}.out", predict_write,
                       echo=lines.append)


def test_parts_stream_one_file_per_item_and_read_back_in_order(tmp_path):
    import numpy as np

    final = tmp_path / "out" / "predictions.csv"
    parts = Parts(final)
    assert parts.dir == tmp_path / "out" / ".predictions.csv.parts"
    parts.write("b", [["b", np.float32(0.5)]])
    parts.write("a", [])
    assert parts.path("b").is_file() and not final.exists()
    assert list(parts.results(["b", "a"])) == [[["b", 0.5]], []]
    with pytest.raises(EnsemblabError, match="the result of 'c' is missing"):
        list(parts.results(["a", "c"]))
    parts.remove()
    assert list((tmp_path / "out").iterdir()) == []


def test_input_files_errors(tmp_path):
    with pytest.raises(DataError, match="input not found"):
        input_files(tmp_path / "nope", (".png",))
    with pytest.raises(DataError, match="no images to predict"):
        input_files(tmp_path, (".png",))


class OneFile(Project):
    name = "one_file"

    def predict(self, run, input, out, device):
        return out


def test_resume_is_accepted_and_said_to_do_nothing_where_predict_writes_one_file(capsys):
    parser = argparse.ArgumentParser()
    register_project(parser.add_subparsers(dest="command"), OneFile())
    args = parser.parse_args(["one_file", "predict", "--run", "r", "--input", "i", "--out", "o",
                              "--resume"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "--resume: one_file predict writes one file for all items; predicting every item",
        "-> o"]
