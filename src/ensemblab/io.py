"""Atomic writers: every output goes to a temporary name and is renamed into place."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary name keeps the target's suffix so writers that infer the format from the
    suffix (PIL, matplotlib, tifffile) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (numpy scalars converted)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_to_builtin) + "\n")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV with a header row atomically (``rows`` may be a generator: written as they
    come)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _indented(text: str) -> str:
    """``text`` one level (two spaces) deeper, as :func:`json.dumps` nests it in a container
    (a JSON string holds no raw newline, so every newline starts a line of the document)."""
    return text.replace("\n", "\n  ")


def write_json_list(path: str | Path, items: Iterable[Any]) -> None:
    """:func:`write_json` of ``list(items)``, byte for byte, without holding the list: each
    item is rendered and written as it comes (``items`` may be a generator)."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        first = True
        for item in items:
            fh.write(("[\n  " if first else ",\n  ")
                     + _indented(json.dumps(item, indent=2, default=_to_builtin)))
            first = False
        fh.write("[]\n" if first else "\n]\n")


def write_json_object(path: str | Path, pairs: Iterable[tuple[str, Any]]) -> None:
    """:func:`write_json` of ``dict(pairs)`` (string keys, each once), byte for byte, without
    holding the dict: each pair is rendered and written as it comes."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        first = True
        for key, value in pairs:
            fh.write(("{\n  " if first else ",\n  ") + json.dumps(str(key)) + ": "
                     + _indented(json.dumps(value, indent=2, default=_to_builtin)))
            first = False
        fh.write("{}\n" if first else "\n}\n")


def save_figure(fig, path: str | Path, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def _to_builtin(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
