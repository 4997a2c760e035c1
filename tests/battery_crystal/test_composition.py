import numpy as np
import pytest

from ensemblab.tabular.composition import (
    FormulaError,
    atoms_per_formula_unit,
    composition_matrix,
    element_fractions,
    parse_formula,
)


def test_issue_example_fractions():
    assert element_fractions("Li2MnSiO4") == pytest.approx(
        {"Li": 0.25, "Mn": 0.125, "Si": 0.125, "O": 0.5})
    assert atoms_per_formula_unit("Li2MnSiO4") == 8


@pytest.mark.parametrize("formula, expected", [
    ("Li2Mn(SiO3)2", {"Li": 2, "Mn": 1, "Si": 2, "O": 6}),
    ("Li10Mn(SiO5)2", {"Li": 10, "Mn": 1, "Si": 2, "O": 10}),
    ("Ca3(PO4)2", {"Ca": 3, "P": 2, "O": 8}),
    ("K4[Fe(CN)6]", {"K": 4, "Fe": 1, "C": 6, "N": 6}),
    ("Mg(OH)2", {"Mg": 1, "O": 2, "H": 2}),
    ("CuSO4·5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
    ("CuSO4*5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
    ("Li0.5CoO2", {"Li": 0.5, "Co": 1, "O": 2}),
    ("Fe2.5O3.75", {"Fe": 2.5, "O": 3.75}),
    ("LiFeO2LiFe", {"Li": 2, "Fe": 2, "O": 2}),  # repeated elements add up
    (" Li2 O ", {"Li": 2, "O": 1}),
])
def test_parse_edge_cases(formula, expected):
    assert parse_formula(formula) == pytest.approx(expected)


@pytest.mark.parametrize("bad, words", [
    ("", "empty"),
    ("Xx2O", "unknown element 'Xx'"),
    ("Li2(SiO4", "unclosed"),
    ("LiSiO4)2", "unbalanced"),
    ("Li2(SiO4]", "unbalanced"),
    ("Li0O", "must be positive"),
    ("2", "follows nothing"),
    ("Li2Mn()", "empty group"),
    ("li2O", "unexpected 'l'"),
    ("CuSO4*", "empty part"),
    ("Li-O", "unexpected '-'"),
])
def test_bad_formulas_name_the_problem(bad, words):
    with pytest.raises(FormulaError) as info:
        parse_formula(bad)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_composition_matrix_vocabulary():
    x, elements = composition_matrix(["Li2MnSiO4", "LiFeSiO4"])
    assert elements == ["Li", "O", "Si", "Mn", "Fe"]  # periodic-table order
    np.testing.assert_allclose(x.sum(1), 1.0, rtol=1e-6)
    y, _ = composition_matrix(["LiCoSiO4"], elements)  # Co outside the vocabulary: dropped
    np.testing.assert_allclose(y[0], [1 / 7, 4 / 7, 1 / 7, 0, 0], rtol=1e-6)
