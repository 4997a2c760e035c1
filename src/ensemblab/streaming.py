"""Streaming, resumable prediction over a folder of files.

:func:`stream_predict` reads the inputs lazily through a torch ``DataLoader`` (one file read and
decoded per item, in loader workers when the thread budget allows), hands each item to the
project's function that predicts it and writes its outputs, and forgets it: memory stays flat
in the number of inputs. With ``resume`` an item whose final output file exists is skipped;
outputs are written atomically (:mod:`ensemblab.io`), so an existing file is a complete one.
Progress goes through :class:`ensemblab.progress.Progress`.

A ``predict`` that writes one file for all items (a CSV, a JSON list) streams the same way
through :class:`Parts`: each item's result goes to its own small part file in a hidden folder
beside the final file as soon as the item is done, the part's existence marks the item done
for ``resume``, and at the end the parts are read back one at a time, in input order, into the
final file (written atomically), and the folder is removed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ensemblab.errors import DataError, EnsemblabError
from ensemblab.io import _to_builtin, atomic_write_text
from ensemblab.progress import Progress

DEFAULT_WORKERS = 2
"""Loader workers asked for; :func:`ensemblab.threads.loader_workers` caps them."""


def input_files(path: str | Path, exts: Sequence[str]) -> list[Path]:
    """The files ``predict --input`` names: the file itself, or a folder's files with a
    suffix in ``exts``, sorted.

    Raises:
        DataError: the input does not exist or holds no such file.
    """
    src = Path(path)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise DataError(src, "input not found")
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in exts)
    if not files:
        raise DataError(src, f"no images to predict (looked for {', '.join(exts)})")
    return files


class _Failure:
    """A user-fixable error raised in a loader worker, carried back to be raised again (an
    :class:`~ensemblab.errors.EnsemblabError` with its own arguments does not survive the
    worker's re-raise)."""

    def __init__(self, path: Path, exc: EnsemblabError):
        self.path = path
        self.problem = exc.problem if isinstance(exc, DataError) else str(exc)
        self.is_data = isinstance(exc, DataError)

    def raise_(self) -> None:
        if self.is_data:
            raise DataError(self.path, self.problem)
        raise EnsemblabError(self.problem)


class FileDataset:
    """A map-style dataset of ``(path, read(path))``, one file read per item.

    Args:
        files: the input files.
        read: path -> decoded item (a module-level function, so loader workers can pickle it).
    """

    def __init__(self, files: Sequence[Path], read: Callable[[Path], Any]):
        self.files, self.read = list(files), read

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Path, Any]:
        path = self.files[index]
        try:
            return path, self.read(path)
        except EnsemblabError as exc:
            return path, _Failure(path, exc)


def _single(batch: list[tuple[Path, Any]]) -> tuple[Path, Any]:
    return batch[0]


def stream_predict(files: Sequence[Path], read: Callable[[Path], Any],
                   output_of: Callable[[Path], Path],
                   predict_write: Callable[[Path, Any], None], resume: bool = False,
                   workers: int = DEFAULT_WORKERS, noun: str = "images", every: float = 30.0,
                   echo: Callable[[str], None] | None = None) -> list[Path]:
    """Predict every file, one at a time, writing each one's outputs as soon as it is done.

    Args:
        files: the inputs (:func:`input_files`).
        read: path -> decoded item, run in the loader (a worker process or this one).
        output_of: path -> the item's final output file, the one written last: with
            ``resume`` its existence means the item is done.
        predict_write: ``(path, item)`` -> predicts the item and writes its outputs atomically,
            the final output file last.
        resume: skip the items whose final output file exists.
        workers: loader workers asked for (capped by :func:`ensemblab.threads.loader_workers`:
            none with one thread).
        noun: what the items are, in the progress lines.
        every: seconds between two progress lines (one more at the end).
        echo: where progress lines go (printed by default).

    Returns:
        The final output file of every input, skipped ones included.
    """
    import torch.utils.data

    from ensemblab.threads import loader_workers

    say = echo or (lambda line: print(line, flush=True))
    todo = [f for f in files if not (resume and output_of(f).is_file())]
    if resume:
        say(f"resume: {len(files) - len(todo)} of {len(files)} {noun} already predicted, "
            "skipped")
    progress = Progress(len(files), done=len(files) - len(todo), noun=noun, every=every,
                        echo=say)
    n_workers = loader_workers(workers) if len(todo) > 1 else 0
    loader = torch.utils.data.DataLoader(
        FileDataset(todo, read), batch_size=1, shuffle=False, num_workers=n_workers,
        collate_fn=_single, prefetch_factor=2 if n_workers else None)
    for path, item in loader:
        if isinstance(item, _Failure):
            item.raise_()
        predict_write(path, item)
        progress.step()
    progress.close()
    return [output_of(f) for f in files]


class Parts:
    """Per-item results of a predict that writes one file for all items, kept on disk.

    The parts live in ``.<final name>.parts/`` beside the final file, one JSON file per item
    key (``<key>.json``), each written atomically: an existing part is a complete one.

    Args:
        final: the file the parts are merged into.
    """

    def __init__(self, final: str | Path):
        self.final = Path(final)
        self.dir = self.final.parent / f".{self.final.name}.parts"

    def path(self, key: str) -> Path:
        """The part file of item ``key``: its existence marks the item done."""
        return self.dir / f"{key}.json"

    def write(self, key: str, result: Any) -> None:
        """Store item ``key``'s JSON-serialisable result (numpy values converted)."""
        atomic_write_text(self.path(key), json.dumps(result, default=_to_builtin))

    def read(self, key: str) -> Any:
        """Item ``key``'s result.

        Raises:
            EnsemblabError: its part is missing.
        """
        path = self.path(key)
        if not path.is_file():
            raise EnsemblabError(f"{path}: the result of {key!r} is missing from {self.dir}")
        return json.loads(path.read_text())

    def results(self, keys: Iterable[str]) -> Iterator[Any]:
        """The results of ``keys``, in their order, read one at a time."""
        for key in keys:
            yield self.read(key)

    def remove(self) -> None:
        """Remove the parts folder (after the final file is written)."""
        shutil.rmtree(self.dir, ignore_errors=True)
