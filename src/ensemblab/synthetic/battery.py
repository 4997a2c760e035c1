"""A synthetic Li-ion silicate table in the exact format of the battery paper's CSV.

Same header, types and value ranges as ``lithium-ion_batteries.csv`` (Materials Project
export): ``Materials Id, Formula, Spacegroup, Formation Energy (eV), E Above Hull (eV),
Band Gap (eV), Nsites, Density (gm/cc), Volume, Has Bandstructure, Crystal System``.

The label is learnable the way the real one is, from crystallographic regularities:

- the crystal system sets how many formula units a cell holds (triclinic mostly 1-2,
  monoclinic 2-4, orthorhombic 4-8), hence ``Nsites`` = Z x atoms of the formula;
- it shifts the volume per atom and the density a little (noise added);
- ``Spacegroup`` is drawn from symbols of the row's crystal system, so, as in the real table,
  it determines the label (a planted, realistic leak for the leakage check).

Energies, band gap and the band-structure flag are label-independent noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ensemblab.io import write_csv

HEADER = ("Materials Id", "Formula", "Spacegroup", "Formation Energy (eV)", "E Above Hull (eV)",
          "Band Gap (eV)", "Nsites", "Density (gm/cc)", "Volume", "Has Bandstructure",
          "Crystal System")
CLASSES = ("monoclinic", "orthorhombic", "triclinic")
_PRIOR = (0.41, 0.38, 0.21)  # the real table's class shares
_TEMPLATES = (("Li2{M}SiO4", 8), ("Li{M}SiO4", 7), ("Li{M}(SiO3)2", 10), ("Li2{M}(SiO3)2", 11),
              ("Li4{M}Si2O7", 14), ("Li3{M}2(SiO4)2", 15), ("Li2{M}2Si2O7", 13),
              ("Li{M}2Si2O7", 12))
_METALS = ("Mn", "Fe", "Co")
_Z = {"monoclinic": ((2, 4, 1), (0.65, 0.3, 0.05)), "orthorhombic": ((4, 8, 2), (0.6, 0.3, 0.1)),
      "triclinic": ((1, 2), (0.65, 0.35))}
_SPACEGROUPS = {"monoclinic": ("P21/c", "C2/c", "Pc", "Cc", "P21", "C2"),
                "orthorhombic": ("Pmn21", "Pbca", "Pnma", "Cmc21", "Pna21"),
                "triclinic": ("P1", "P-1")}
_VOLUME_PER_ATOM = {"monoclinic": 11.6, "orthorhombic": 11.0, "triclinic": 12.2}


def battery_table(n_rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """A deterministic synthetic table (see the module docstring).

    Args:
        n_rows: rows to draw.
        seed: random seed; the same seed gives the same table.

    Returns:
        DataFrame with the real CSV's columns (``Has Bandstructure`` as bool).
    """
    rng = np.random.default_rng(seed)
    labels = rng.choice(CLASSES, size=n_rows, p=_PRIOR)
    rows = []
    for i, label in enumerate(labels):
        template, atoms = _TEMPLATES[rng.integers(len(_TEMPLATES))]
        formula = template.format(M=_METALS[rng.integers(len(_METALS))])
        zs, p = _Z[label]
        nsites = int(rng.choice(zs, p=p)) * atoms
        volume = nsites * rng.normal(_VOLUME_PER_ATOM[label], 0.5)
        density = rng.normal({"monoclinic": 3.0, "orthorhombic": 3.1, "triclinic": 2.85}[label],
                             0.15)
        rows.append({
            "Materials Id": f"syn-{seed}-{i}", "Formula": formula,
            "Spacegroup": str(rng.choice(_SPACEGROUPS[label])),
            "Formation Energy (eV)": round(float(rng.normal(-2.6, 0.12)), 3),
            "E Above Hull (eV)": round(float(abs(rng.normal(0.05, 0.04))), 3),
            "Band Gap (eV)": round(float(rng.uniform(0.3, 3.9)), 3),
            "Nsites": nsites, "Density (gm/cc)": round(float(density), 3),
            "Volume": round(float(volume), 3), "Has Bandstructure": bool(rng.random() < 0.8),
            "Crystal System": str(label),
        })
    return pd.DataFrame(rows, columns=list(HEADER))


def write_battery_csv(path: str | Path, n_rows: int = 240, seed: int = 0,
                      with_label: bool = True) -> Path:
    """Write :func:`battery_table` as a CSV in the real file's format (``TRUE``/``FALSE``).

    Args:
        path: output CSV.
        n_rows, seed: see :func:`battery_table`.
        with_label: False drops ``Crystal System`` (a prediction input).

    Returns:
        ``path``.
    """
    df = battery_table(n_rows, seed)
    header = list(HEADER if with_label else HEADER[:-1])
    rows = [["TRUE" if v is True else "FALSE" if v is False else v for v in r]
            for r in df[header].itertuples(index=False)]
    write_csv(path, header, rows)
    return Path(path)
