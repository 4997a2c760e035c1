"""CSV tables read against a declared schema, with errors naming the row and column.

``read_table(path, {"Density (gm/cc)": float, "Crystal System": str}, label="Crystal System",
allowed_labels=[...])`` returns exactly the declared columns, typed, or fails with one line
such as ``data.csv: row 7 (line 8), column 'Density (gm/cc)': 'abc' is not a number``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ensemblab.errors import DataError

MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null"})
_BOOL_TOKENS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_DTYPE_NAMES = {float: "float", int: "int", str: "str", bool: "bool"}


def _where(row: int, column: str) -> str:
    """Data row numbers are 1-based; the CSV line adds the header line."""
    return f"row {row + 1} (line {row + 2}), column {column!r}"


def _convert(values: pd.Series, dtype: str, column: str, path: Path) -> pd.Series:
    """Convert a column of stripped strings (no missing values) to ``dtype``."""
    if dtype == "str":
        return values
    if dtype == "bool":
        lowered = values.str.lower()
        bad = ~lowered.isin(list(_BOOL_TOKENS)) & values.notna()
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise DataError(path, f"{_where(i, column)}: {values.iloc[i]!r} is not a boolean "
                                  "(TRUE/FALSE)")
        mapped = lowered.map(_BOOL_TOKENS)
        return mapped.astype("boolean" if values.isna().any() else bool)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise DataError(path, f"{_where(i, column)}: {values.iloc[i]!r} is not a number")
    if dtype == "int":
        frac = numbers.notna() & ((numbers != np.floor(numbers)) | np.isinf(numbers))
        if frac.any():
            i = int(np.argmax(frac.to_numpy()))
            raise DataError(path, f"{_where(i, column)}: {values.iloc[i]!r} is not an integer")
        return numbers.astype("Int64" if numbers.isna().any() else np.int64)
    return numbers.astype(np.float64)


def read_table(path: str | Path, columns: Mapping[str, type | str], label: str | None = None,
               allowed_labels: Iterable[str] | None = None,
               allow_missing: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV and check it against a schema.

    Args:
        path: CSV file with a header row.
        columns: ``{name: dtype}`` with dtype one of ``float``, ``int``, ``str``, ``bool`` (or
            their names); only these columns are returned, in this order.
        label: name of the label column (added as ``str`` if not in ``columns``).
        allowed_labels: the label values that may occur; None = any.
        allow_missing: columns where empty/NA cells are allowed (NaN for numbers, "" for str).

    Returns:
        DataFrame with the declared columns converted (float64, int64, bool, object str; an
        int/bool column with allowed missing cells becomes pandas' nullable Int64/boolean).

    Raises:
        DataError: missing/unparsable file, a missing column, no data rows, a missing value, a
            value that is not of the column's type, or an unknown label, naming row and column.
    """
    path = Path(path)
    schema = {name: _DTYPE_NAMES.get(dt, dt) for name, dt in columns.items()}
    if label is not None and label not in schema:
        schema[label] = "str"
    for name, dt in schema.items():
        if dt not in ("float", "int", "str", "bool"):
            raise ValueError(f"column {name!r}: unsupported dtype {dt!r}")
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise DataError(path, "empty file (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable CSV ({' '.join(str(exc).split())})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in schema if c not in raw.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(map(repr, missing))} "
                              f"(have: {', '.join(raw.columns)})")
    if raw.empty:
        raise DataError(path, "no data rows (only a header)")
    optional = set(allow_missing)
    out = {}
    for name, dt in schema.items():
        values = raw[name].str.strip()
        empty = values.isin(MISSING_TOKENS)
        if empty.any() and name not in optional:
            i = int(np.argmax(empty.to_numpy()))
            raise DataError(path, f"{_where(i, name)}: missing value")
        if empty.any():
            values = values.where(~empty, "" if dt == "str" else None)
        out[name] = _convert(values, dt, name, path)
    if label is not None and allowed_labels is not None:
        allowed = set(allowed_labels)
        unknown = ~out[label].isin(allowed)
        if unknown.any():
            i = int(np.argmax(unknown.to_numpy()))
            raise DataError(path, f"{_where(i, label)}: unknown label {out[label].iloc[i]!r} "
                                  f"(allowed: {', '.join(sorted(map(str, allowed)))})")
    return pd.DataFrame(out)
