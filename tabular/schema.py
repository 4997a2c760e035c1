"""Declared table schemas: named, typed columns, a label with allowed values, formula checks.

A :class:`TableSchema` says what a CSV must hold; :meth:`TableSchema.read` loads it through the
core's :func:`ensemblab.data.tables.read_table` (types, missing values, unknown labels — each
reported as one line naming the file, row and column) and adds the checks a tabular project
needs on top: chemical-formula columns must parse, and a prediction table may omit the label.

Example::

    schema = TableSchema({"Formula": "str", "Volume": "float"}, label="Crystal System",
                         labels=("monoclinic", "orthorhombic", "triclinic"),
                         formula_columns=("Formula",))
    df = schema.read("train.csv")                      # with the label
    df = schema.read("new.csv", with_label=False)      # features only
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ensemblab.data.tables import read_table
from ensemblab.errors import DataError
from ensemblab.tabular.composition import FormulaError, parse_formula


@dataclass(frozen=True)
class TableSchema:
    """What a CSV must contain.

    Attributes:
        columns: ``{name: dtype}`` of the feature (and id) columns; dtype ``float``, ``int``,
            ``str`` or ``bool`` (``TRUE``/``FALSE``).
        label: label column name, or None for unlabelled tables.
        labels: allowed label values (their order is the class index order).
        formula_columns: ``str`` columns holding chemical formulas that must parse.
        optional: columns that may be missing from the file (filled with ``fill`` values).
        fill: value used for an absent optional column.
    """

    columns: Mapping[str, str]
    label: str | None = None
    labels: Sequence[str] | None = None
    formula_columns: Sequence[str] = ()
    optional: Sequence[str] = ()
    fill: Mapping[str, object] = field(default_factory=dict)

    def read(self, path: str | Path, with_label: bool = True) -> pd.DataFrame:
        """Load and validate ``path``.

        Args:
            path: CSV with a header row.
            with_label: require the label column (training / evaluation tables); False reads
                only the feature columns (prediction tables; a label column there is ignored).

        Returns:
            DataFrame with the schema's columns (label last when read), typed.

        Raises:
            DataError: one line naming the file, row and column of the first problem.
        """
        path = Path(path)
        header = _header(path)
        columns = {c: t for c, t in self.columns.items()
                   if c in header or c not in self.optional}
        label = self.label if with_label else None
        df = read_table(path, columns, label=label,
                        allowed_labels=self.labels if label is not None else None)
        for name in self.optional:
            if name not in df.columns:
                df[name] = self.fill.get(name, "")
        for name in self.formula_columns:
            check_formulas(df[name], path, name)
        order = list(self.columns) + ([label] if label is not None else [])
        return df[order]


def _header(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(path, "file not found")
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        return [c.strip() for c in next(csv.reader(fh), [])]


def check_formulas(values: pd.Series, path: str | Path | None, column: str) -> None:
    """Raise a one-line :class:`DataError` at the first formula that does not parse.

    Args:
        values: formula strings of rows 0..N-1.
        path: file named in the message.
        column: column named in the message.
    """
    for i, formula in enumerate(values):
        try:
            parse_formula(formula)
        except FormulaError as exc:
            raise DataError(path, f"row {i + 1} (line {i + 2}), column {column!r}: {exc}") from None
