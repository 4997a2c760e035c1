"""Class lists of mineral datasets: read from the dataset, or a registered published list.

The index of a name is the pixel value of its class in the masks. The list comes from, in order
of preference:

- ``ROOT/classes.txt`` of the dataset, one name per line (``data.classes: null``), the VOC
  ``labelmap`` habit: a dataset carries its own class list;
- a registered set (``data.classes: lumenstone``): the published list of a dataset that ships
  without such a file (LumenStone: 13 classes, of which 10 occur in the public sample; the
  mineral paper: 9);
- an explicit list in the config (``data.classes: [background, gangue, ...]``).

A mask value outside the list is a :class:`~ensemblab.errors.DataError` naming the file and the
value (raised by :func:`ensemblab.data.images.read_label_png` when the masks are read).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ensemblab.errors import ConfigError, DataError
from ensemblab.registry import Registry
from ensemblab.synthetic.minerals import MINERAL_CLASSES

CLASS_LIST_FILE = "classes.txt"

CLASS_SETS = Registry("mineral class set")
"""Set name -> tuple of class names (index = mask value)."""

CLASS_SETS.register("minerals9", MINERAL_CLASSES)
CLASS_SETS.register("lumenstone", (
    "background", "chalcopyrite", "galena", "magnetite", "bornite", "pyrrhotite",
    "pyrite-marcasite", "pentlandite", "sphalerite", "arsenopyrite", "hematite",
    "tennantite-tetrahedrite", "covellite",
))


def read_class_list(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (blank lines and ``#`` comments skipped).

    Raises:
        DataError: missing file, fewer than two names, or a repeated name.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "class list not found (one class name per line, index = mask "
                              "value; or set data.classes to "
                              f"{' | '.join(CLASS_SETS.names())} | [names])")
    names = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n]
    _check_names(names, path)
    return names


def _check_names(names: Sequence[str], source: str | Path | None) -> None:
    if len(names) < 2:
        raise DataError(source, f"needs at least two class names, got {list(names)}")
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise DataError(source, f"class names repeated: {', '.join(repeated)}")


def resolve_classes(value: str | Sequence[str] | None, root: str | Path | None = None
                    ) -> list[str]:
    """The class names of a dataset.

    Args:
        value: ``None`` (read ``ROOT/classes.txt``), a registered set name, or a list of names.
        root: dataset folder (needed when ``value`` is None).

    Raises:
        ConfigError: unknown set name, or ``None`` without a dataset folder.
        DataError: a missing or malformed class list file, or a malformed list.
    """
    if value is None:
        if root is None:
            raise ConfigError("data.classes is null (read ROOT/classes.txt) but no dataset "
                              "folder was given")
        return read_class_list(Path(root) / CLASS_LIST_FILE)
    if isinstance(value, str):
        return list(CLASS_SETS.get(value))
    names = [str(v) for v in value]
    _check_names(names, "data.classes")
    return names


def class_pixel_counts(masks: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Pixels per class over masks: int64 ``[num_classes]`` (which classes really occur)."""
    counts = np.zeros(num_classes, np.int64)
    for mask in masks:
        counts += np.bincount(mask.ravel(), minlength=num_classes)[:num_classes]
    return counts
