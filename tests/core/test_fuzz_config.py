"""Property-based tests of the YAML readers: configs (:func:`ensemblab.config.load_config`, with
``_base_`` chains and overrides) and ensemble manifests (:mod:`ensemblab.ensemble.manifest`).

Random valid files round-trip exactly; truncated or byte-flipped files and values of the wrong
type either still load or fail with one :class:`~ensemblab.errors.EnsemblabError` line naming
the file. Derandomized and small.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ensemblab.config import load_config, merge, save_config
from ensemblab.ensemble.manifest import (
    FLIPS,
    SETUPS,
    Manifest,
    Member,
    load_manifest,
    save_manifest,
)
from ensemblab.testing import corruptions, json_mutations, read_or_one_line_error

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WRONG_TYPES = settings(FUZZ, max_examples=100)
ROUND_TRIP = settings(FUZZ, max_examples=25)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_config")


def _fresh(work: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=work))


# --------------------------------------------------------------------------- configs
keys = st.text("abcdefgh_", min_size=1, max_size=6)
words = st.text("abcxyz019 ._-", max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                    st.floats(-1e6, 1e6, allow_nan=False), words)
values = st.one_of(scalars, st.lists(st.integers(0, 9), max_size=3),
                   st.lists(words, min_size=1, max_size=2))
configs = st.dictionaries(keys, st.one_of(values, st.dictionaries(keys, values, max_size=4)),
                          min_size=1, max_size=5)


def _same_kind(draw, declared):
    """A new value the schema accepts in place of ``declared``."""
    if isinstance(declared, dict) and declared:
        sub = draw(st.sampled_from(sorted(declared)))
        return {sub: _same_kind(draw, declared[sub])}
    if isinstance(declared, bool):
        return draw(st.booleans())
    if isinstance(declared, int):
        return draw(st.integers(-50, 50))
    if isinstance(declared, float):
        return draw(st.floats(-1e3, 1e3, allow_nan=False))
    if isinstance(declared, str):
        return draw(words)
    if isinstance(declared, list):
        return draw(st.lists(st.integers(0, 9), max_size=3))
    return draw(scalars)


@st.composite
def config_chains(draw) -> tuple[dict, dict]:
    """A base config and a child overriding some of its keys with values of the same kind."""
    base = draw(configs)
    chosen = draw(st.lists(st.sampled_from(sorted(base)), min_size=1, max_size=3, unique=True))
    return base, {k: _same_kind(draw, base[k]) for k in chosen}


def _write_chain(folder: Path, base: dict, child: dict) -> Path:
    save_config(base, folder)
    path = folder / "child.yaml"
    path.write_text(yaml.safe_dump({"_base_": "config.yaml", **child}, sort_keys=False))
    return path


@ROUND_TRIP
@given(cfg=configs)
def test_config_round_trips(work, cfg):
    folder = _fresh(work)
    assert load_config(save_config(cfg, folder)) == cfg


@ROUND_TRIP
@given(chain=config_chains())
def test_config_chain_merges_the_child_over_its_base(work, chain):
    base, child = chain
    assert load_config(_write_chain(_fresh(work), base, child)) == merge(base, child)


@FUZZ
@given(data=st.data(), chain=config_chains())
@example(data=None, chain=({"a": 1}, {"a": 2}))
def test_corrupt_config_fails_in_one_line(work, data, chain):
    path = _write_chain(_fresh(work), *chain)
    raw = path.read_bytes()
    corrupt = (raw.replace(b"a: 2", b"1: 2") if data is None  # a key YAML reads as a number
               else data.draw(corruptions(raw)))
    path.write_bytes(corrupt)
    read_or_one_line_error(lambda: load_config(path), path)


@WRONG_TYPES
@given(data=st.data(), chain=config_chains())
def test_config_with_wrong_types_fails_in_one_line(work, data, chain):
    base, child = chain
    path = _write_chain(_fresh(work), base, {})
    mutated = data.draw(json_mutations({"_base_": "config.yaml", **child}))
    path.write_text(yaml.safe_dump(mutated, sort_keys=False))
    read_or_one_line_error(lambda: load_config(path), path)


# --------------------------------------------------------------------------- manifests
KINDS = ("yolox", "maskrcnn", "upernet_full", "upernet_crop")  # checked only by name here
names = st.text("abcdefghij0123456789_-", min_size=1, max_size=8)
weights = st.floats(0, 10, allow_nan=False)
params = st.dictionaries(st.sampled_from(["score_thresh", "mask_thresh", "min_area"]),
                         st.one_of(weights, st.integers(0, 64)), max_size=3)


@st.composite
def manifests(draw) -> Manifest:
    members = [Member(name=n, kind=draw(st.sampled_from(KINDS)), run=f"runs/{n}",
                      box_weight=draw(weights), mask_weight=draw(weights),
                      flips=draw(st.lists(st.sampled_from(FLIPS), min_size=1, max_size=3,
                                          unique=True)),
                      config=draw(st.one_of(st.none(), st.just(f"configs/{n}.yaml"))))
               for n in draw(st.lists(names, min_size=1, max_size=4, unique=True))]
    per_type = draw(st.dictionaries(st.sampled_from(["shsy5y", "astro", "cort"]), params,
                                    max_size=2))
    return Manifest(name=draw(names), setup=draw(st.sampled_from(SETUPS)), members=members,
                    fusion=draw(st.dictionaries(st.sampled_from(["iou_thr", "skip_box_thr"]),
                                                weights, max_size=2)),
                    thresholds={"default": draw(params), "per_type": per_type}, kinds=KINDS)


@ROUND_TRIP
@given(manifest=manifests(), suffix=st.sampled_from((".yaml", ".json")))
def test_manifest_round_trips(work, manifest, suffix):
    path = save_manifest(manifest, _fresh(work) / f"ensemble{suffix}")
    assert load_manifest(path, kinds=KINDS) == manifest


@FUZZ
@given(data=st.data(), manifest=manifests(), suffix=st.sampled_from((".yaml", ".json")))
def test_corrupt_manifest_fails_in_one_line(work, data, manifest, suffix):
    path = save_manifest(manifest, _fresh(work) / f"ensemble{suffix}")
    path.write_bytes(data.draw(corruptions(path.read_bytes())))
    read_or_one_line_error(lambda: load_manifest(path, kinds=KINDS), path)


@WRONG_TYPES
@given(data=st.data(), manifest=manifests(), suffix=st.sampled_from((".yaml", ".json")))
@example(data=None, manifest=Manifest("e", "nms", [Member("m", "maskrcnn", "runs/m")],
                                      kinds=KINDS), suffix=".yaml")
def test_manifest_with_wrong_types_fails_in_one_line(work, data, manifest, suffix):
    plain = manifest.to_dict()
    # a list where a mapping belongs: dict() of it raises ValueError, not TypeError
    mutated = {**plain, "fusion": ["abc"]} if data is None else data.draw(json_mutations(plain))
    path = _fresh(work) / f"ensemble{suffix}"
    path.write_text(json.dumps(mutated) if suffix == ".json" else yaml.safe_dump(mutated))
    read_or_one_line_error(lambda: load_manifest(path, kinds=KINDS), path)
