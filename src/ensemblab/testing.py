"""Helpers for tests: locating the real data samples and skipping cleanly without them."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path | None:
    """``$ENSEMBLAB_DATA`` when set and present, else None."""
    root = os.environ.get("ENSEMBLAB_DATA")
    if root and Path(root).is_dir():
        return Path(root)
    return None


def real_data(rel: str) -> Path:
    """Path of a real-data sample under ``$ENSEMBLAB_DATA``, or skip the calling test.

    Args:
        rel: path relative to the data root, e.g. ``"cells/usiigaci"``.
    """
    import pytest

    root = data_root()
    if root is None:
        pytest.skip("ENSEMBLAB_DATA is not set (real-data samples absent)")
    path = root / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


# ----------------------------------------------------------------- fuzzing the file readers
# Values of the wrong type that :func:`json_mutations` puts where a reader expects another.
WRONG_VALUES = (None, True, 0, -1, 2.5, "", "x", "1.5", [], [0], ["x"], {}, {"x": 1})


def corruptions(data: bytes):
    """Hypothesis strategy: ``data`` cut at a random byte, or with one to three bytes flipped.

    Half the flips land in the first 256 bytes, where the headers of binary formats live.
    """
    from hypothesis import strategies as st

    n = len(data)
    if n == 0:
        return st.just(data)
    cut = st.integers(0, n - 1).map(lambda k: data[:k])
    position = st.one_of(st.integers(0, min(n, 256) - 1), st.integers(0, n - 1))
    flips = st.lists(st.tuples(position, st.integers(1, 255)), min_size=1, max_size=3)

    def flip(changes: list[tuple[int, int]]) -> bytes:
        out = bytearray(data)
        for i, mask in changes:
            out[i] ^= mask
        return bytes(out)

    return st.one_of(cut, flips.map(flip))


def _json_paths(node, prefix: tuple = ()):
    """Every (key or index) path below ``node``, parents before children."""
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, value in items:
        yield (*prefix, key)
        yield from _json_paths(value, (*prefix, key))


def json_mutations(doc):
    """Hypothesis strategy: a deep copy of a JSON/YAML-like ``doc`` with one entry deleted or
    replaced by a value of another type (see :data:`WRONG_VALUES`), or the whole document
    replaced by one.

    Every field is equally likely: a field is drawn first (list indices folded, so
    ``images[*].id`` is one field), then one of its occurrences.
    """
    import copy

    from hypothesis import strategies as st

    fields: dict[tuple, list[tuple]] = {(): [()]}
    for path in _json_paths(doc):
        fields.setdefault(tuple("*" if isinstance(k, int) else k for k in path), []).append(path)
    groups = [fields[k] for k in sorted(fields, key=repr)]

    def mutate(args: tuple[tuple, bool, object]):
        path, delete, value = args
        if not path:
            return copy.deepcopy(value)
        out = copy.deepcopy(doc)
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        if delete:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(value)
        return out

    paths = st.sampled_from(groups).flatmap(st.sampled_from)
    return st.tuples(paths, st.booleans(), st.sampled_from(WRONG_VALUES)).map(mutate)


def read_or_one_line_error(read, *names: str | Path):
    """Call ``read()``; return its result, or None when it raised an
    :class:`~ensemblab.errors.EnsemblabError` whose message is one line naming one of
    ``names`` (a file or folder). Any other exception propagates, failing the calling test.
    """
    from ensemblab.errors import EnsemblabError

    try:
        return read()
    except EnsemblabError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        assert any(str(n) in message for n in names), (
            f"{message!r} names none of {[str(n) for n in names]}")
        return None


def write_weights_run(run: str | Path, cfg: dict, state_dict: dict, project: str, kind: str,
                      prefix: str = "") -> Path:
    """A run folder as ``train`` lays it out, holding the given weights instead of trained ones.

    Writes ``RUN/config.yaml``, ``RUN/checkpoints/best.ckpt`` (Lightning's
    ``{"state_dict": ...}``, each key under ``prefix``, e.g. ``"model."``) and ``RUN/run.json``.

    Returns:
        The run folder.
    """
    import torch

    from ensemblab.config import save_config
    from ensemblab.run_record import write_run_record

    run = Path(run)
    save_config(cfg, run)
    (run / "checkpoints").mkdir(exist_ok=True)
    torch.save({"state_dict": {f"{prefix}{k}": v for k, v in state_dict.items()}},
               run / "checkpoints" / "best.ckpt")
    write_run_record(run, project, kind)
    return run


def assert_flat_peak_memory(predict, warm: Path, few: Path, many: Path, out: Path,
                            slack: float = 1.1) -> None:
    """``predict(input folder, output folder)`` on ``many`` images peaks within ``slack`` times
    its peak on ``few`` (resident set of this process, :mod:`ensemblab.memory`).

    A first call on ``warm`` fills the allocator's pools and the lazy imports; the outputs go
    to ``out/warm``, ``out/out_few`` and ``out/out_many``.
    """
    from ensemblab.memory import peak_rss_bytes, reset_peak

    def peak_mb(images: Path, dest: Path) -> float:
        reset_peak()
        predict(images, dest)
        return peak_rss_bytes() / 2**20

    peak_mb(warm, out / "warm")
    peak_few, peak_many = peak_mb(few, out / "out_few"), peak_mb(many, out / "out_many")
    n_few = sum(1 for _ in few.iterdir())
    n_many = sum(1 for _ in many.iterdir())
    print(f"peak resident memory: {n_few} images {peak_few:.1f} MB, "
          f"{n_many} images {peak_many:.1f} MB")
    assert peak_many <= slack * peak_few, (peak_few, peak_many)
