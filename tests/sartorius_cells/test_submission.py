"""Kaggle submission writer and validator (hand-made files)."""

import numpy as np
import pytest

from ensemblab.data.rle import rle_decode
from ensemblab.ensemble.submission import validate_submission, write_submission
from ensemblab.projects.sartorius_cells.postprocess import remove_overlaps
from ensemblab.projects.sartorius_cells.structures import Instances, instances_to_rles

SIZES = {"a": (3, 4), "b": (2, 2)}


def _csv(tmp_path, body):
    path = tmp_path / "sub.csv"
    path.write_text("id,predicted\n" + body)
    return path


def test_valid_file_has_no_violations(tmp_path):
    assert validate_submission(_csv(tmp_path, "a,2 2 8 1\na,5 2\nb,\n"), SIZES) == []


@pytest.mark.parametrize("body, fragment", [
    ("a,2 2 3 1\nb,\n", "overlapping"),        # runs within a row overlap
    ("a,8 1 2 2\nb,\n", "unsorted"),           # runs within a row out of order
    ("a,11 3\nb,\n", "past the image end"),    # 12 pixels: run 11..13 is out of bounds
    ("a,0 2\nb,\n", "1-based"),                # starts are 1-based
    ("a,2 2 8\nb,\n", "odd number"),
    ("a,2 x\nb,\n", "not an integer"),
    ("a,2 2\na,3 2\nb,\n", "overlap at pixel 3"),  # two instances share pixel 3
    ("a,2 2\n", "image b: missing"),
    ("a,2 2\nb,\nc,1 1\n", "unknown image id"),
])
def test_validator_reports_each_violation(tmp_path, body, fragment):
    problems = validate_submission(_csv(tmp_path, body), SIZES)
    assert len(problems) == 1 and fragment in problems[0], problems


def test_validator_bad_header_and_missing_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,annotation\na,1 1\n")
    assert "header" in validate_submission(path, SIZES)[0]
    assert "not found" in validate_submission(tmp_path / "none.csv", SIZES)[0]


def test_writer_empty_images_and_order(tmp_path):
    out = write_submission(tmp_path / "s.csv", {"a": ["2 2", "8 1"], "b": []}, ["b", "a", "c"])
    lines = out.read_text().splitlines()
    assert lines == ["id,predicted", "b,", "a,2 2", "a,8 1", "c,"]
    assert validate_submission(out, {**SIZES, "c": (5, 5)}) == []


def test_submission_rles_are_row_major_and_non_overlapping(tmp_path):
    # One instance: a 2x3 block at rows 1-2, cols 1-3 of a 4x5 image. Row-major 1-based:
    # row 1 starts at pixel 1*5+1+1 = 7, row 2 at 12 -> "7 3 12 3" (column-major would differ).
    crop = np.ones((2, 3), bool)
    other = np.ones((2, 2), bool)  # overlaps the first at (1,3),(2,3): the lower score loses
    inst = Instances(np.array([[1, 1, 4, 3], [3, 1, 5, 3]], np.float32),
                     np.array([0.9, 0.8], np.float32), np.array([1, 1]), [crop, other],
                     np.array([[1, 1, 4, 3], [3, 1, 5, 3]]), 4, 5)
    rles = instances_to_rles(remove_overlaps(inst, drop_frac=0.6))
    assert rles == ["7 3 12 3", "10 1 15 1"]
    expected = np.zeros((4, 5), bool)
    expected[1:3, 1:4] = True
    assert (rle_decode(rles[0], (4, 5)) == expected).all()
    path = write_submission(tmp_path / "s.csv", {"img": rles}, ["img"])
    assert validate_submission(path, {"img": (4, 5)}) == []


def test_submit_takes_input_as_predict_does_and_still_reads_images(capsys):
    from ensemblab.cli import build_parser

    parser = build_parser()
    for flag in ("--input", "--images"):
        args = parser.parse_args(["sartorius_cells", "submit", "--run", "RUN", flag, "test/",
                                  "--out", "sub.csv"])
        assert args.input == "test/"
    with pytest.raises(SystemExit):
        parser.parse_args(["sartorius_cells", "submit", "--run", "RUN", "--input", "a",
                           "--images", "b", "--out", "sub.csv"])
    with pytest.raises(SystemExit):
        parser.parse_args(["sartorius_cells", "submit", "--run", "RUN", "--help"])
    usage = capsys.readouterr().out
    assert "--input INPUT" in usage and "--images" not in usage


def test_a_streamed_submission_is_the_written_one(tmp_path):
    from ensemblab.ensemble.submission import write_submission, write_submission_stream

    rles = {"a": ["1 2", "5 1"], "c": [""]}
    write_submission(tmp_path / "whole.csv", rles, ["a", "b", "c"])
    write_submission_stream(tmp_path / "streamed.csv",
                            ((i, rles.get(i, [])) for i in ["a", "b", "c"]))
    assert (tmp_path / "streamed.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "whole.csv").read_text().splitlines() == [
        "id,predicted", "a,1 2", "a,5 1", "b,", "c,"]
