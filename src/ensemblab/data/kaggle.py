"""Kaggle Sartorius ``train.csv``: one row per instance, Kaggle RLE masks.

Columns ``id,annotation,width,height,cell_type`` (the real file has a few more, which are kept
out of the way); rows of one image share ``id``, ``width``, ``height`` and ``cell_type``.
Instances may overlap (the Sartorius annotations do), so they are kept as a list of RLEs and
decoded to a [N, H, W] stack, never to an id map, unless asked.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensemblab.data.rle import masks_to_instance_map, parse_rle, rle_to_indices
from ensemblab.errors import DataError
from ensemblab.io import write_csv

KAGGLE_COLUMNS = ("id", "annotation", "width", "height", "cell_type")


@dataclass
class KaggleImage:
    """The instances of one image of a Kaggle-style CSV.

    Attributes:
        image_id: the ``id`` column.
        height: image height H in pixels.
        width: image width W in pixels.
        cell_type: the ``cell_type`` column (Sartorius: ``shsy5y``, ``astro``, ``cort``).
        rles: one Kaggle RLE string per instance, in file order.
        source: where the rows came from (the CSV path), for error messages.
        rows: the CSV line number of each RLE, for error messages.
    """

    image_id: str
    height: int
    width: int
    cell_type: str
    rles: list[str] = field(default_factory=list)
    source: str | None = None
    rows: list[int] = field(default_factory=list)

    def _where(self, i: int) -> str | None:
        if self.source is None:
            return f"image {self.image_id} instance {i}"
        line = self.rows[i] if i < len(self.rows) else None
        return f"{self.source} line {line}" if line else f"{self.source} image {self.image_id}"

    def masks(self) -> np.ndarray:
        """Decode every instance.

        Returns:
            [N, H, W] bool (N = number of RLEs; overlaps preserved).
        """
        out = np.zeros((len(self.rles), self.height * self.width), dtype=bool)
        for i, rle in enumerate(self.rles):
            out[i, rle_to_indices(rle, (self.height, self.width), self._where(i))] = True
        return out.reshape(len(self.rles), self.height, self.width)

    def instance_map(self) -> np.ndarray:
        """[H, W] int32 id map (instance i -> i + 1; overlaps go to the earlier instance)."""
        return masks_to_instance_map(self.masks())


def read_kaggle_csv(path: str | Path, validate_rles: bool = True) -> dict[str, KaggleImage]:
    """Read a Kaggle Sartorius-style ``train.csv`` into per-image instances.

    Args:
        path: CSV with at least the columns ``id,annotation,width,height,cell_type``.
        validate_rles: parse every RLE now (token count, integers, bounds, order) so a bad row
            fails at read time with its line number; cheap, no masks are built.

    Returns:
        ``{image_id: KaggleImage}`` in order of first appearance.

    Raises:
        DataError: missing file or column, non-integer or non-positive size, an image whose
            rows disagree on size or cell type, or an invalid RLE (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    images: dict[str, KaggleImage] = {}
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in KAGGLE_COLUMNS if c not in header]
            if missing:
                raise DataError(path, f"missing column(s) {', '.join(missing)} "
                                      f"(header: {','.join(header)!r})")
            for line, row in enumerate(reader, start=2):
                _add_row(images, row, path, line, validate_rles)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"not a readable CSV ({exc})") from None
    return images


def _add_row(images: dict[str, KaggleImage], row: dict, path: Path, line: int,
             validate_rles: bool) -> None:
    where = f"{path} line {line}"
    if None in row or any(row[c] is None for c in KAGGLE_COLUMNS):
        raise DataError(where, "wrong number of fields")
    image_id = row["id"].strip()
    if not image_id:
        raise DataError(where, "empty id")
    size = []
    for col in ("height", "width"):
        try:
            value = int(row[col])
        except ValueError:
            raise DataError(where, f"column {col}: {row[col]!r} is not an integer") from None
        if value <= 0:
            raise DataError(where, f"column {col}: {value} is not positive")
        size.append(value)
    height, width = size
    cell_type = row["cell_type"].strip()
    img = images.get(image_id)
    if img is None:
        img = images[image_id] = KaggleImage(image_id, height, width, cell_type,
                                             source=str(path))
    elif (img.height, img.width) != (height, width):
        raise DataError(where, f"image {image_id} size {height}x{width} differs from its "
                               f"earlier rows ({img.height}x{img.width})")
    elif img.cell_type != cell_type:
        raise DataError(where, f"image {image_id} cell_type {cell_type!r} differs from its "
                               f"earlier rows ({img.cell_type!r})")
    rle = row["annotation"].strip()
    if not rle:
        return
    if validate_rles:
        parse_rle(rle, (height, width), where)
    img.rles.append(rle)
    img.rows.append(line)


def write_kaggle_csv(path: str | Path,
                     images: Mapping[str, KaggleImage] | Iterable[KaggleImage]) -> None:
    """Write images' instances as a Kaggle ``train.csv`` (atomically).

    Args:
        path: output CSV.
        images: ``{id: KaggleImage}`` or an iterable of KaggleImage; one row per RLE. An image
            without instances is written as one row with an empty annotation so it survives a
            round trip.
    """
    items = images.values() if isinstance(images, Mapping) else images
    rows = []
    for img in items:
        for rle in img.rles or [""]:
            rows.append((img.image_id, rle, img.width, img.height, img.cell_type))
    write_csv(path, KAGGLE_COLUMNS, rows)
