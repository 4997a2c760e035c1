"""Property-based tests of the battery CSV reader (:func:`load_table`, the project's schema on
:func:`ensemblab.data.tables.read_table`).

Random tables in the paper's CSV format round-trip exactly; a bad cell, a missing column, a
truncated file or flipped bytes either still read or fail with one
:class:`~ensemblab.errors.EnsemblabError` line naming the file. Few rows, derandomized.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ensemblab.projects.battery_crystal.features import load_table
from ensemblab.synthetic.battery import HEADER, battery_table, write_battery_csv
from ensemblab.testing import corruptions, read_or_one_line_error

FUZZ = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUND_TRIP = settings(FUZZ, max_examples=15)
CELLS = st.sampled_from(["", " ", "NaN", "abc", "1.5", "-3", "1e999", "TRUE", "maybe", "cubic",
                         "Li2Xq(SiO4", "Li0", "()", '"', "1,2", "\x00", "\u00e9"])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_battery")


def _csv(work: Path, n_rows: int, seed: int, with_label: bool = True) -> Path:
    folder = Path(tempfile.mkdtemp(dir=work))
    return write_battery_csv(folder / "batteries.csv", n_rows=n_rows, seed=seed,
                             with_label=with_label)


n_rows = st.integers(1, 8)
seeds = st.integers(0, 10**6)


@ROUND_TRIP
@given(n=n_rows, seed=seeds, with_label=st.booleans())
def test_battery_csv_round_trips(work, n, seed, with_label):
    expected = battery_table(n, seed)
    columns = list(HEADER if with_label else HEADER[:-1])
    read = load_table(_csv(work, n, seed, with_label), with_label=with_label)
    pd.testing.assert_frame_equal(read[columns], expected[columns], check_dtype=False)


@FUZZ
@given(n=n_rows, seed=seeds, drop=st.booleans(), row=st.integers(0, 7),
       column=st.sampled_from(HEADER), cell=CELLS)
@example(n=3, seed=0, drop=False, row=1, column="Nsites", cell="1e999")  # inf is no integer
def test_battery_csv_with_a_bad_cell_or_column_fails_in_one_line(work, n, seed, drop, row,
                                                                  column, cell):
    path = _csv(work, n, seed)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if drop:
        table = table.drop(columns=column)
    else:
        table.loc[row % n, column] = cell
    table.to_csv(path, index=False)
    read_or_one_line_error(lambda: load_table(path), path)


@FUZZ
@given(data=st.data(), n=n_rows, seed=seeds, with_label=st.booleans())
def test_corrupt_battery_csv_fails_in_one_line(work, data, n, seed, with_label):
    path = _csv(work, n, seed, with_label)
    path.write_bytes(data.draw(corruptions(path.read_bytes())))
    read_or_one_line_error(lambda: load_table(path, with_label=with_label), path)
