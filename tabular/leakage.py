"""Flag features whose value determines the label on the training rows (target leakage).

The battery table's Spacegroup column is the textbook case: each of its 44 symbols belongs to
exactly one crystal system, so a model can score 1.0 by lookup without learning anything
about the materials. The check has to catch such columns without flagging every continuous
feature, because a column whose values are all distinct also "determines" the label
row-by-row (each value is seen once, with one label) while telling nothing.

The rule (per feature, training rows only):

1. Group rows by the feature's value (numbers compared exactly; missing values ignored).
   A *supported* value is one seen on at least ``min_support`` rows (default 2) — a value seen
   once proves nothing, which is what keeps unique continuous values out.
2. *Purity* = share of the rows with a supported value that carry their value's majority
   label. *Coverage* = share of all rows that have a supported value.
3. The feature is flagged when purity >= ``min_purity`` (default 1.0: the value determines
   the label exactly), coverage >= ``min_coverage`` (default 0.5: the lookup works for most
   rows, not for a handful of repeated values), there are at least ``min_values`` supported
   values (default 3: a binary flag that happens to align with a 2-class label is reported
   only if it really separates several values), and purity beats the majority-class rate
   by ``min_gain`` (default 0.1: a near-constant label makes any grouping look "pure").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class LeakReport:
    """One feature's leakage statistics.

    Attributes:
        feature: column name.
        purity: share of supported rows labelled with their value's majority label.
        coverage: share of rows whose value is supported.
        n_values: number of supported values.
        leaky: whether the rule flags it.
    """

    feature: str
    purity: float
    coverage: float
    n_values: int
    leaky: bool

    def describe(self) -> str:
        """One line, e.g. ``Spacegroup: 44 values, purity 1.00 on 99% of rows -> LEAKY``."""
        verdict = "LEAKY (value determines the label)" if self.leaky else "ok"
        return (f"{self.feature}: {self.n_values} repeated values, purity {self.purity:.2f} "
                f"on {self.coverage:.0%} of rows -> {verdict}")


def leakage_report(df: pd.DataFrame, label: str, features: Sequence[str] | None = None,
                   min_support: int = 2, min_purity: float = 1.0, min_coverage: float = 0.5,
                   min_values: int = 3, min_gain: float = 0.1) -> list[LeakReport]:
    """Leakage statistics of every feature of a training table (see the module rule).

    Args:
        df: training rows, features and label.
        label: label column.
        features: columns to check (default: all but the label).
        min_support, min_purity, min_coverage, min_values, min_gain: the rule's thresholds.

    Returns:
        One :class:`LeakReport` per feature, in column order.
    """
    features = [c for c in df.columns if c != label] if features is None else list(features)
    y = df[label].astype(str)
    majority_rate = float(y.value_counts(normalize=True).iloc[0]) if len(y) else 1.0
    reports = []
    for name in features:
        values = df[name]
        keep = values.notna()
        counts = pd.crosstab(values[keep], y[keep])  # [n_values, n_labels]
        sizes = counts.sum(axis=1)
        supported = counts[sizes >= min_support]
        n_rows = int(supported.to_numpy().sum())
        purity = float(supported.max(axis=1).sum() / n_rows) if n_rows else 0.0
        coverage = n_rows / len(df) if len(df) else 0.0
        leaky = (n_rows > 0 and purity >= min_purity and coverage >= min_coverage
                 and len(supported) >= min_values and purity >= majority_rate + min_gain)
        reports.append(LeakReport(name, purity, coverage, len(supported), bool(leaky)))
    return reports


def leaky_features(df: pd.DataFrame, label: str, features: Sequence[str] | None = None,
                   **thresholds) -> list[str]:
    """Names of the features :func:`leakage_report` flags (thresholds passed through)."""
    return [r.feature for r in leakage_report(df, label, features, **thresholds) if r.leaky]
