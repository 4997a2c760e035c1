"""Kaggle Sartorius submission files: write them and check them.

Format (competition rules): a CSV with header ``id,predicted`` and one row per predicted
instance; ``predicted`` is a Kaggle RLE (``"start length"`` pairs, 1-based starts, pixels
numbered row-major); an image with no prediction still needs one row with an empty
``predicted``; runs within a row are sorted and disjoint, and no pixel may belong to two
instances of the same image.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ensemblab.data.rle import parse_rle
from ensemblab.errors import DataError, EnsemblabError
from ensemblab.io import write_csv

HEADER = ("id", "predicted")
MAX_OVERLAPS_LISTED = 5


def submission_rows(per_image: Iterable[tuple[str, list[str]]]) -> Iterator[tuple[str, str]]:
    """``(id, predicted)`` rows of ``(image id, Kaggle RLEs)`` pairs, one pair at a time: a row
    per non-empty RLE, one empty row for an image without any."""
    for image_id, rles in per_image:
        rles = [r for r in rles if r]
        yield from ((image_id, r) for r in rles) if rles else ((image_id, ""),)


def write_submission(path: str | Path, rles_by_image: Mapping[str, list[str]],
                     image_ids: Iterable[str]) -> Path:
    """Write ``id,predicted`` rows: one per instance, one empty row per image without any.

    Args:
        path: output CSV (written atomically).
        rles_by_image: image id -> Kaggle RLE strings of its non-overlapping instances.
        image_ids: every image of the test set, in output order (ids absent from
            ``rles_by_image`` get an empty row).

    Returns:
        ``path``.
    """
    return write_submission_stream(path, ((i, rles_by_image.get(i, [])) for i in image_ids))


def write_submission_stream(path: str | Path, per_image: Iterable[tuple[str, list[str]]]
                            ) -> Path:
    """:func:`write_submission` of ``(image id, RLEs)`` pairs in output order, written as
    they come (``per_image`` may be a generator reading them from disk).

    Returns:
        ``path``.
    """
    write_csv(path, HEADER, submission_rows(per_image))
    return Path(path)


def _read(csv: str | Path) -> tuple[pd.DataFrame | None, list[str]]:
    csv = Path(csv)
    if not csv.is_file():
        return None, [f"{csv}: file not found"]
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return None, [f"{csv}: not a readable CSV ({str(exc).splitlines()[0]})"]
    if tuple(df.columns) != HEADER:
        return None, [f"{csv}: header is {','.join(df.columns)!r}, expected 'id,predicted'"]
    return df, []


def _overlaps(runs: list[tuple[int, np.ndarray, np.ndarray]], image_id: str) -> list[str]:
    """Pixels claimed by two rows of one image (runs given per row as 0-based starts/ends)."""
    if len(runs) < 2:
        return []
    rows = np.concatenate([np.full(len(s), r) for r, s, _ in runs])
    starts = np.concatenate([s for _, s, _ in runs])
    ends = np.concatenate([e for _, _, e in runs])
    order = np.argsort(starts, kind="stable")
    rows, starts, ends = rows[order], starts[order], ends[order]
    # A run overlaps an earlier one iff it starts before the furthest end seen so far.
    reach = np.maximum.accumulate(ends)
    bad = np.flatnonzero(starts[1:] < reach[:-1]) + 1
    out = []
    for i in bad[:MAX_OVERLAPS_LISTED]:
        other = rows[:i][np.flatnonzero(ends[:i] > starts[i])[-1]]
        out.append(f"image {image_id}: rows {other} and {rows[i]} overlap at pixel "
                   f"{int(starts[i]) + 1}")
    if len(bad) > MAX_OVERLAPS_LISTED:
        out.append(f"image {image_id}: {len(bad) - MAX_OVERLAPS_LISTED} more overlapping runs")
    return out


def validate_submission(csv: str | Path, image_sizes: Mapping[str, tuple[int, int]]
                        ) -> list[str]:
    """Every way a submission breaks the competition rules, one message each.

    Checks: header ``id,predicted``; ids are known images; every image has a row; each RLE
    has an even number of integer tokens, 1-based starts, runs inside the image, sorted and
    disjoint; no two instances of an image share a pixel. Row numbers count data rows from 1
    (the header is row 0).

    Args:
        csv: the submission file.
        image_sizes: image id -> (height, width) of every test image.

    Returns:
        Violations (empty when the file is valid).
    """
    df, problems = _read(csv)
    if df is None:
        return problems
    runs: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for row, (image_id, rle) in enumerate(zip(df["id"], df["predicted"]), start=1):
        if image_id not in image_sizes:
            problems.append(f"row {row}: unknown image id {image_id!r}")
            continue
        try:
            starts, lengths = parse_rle(rle, image_sizes[image_id],
                                        source=f"row {row} (image {image_id})")
        except DataError as exc:
            problems.append(str(exc))
            continue
        runs.setdefault(image_id, []).append((row, starts, starts + lengths))
    present = set(df["id"])
    problems += [f"image {i}: missing (needs at least one row, empty predicted if none)"
                 for i in image_sizes if i not in present]
    for image_id, image_runs in runs.items():
        problems += _overlaps(image_runs, image_id)
    return problems


def check_submission(path: str | Path, image_sizes: Mapping[str, tuple[int, int]]) -> None:
    """:func:`validate_submission` of a written file, raising on the first problem.

    Raises:
        EnsemblabError: the file breaks a rule (first problem and the count).
    """
    problems = validate_submission(path, image_sizes)
    if problems:
        raise EnsemblabError(f"{path}: submission is invalid: {problems[0]} "
                             f"({len(problems)} problems)")


def write_validated_submission(path: str | Path, rles_by_image: Mapping[str, list[str]],
                               image_ids: Iterable[str],
                               image_sizes: Mapping[str, tuple[int, int]]) -> None:
    """:func:`write_submission`, then :func:`validate_submission` against the image sizes.

    Raises:
        EnsemblabError: the written file breaks a rule (first problem and the count).
    """
    write_submission(path, rles_by_image, image_ids)
    check_submission(path, image_sizes)
