"""Bad input through the CLI: one line naming the problem on stderr, exit status 2."""

import json

import pytest
import yaml

from ensemblab.cli import main


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def _manifest(tmp_path, kind: str, run: str, config: str | None = None):
    member = {"name": "m", "kind": kind, "run": run}
    if config:
        member["config"] = config
    path = tmp_path / "ens.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "setup": "consensus", "members": [member]}))
    return str(path)


def test_unknown_member_kind_in_a_manifest(tmp_path, capsys):
    manifest = _manifest(tmp_path, "detr", "runs/detr", config="cpu_maskrcnn_r18")
    assert main(["sartorius_cells", "ensemble", "--manifest", manifest, "--data",
                 str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "'detr'", "kind")


def test_unknown_member_kind_in_a_config(tmp_path, capsys):
    assert main(["sartorius_cells", "train", "--config", "cpu_maskrcnn_r18", "--data",
                 str(tmp_path), "--out", str(tmp_path / "run"), "model.kind=detr"]) == 2
    _one_line_error(capsys, "unknown member kind 'detr'", "known: maskrcnn")


def test_a_run_of_another_kind_than_the_manifest_says(tmp_path, capsys):
    run = tmp_path / "runs" / "full"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"kind": "upernet_full"}}))
    (run / "train_time.json").write_text(json.dumps({"seconds": 1.0}))
    manifest = _manifest(tmp_path, "upernet_crop", str(run))
    assert main(["sartorius_cells", "ensemble", "--manifest", manifest, "--data",
                 str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, str(run), "is a upernet_full run", "names it upernet_crop")


@pytest.mark.parametrize("argv", [
    ["ensemble", "--manifest", "usiigaci_ensemble"],
    ["train", "--config", "cpu_yolox_nano"],
])
def test_missing_data(tmp_path, capsys, argv):
    assert main(["sartorius_cells", *argv, "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "needs --data DIR")


def test_unfinished_member_without_a_config(tmp_path, capsys):
    manifest = _manifest(tmp_path, "yolox", str(tmp_path / "runs" / "yolox"))
    assert main(["sartorius_cells", "ensemble", "--manifest", manifest, "--data",
                 str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "no finished run", "no config to train it")
