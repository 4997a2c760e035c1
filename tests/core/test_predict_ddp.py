"""The sharding of ``predict --devices N`` (:mod:`ensemblab.engine.predict_ddp`): every item on
exactly one rank, shards merged in item order, and the CLI flags of every project's predict."""

import json

import pytest

from ensemblab.cli import main
from ensemblab.engine.predict_ddp import ShardSampler, merge_shards, predict_items, shard_path
from ensemblab.errors import ConfigError, EnsemblabError


@pytest.mark.parametrize("n, world", [(7, 2), (1, 2), (5, 3), (4, 4)])
def test_shards_hold_every_item_once(n, world):
    shards = [list(ShardSampler(n, rank, world)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    sizes = [len(ShardSampler(n, rank, world)) for rank in range(world)]
    assert sizes == [len(shard) for shard in shards] and max(sizes) - min(sizes) <= 1


def _write(shard_dir, rank, pairs):
    shard_dir.mkdir(exist_ok=True)
    shard_path(shard_dir, rank).write_text("".join(json.dumps(p) + "\n" for p in pairs))


def test_merge_orders_by_item_and_counts_a_repeat_once(tmp_path):
    _write(tmp_path, 0, [[0, "a"], [2, ["c", 1]], [4, {"e": 1.5}]])
    _write(tmp_path, 1, [[1, "b"], [3, None], [0, "a"]])  # item 0 again, as padding would
    _write(tmp_path, 2, [[9, "stale, of a run on more ranks"]])
    assert merge_shards(tmp_path, 2, 5) == ["a", "b", ["c", 1], None, {"e": 1.5}]


def test_merge_names_a_missing_shard_or_item(tmp_path):
    _write(tmp_path, 0, [[0, "a"], [2, "c"]])
    with pytest.raises(EnsemblabError, match="rank 1 wrote no shard"):
        merge_shards(tmp_path, 2, 3)
    _write(tmp_path, 1, [])
    with pytest.raises(EnsemblabError, match=r"1 of 3 items missing .*\(first: item 1\)"):
        merge_shards(tmp_path, 2, 3)


def test_several_devices_are_refused_inside_pytest(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ConfigError, match="python -m ensemblab.cli"):
        predict_items([tmp_path / "a.png"], str, lambda *a: None, tmp_path, "cpu", 2)
    with pytest.raises(ConfigError, match="--strategy 'ddp_spawn'"):
        predict_items([tmp_path / "a.png"], str, lambda *a: None, tmp_path, "cpu",
                      strategy="ddp_spawn")


def test_a_project_without_device_support_refuses_several_devices(tmp_path, capsys):
    assert main(["battery_crystal", "predict", "--run", str(tmp_path), "--input",
                 str(tmp_path), "--out", str(tmp_path / "out"), "--num-nodes", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "battery_crystal predict runs in one process" in err
    assert "(projects that predict on several devices: mineral_ruel, sartorius_cells)" in err
