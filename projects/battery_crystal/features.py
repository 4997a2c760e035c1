"""The battery table's schema, derived crystallographic columns and the two feature sets.

Columns (Materials-Project export used by the paper): ``Materials Id, Formula, Spacegroup,
Formation Energy (eV), E Above Hull (eV), Band Gap (eV), Nsites, Density (gm/cc), Volume,
Has Bandstructure, Crystal System``.

Derived columns (computed from honest columns only, row by row — no label, no other rows):

- ``Formula units`` Z = Nsites / atoms in the formula unit (``Li2MnSiO4`` has 8 atoms, so a
  16-site cell holds Z = 2). How many formula units a cell holds is tied to the cell's
  symmetry (low-symmetry triclinic cells mostly hold 1-2, orthorhombic ones 4-8), which is why
  it is the most useful input after the space group itself; it is used both as a number and
  as a category (``Z class``).
- ``Volume per atom`` = Volume / Nsites.

Feature sets:

- ``honest`` (default): the eight non-space-group columns (the formula as element fractions)
  plus the derived columns.
- ``paper``: the paper's nine columns — ``honest`` plus ``Spacegroup`` (one-hot). Leaky: the
  space group determines the crystal system.
- ``raw`` (ablation): the eight non-space-group columns as they are (formula as element
  fractions), without the derived columns.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from ensemblab.errors import ConfigError
from ensemblab.tabular.composition import atoms_per_formula_unit
from ensemblab.tabular.preprocess import TabularPreprocessor
from ensemblab.tabular.schema import TableSchema

LABEL = "Crystal System"
CLASSES = ("monoclinic", "orthorhombic", "triclinic")
NUMERIC = ("Formation Energy (eV)", "E Above Hull (eV)", "Band Gap (eV)", "Nsites",
           "Density (gm/cc)", "Volume")
SCHEMA = TableSchema(
    columns={"Materials Id": "str", "Formula": "str", "Spacegroup": "str",
             "Formation Energy (eV)": "float", "E Above Hull (eV)": "float",
             "Band Gap (eV)": "float", "Nsites": "int", "Density (gm/cc)": "float",
             "Volume": "float", "Has Bandstructure": "bool"},
    label=LABEL, labels=CLASSES, formula_columns=("Formula",), optional=("Materials Id",),
)
FEATURE_SETS = ("honest", "paper", "raw")
LEAKY_FEATURE_SETS = {"paper": "Spacegroup determines the crystal system (lookup gives 1.0)"}


def add_derived(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with ``Formula units``, ``Z class`` and ``Volume per atom`` added."""
    out = df.copy()
    atoms = out["Formula"].map(atoms_per_formula_unit).astype(float)
    z = out["Nsites"].astype(float) / atoms
    out["Formula units"] = z
    out["Z class"] = [f"{v:g}" for v in np.round(z, 2)]
    out["Volume per atom"] = out["Volume"].astype(float) / out["Nsites"].astype(float)
    return out


def preprocessor_factory(feature_set: str, encoding: str = "onehot") -> partial:
    """A picklable ``() -> TabularPreprocessor`` for a feature set.

    Args:
        feature_set: ``honest``, ``paper`` or ``raw``.
        encoding: categorical encoding (``onehot`` or ``embedding``; baselines need one-hot).
    """
    if feature_set not in FEATURE_SETS:
        raise ConfigError(f"feature set {feature_set!r}: choose from {', '.join(FEATURE_SETS)}")
    if feature_set == "raw":
        return partial(TabularPreprocessor, numeric=[*NUMERIC, "Has Bandstructure"],
                       formula="Formula", encoding=encoding)
    categorical = ["Z class"] + (["Spacegroup"] if feature_set == "paper" else [])
    return partial(
        TabularPreprocessor,
        numeric=[*NUMERIC, "Has Bandstructure", "Formula units", "Volume per atom"],
        log_numeric=["Nsites", "Volume", "Formula units"],
        categorical=categorical, formula="Formula", encoding=encoding,
    )


def load_table(path, with_label: bool = True) -> pd.DataFrame:
    """Read and validate a battery CSV and add the derived columns (DataError on bad input)."""
    return add_derived(SCHEMA.read(path, with_label=with_label))
