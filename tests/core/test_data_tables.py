"""CSV tables against a schema: types, labels and errors naming row and column."""

from __future__ import annotations

import numpy as np
import pytest

from ensemblab.data.tables import read_table
from ensemblab.errors import DataError

SCHEMA = {"Formula": str, "Density": float, "Nsites": "int", "Has Bandstructure": bool}
LABELS = ["monoclinic", "orthorhombic", "triclinic"]


def _csv(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_text(text)
    return path


GOOD = ("Id,Formula,Density,Nsites,Has Bandstructure,Crystal System\n"
        "m-1,Li2FeSiO4,3.1,16,TRUE,monoclinic\n"
        "m-2, LiMnSiO4 ,2.5,8,false,triclinic\n")


def test_reads_and_types(tmp_path):
    df = read_table(_csv(tmp_path, GOOD), SCHEMA, label="Crystal System", allowed_labels=LABELS)
    assert list(df.columns) == [*SCHEMA, "Crystal System"]
    assert df["Formula"].tolist() == ["Li2FeSiO4", "LiMnSiO4"]
    assert df["Density"].dtype == np.float64 and df["Density"].tolist() == [3.1, 2.5]
    assert df["Nsites"].dtype == np.int64 and df["Nsites"].tolist() == [16, 8]
    assert df["Has Bandstructure"].tolist() == [True, False]
    assert df["Crystal System"].tolist() == ["monoclinic", "triclinic"]


def test_allow_missing(tmp_path):
    text = GOOD.replace(",16,", ",,").replace("2.5", "NA")
    df = read_table(_csv(tmp_path, text), SCHEMA, allow_missing=["Nsites", "Density"])
    assert df["Nsites"].isna().tolist() == [True, False]
    assert df["Density"].isna().tolist() == [False, True]


@pytest.mark.parametrize("text, problem", [
    (GOOD.replace("Density", "Dens"), "missing column(s) 'Density'"),
    (GOOD.replace("2.5", "abc"), "row 2 (line 3), column 'Density': 'abc' is not a number"),
    (GOOD.replace(",16,", ",16.5,"), "row 1 (line 2), column 'Nsites': '16.5' is not an int"),
    (GOOD.replace(",8,", ",,"), "row 2 (line 3), column 'Nsites': missing value"),
    (GOOD.replace("TRUE", "maybe"), "column 'Has Bandstructure': 'maybe' is not a boolean"),
    (GOOD.replace("triclinic", "cubic"),
     "row 2 (line 3), column 'Crystal System': unknown label 'cubic'"),
    ("", "empty file"),
    (GOOD.splitlines()[0] + "\n", "no data rows"),
])
def test_errors_name_row_and_column(tmp_path, text, problem):
    path = _csv(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_table(path, SCHEMA, label="Crystal System", allowed_labels=LABELS)
    assert str(err.value).startswith(f"{path}: ")
    assert problem in str(err.value)


def test_missing_file_and_bad_dtype(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "none.csv", SCHEMA)
    with pytest.raises(ValueError, match="unsupported dtype"):
        read_table(_csv(tmp_path, GOOD), {"Density": "complex"})


@pytest.mark.realdata
def test_battery_csv():
    from ensemblab.testing import real_data

    path = real_data("battery/lithium-ion_batteries.csv")
    df = read_table(path, {"Formula": str, "Spacegroup": str, "Band Gap (eV)": float,
                           "Nsites": int, "Has Bandstructure": bool},
                    label="Crystal System", allowed_labels=LABELS)
    assert len(df) == 339
    assert df["Crystal System"].value_counts().to_dict() == {
        "monoclinic": 139, "orthorhombic": 128, "triclinic": 72}
