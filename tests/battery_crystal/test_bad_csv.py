import pytest

from ensemblab.cli import main
from ensemblab.errors import DataError
from ensemblab.projects.battery_crystal.features import load_table
from ensemblab.synthetic.battery import write_battery_csv


@pytest.fixture()
def good_csv(tmp_path):
    return write_battery_csv(tmp_path / "lithium-ion_batteries.csv", n_rows=12, seed=0)


def _edit(path, fn):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")
    return path


def _drop_column(lines, name):
    header = lines[0].split(",")
    j = header.index(name)
    return [",".join(v for k, v in enumerate(line.split(",")) if k != j) for line in lines]


def _set_cell(lines, row, name, value):
    j = lines[0].split(",").index(name)
    cells = lines[row + 1].split(",")
    cells[j] = value
    return lines[:row + 1] + [",".join(cells)] + lines[row + 2:]


@pytest.mark.parametrize("edit, words", [
    (lambda ls: _drop_column(ls, "Volume"), "missing column(s) 'Volume'"),
    (lambda ls: _set_cell(ls, 4, "Density (gm/cc)", "abc"),
     "row 5 (line 6), column 'Density (gm/cc)': 'abc' is not a number"),
    (lambda ls: _set_cell(ls, 2, "Crystal System", "cubic"),
     "row 3 (line 4), column 'Crystal System': unknown label 'cubic'"),
    (lambda ls: _set_cell(ls, 7, "Band Gap (eV)", ""),
     "row 8 (line 9), column 'Band Gap (eV)': missing value"),
    (lambda ls: _set_cell(ls, 1, "Formula", "Li2Xq(SiO4"),
     "row 2 (line 3), column 'Formula'"),
    (lambda ls: _set_cell(ls, 0, "Has Bandstructure", "maybe"), "not a boolean"),
    (lambda ls: _set_cell(ls, 0, "Nsites", "16.5"), "not an integer"),
])
def test_bad_csv_one_line_error(good_csv, edit, words):
    _edit(good_csv, edit)
    with pytest.raises(DataError) as info:
        load_table(good_csv)
    message = str(info.value)
    assert words in message
    assert str(good_csv) in message and "\n" not in message


def test_cli_reports_bad_csv_in_one_line(good_csv, tmp_path, capsys):
    _edit(good_csv, lambda ls: _set_cell(ls, 4, "Volume", "n/a?"))
    code = main(["battery_crystal", "train", "--config", "cpu_quick", "--data", str(good_csv),
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "column 'Volume'" in err and "row 5" in err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_prediction_table_needs_no_label(tmp_path):
    path = write_battery_csv(tmp_path / "new.csv", n_rows=5, seed=1, with_label=False)
    df = load_table(path, with_label=False)
    assert len(df) == 5 and "Crystal System" not in df.columns
    with pytest.raises(DataError, match="missing column"):
        load_table(path)
