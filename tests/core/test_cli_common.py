"""The shared ``--split`` of ``evaluate``: one default, resolved from the data given."""

import argparse

import pytest

from ensemblab.cli_common import add_split_arg, resolve_split, scored_items_line


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "train_data").mkdir()
    (tmp_path / "new_data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "train_data")
    return tmp_path


def test_auto_is_the_held_out_split_on_the_runs_own_data(folders, monkeypatch):
    run_data = folders / "train_data"
    assert resolve_split("auto", None, run_data) == "val"
    assert resolve_split("auto", run_data, run_data) == "val"
    assert resolve_split("auto", folders / "link", run_data) == "val"  # same folder, other path
    monkeypatch.chdir(folders)
    assert resolve_split("auto", "train_data/", run_data) == "val"


def test_auto_is_every_labelled_item_on_another_folder(folders):
    assert resolve_split("auto", folders / "new_data", folders / "train_data") == "all"
    # a run that did not record its data cannot claim a folder as its own
    assert resolve_split("auto", folders / "train_data", None) == "all"


def test_a_named_split_is_kept(folders):
    assert resolve_split("all", None, folders / "train_data") == "all"
    assert resolve_split("val", folders / "new_data", folders / "train_data") == "val"


def test_split_flag_defaults_to_auto_and_rejects_unknown_splits(capsys):
    parser = argparse.ArgumentParser(prog="evaluate")
    add_split_arg(parser)
    assert parser.parse_args([]).split == "auto"
    assert parser.parse_args(["--split", "all"]).split == "all"
    with pytest.raises(SystemExit):
        parser.parse_args(["--split", "test"])
    assert "invalid choice: 'test'" in capsys.readouterr().err
    parser = argparse.ArgumentParser(prog="evaluate")
    add_split_arg(parser, splits=("train", "val", "test", "all"))
    assert parser.parse_args(["--split", "test"]).split == "test"


def test_auto_is_the_projects_own_held_out_split(folders):
    run_data = folders / "train_data"
    assert resolve_split("auto", None, run_data, held_out="test") == "test"
    assert resolve_split("auto", run_data, run_data, held_out="test") == "test"
    assert resolve_split("auto", folders / "new_data", run_data, held_out="test") == "all"
    assert resolve_split("val", None, run_data, held_out="test") == "val"
    # a run without a recorded data folder: its own data only when no --data is given
    assert resolve_split("auto", None, None, held_out="test") == "test"


def test_split_flag_names_the_held_out_split_and_may_accept_any_name(capsys):
    parser = argparse.ArgumentParser(prog="evaluate")
    add_split_arg(parser, splits=("train", "val", "test", "all"), held_out="test")
    parser.print_help()
    assert "held-out 'test' split" in " ".join(capsys.readouterr().out.split())
    assert parser.parse_args([]).split == "auto"
    parser = argparse.ArgumentParser(prog="evaluate")
    add_split_arg(parser, splits=None)
    assert parser.parse_args([]).split == "auto"
    assert parser.parse_args(["--split", "my_folder"]).split == "my_folder"


def test_scored_items_line_says_how_many():
    line = scored_items_line(15, "data/new", "all")
    assert line == "scoring 15 labelled items of data/new (split all)"
    assert scored_items_line(1, "d", "val") == "scoring 1 labelled item of d (split val)"
