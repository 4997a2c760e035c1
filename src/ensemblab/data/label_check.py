"""Label values of validation and test masks checked against the training masks.

A value that never occurs in the training masks cannot be learned, and a score on it measures
only that; a value that is no class cannot be scored at all. Projects call
:func:`check_label_values` before training starts (before a run folder exists) with the pixel
counts of each validation / test mask (:func:`value_counts`, one counting pass over an array
the data module already holds) and the values its training masks hold. A class that is absent
from training on purpose is declared in the config (``data.allow_unseen``): it passes and is
scored as usual. A value that is no class cannot be declared.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ensemblab.errors import ConfigError, DataError

ALLOW_KEY = "data.allow_unseen"


def value_counts(mask: np.ndarray) -> dict[int, int]:
    """``{value: pixels}`` of an integer label mask ``[H, W]``."""
    if mask.dtype in (np.uint8, np.uint16):  # one linear pass instead of a sort
        counts = np.bincount(mask.ravel())
        values = np.flatnonzero(counts)
        return dict(zip(values.tolist(), counts[values].tolist()))
    values, counts = np.unique(mask, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def named_values(values: Iterable[int], class_names: Sequence[str]) -> str:
    """``"0 background, 2 galena"``: sorted values with their class names."""
    return ", ".join(f"{v} {class_names[v]}" for v in sorted(values)) or "no value"


def check_allow_list(allow_unseen: Collection[int], num_classes: int) -> set[int]:
    """The declared values as a set.

    Raises:
        ConfigError: a declared value is no class index.
    """
    bad = sorted(v for v in allow_unseen if not 0 <= int(v) < num_classes)
    if bad:
        raise ConfigError(f"{ALLOW_KEY}: {bad} are not class values (0-{num_classes - 1})")
    return {int(v) for v in allow_unseen}


def check_label_values(masks: Iterable[tuple[str | Path, Mapping[int, int]]],
                       class_names: Sequence[str], training: Collection[int],
                       allow_unseen: Collection[int], split: str, what: str = "label value",
                       training_what: str = "training masks", unit: str = "px") -> None:
    """Stop at the first validation / test label value that training cannot account for.

    Args:
        masks: ``(file, {value: pixels})`` of each mask of the split, e.g. from
            :func:`value_counts`; may be a generator that reads one file at a time.
        class_names: the classes; value ``k`` is ``class_names[k]``.
        training: the values that occur in the training masks.
        allow_unseen: class values accepted though absent from the training masks.
        split: the split's name in the message (``"test"``, ``"hold-out"``).
        what: what a value is, for the message (``"class"`` where files hold grey values
            mapped to classes).
        training_what: what the training values come from, for the message.
        unit: the pixel unit in the message (``"px at data.scale 0.25"``).

    Raises:
        DataError: naming the file, the value and its pixel count, when a value is not a class
            index, or is a class that never occurs in ``training`` and is not declared in
            ``allow_unseen``. The message lists the values found in the training masks.
        ConfigError: ``allow_unseen`` holds a value that is no class.
    """
    allowed = check_allow_list(allow_unseen, len(class_names))
    training = {int(v) for v in training}
    for source, counts in masks:
        for value, pixels in sorted(counts.items()):
            if not 0 <= value < len(class_names):
                raise DataError(source, f"{split} {what} {value} ({pixels} {unit}) is not a "
                                        f"class (0-{len(class_names) - 1}); the "
                                        f"{training_what} hold "
                                        f"{named_values(training, class_names)}")
            if value not in training and value not in allowed:
                raise DataError(source, f"{split} {what} {value} ({class_names[value]}, "
                                        f"{pixels} {unit}) never occurs in the {training_what}, "
                                        f"which hold {named_values(training, class_names)}; "
                                        f"declare it in {ALLOW_KEY} to train anyway")
