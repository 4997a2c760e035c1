"""Chemical formulas -> element amounts and fractions (composition features).

The battery paper feeds the formula string to its DNN; a string is not a number, so we turn it
into the fraction of each element among the atoms of the formula unit (``Li2MnSiO4`` ->
Li 0.25, Mn 0.125, Si 0.125, O 0.5), the standard "element fraction" featurisation of
materials informatics (Ward et al. 2016, Magpie). Supported syntax:

- element symbols with optional integer or decimal counts: ``Fe2O3``, ``Li0.5CoO2``;
- nested groups with a multiplier: ``Li2Mn(SiO3)2``, ``Ca3(PO4)2``, ``[Fe(CN)6]``;
- hydrates / adducts joined by ``·``, ``•`` or ``*``: ``CuSO4·5H2O``, ``CuSO4*5H2O`` (the
  leading number multiplies that part). A plain ``.`` is always a decimal point, never an adduct
  separator: ``CuSO4.5H2O`` would be ambiguous (O4.5?), so it is parsed as written.

Anything else (unknown element, unbalanced parenthesis, empty formula, zero count) raises
:class:`FormulaError` with the formula and the position of the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from ensemblab.errors import EnsemblabError

ELEMENTS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As "
    "Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd "
    "Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am "
    "Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()
_ELEMENT_SET = frozenset(ELEMENTS)
_TOKEN = re.compile(r"([A-Z][a-z]?)|(\d+(?:\.\d+)?|\.\d+)|([(\[])|([)\]])|(\s+)")
_ADDUCT_SEP = re.compile(r"[·•*]")
_CLOSE = {"(": ")", "[": "]"}


class FormulaError(EnsemblabError):
    """A chemical formula cannot be parsed (message names the formula and the problem)."""


def _number(text: str, formula: str) -> float:
    value = float(text)
    if value <= 0:
        raise FormulaError(f"formula {formula!r}: count {text} must be positive")
    return value


def _parse_part(part: str, formula: str) -> dict[str, float]:
    """Parse one adduct-free part (``5H2O`` or ``Li2Mn(SiO3)2``) into element counts."""
    part = part.strip()
    lead = re.match(r"(\d+(?:\.\d+)?)\s*", part)
    multiplier = 1.0
    if lead and lead.end() < len(part):
        multiplier = _number(lead.group(1), formula)
        part = part[lead.end():]
    stack: list[tuple[str, dict[str, float]]] = [("", {})]
    pos = 0
    last: dict[str, float] | str | None = None  # what a following count applies to
    while pos < len(part):
        m = _TOKEN.match(part, pos)
        if m is None:
            raise FormulaError(f"formula {formula!r}: unexpected {part[pos]!r}")
        symbol, count, opening, closing, _space = m.groups()
        pos = m.end()
        if symbol:
            if symbol not in _ELEMENT_SET:
                raise FormulaError(f"formula {formula!r}: unknown element {symbol!r}")
            top = stack[-1][1]
            top[symbol] = top.get(symbol, 0.0) + 1.0
            last = symbol
        elif count:
            value = _number(count, formula)
            top = stack[-1][1]
            if isinstance(last, str):
                top[last] += value - 1.0
            elif isinstance(last, dict):
                for el, n in last.items():
                    top[el] += n * (value - 1.0)
            else:
                raise FormulaError(f"formula {formula!r}: count {count} follows nothing")
            last = None
        elif opening:
            stack.append((opening, {}))
            last = None
        elif closing:
            if len(stack) == 1 or _CLOSE[stack[-1][0]] != closing:
                raise FormulaError(f"formula {formula!r}: unbalanced {closing!r}")
            _, group = stack.pop()
            if not group:
                raise FormulaError(f"formula {formula!r}: empty group")
            top = stack[-1][1]
            for el, n in group.items():
                top[el] = top.get(el, 0.0) + n
            last = group
    if len(stack) != 1:
        raise FormulaError(f"formula {formula!r}: unclosed {stack[-1][0]!r}")
    return {el: n * multiplier for el, n in stack[0][1].items()}


def parse_formula(formula: str) -> dict[str, float]:
    """Element counts of a formula unit.

    Args:
        formula: e.g. ``"Li2Mn(SiO3)2"`` or ``"CuSO4·5H2O"``.

    Returns:
        ``{element: count}`` in order of first appearance, e.g. ``{"Cu": 1, "S": 1, "O": 9,
        "H": 10}`` for the pentahydrate.

    Raises:
        FormulaError: empty or malformed formula, unknown element, non-positive count.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError(f"formula {formula!r}: empty")
    counts: dict[str, float] = {}
    for part in _ADDUCT_SEP.split(formula):
        if not part.strip():
            raise FormulaError(f"formula {formula!r}: empty part around a hydrate separator")
        for el, n in _parse_part(part, formula).items():
            counts[el] = counts.get(el, 0.0) + n
    if not counts:
        raise FormulaError(f"formula {formula!r}: no elements")
    return counts


def element_fractions(formula: str) -> dict[str, float]:
    """Atomic fraction of each element (sums to 1): ``Li2MnSiO4`` -> Li .25, Mn .125, ..."""
    counts = parse_formula(formula)
    total = sum(counts.values())
    return {el: n / total for el, n in counts.items()}


def atoms_per_formula_unit(formula: str) -> float:
    """Total atom count of one formula unit (``Li2MnSiO4`` -> 8)."""
    return float(sum(parse_formula(formula).values()))


def composition_matrix(
    formulas: Iterable[str], elements: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Element-fraction matrix of many formulas.

    Args:
        formulas: N formula strings.
        elements: column order; None uses every element seen, in periodic-table order. With a
            fixed list (a fitted vocabulary), elements outside it are dropped and the
            remaining fractions are kept as they are (not renormalised).

    Returns:
        ``(fractions float32[N, E], elements)``.
    """
    rows = [element_fractions(f) for f in formulas]
    if elements is None:
        seen = {el for row in rows for el in row}
        elements = [el for el in ELEMENTS if el in seen]
    index = {el: j for j, el in enumerate(elements)}
    out = np.zeros((len(rows), len(elements)), dtype=np.float32)
    for i, row in enumerate(rows):
        for el, frac in row.items():
            if el in index:
                out[i, index[el]] = frac
    return out, list(elements)
