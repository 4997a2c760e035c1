"""Turn a validated table into model inputs: scaled numbers, encoded categories, compositions.

:class:`TabularPreprocessor` is fitted on the training rows only (inside each fold) and then
applied to validation / test / prediction rows, so no statistic of held-out rows leaks into
training. It produces

- ``x_num`` float32[N, F]: numeric columns (optionally sign-log transformed ``sign(x) *
  log1p(|x|)`` first, which tames the heavy right tails of cell volume and site counts), the
  element fractions of a formula column (:mod:`ensemblab.tabular.composition`), and — with
  ``encoding="onehot"`` — one 0/1 column per training category; all standardised to zero mean
  and unit variance on the training rows (one-hot and fraction columns included, which keeps
  every input on one scale for the DNN and the SVM);
- ``x_cat`` int64[N, K]: with ``encoding="embedding"``, the category index of each categorical
  column (0 = unseen in training, 1.. = training categories), for ``nn.Embedding`` tables of
  sizes :attr:`cardinalities` learned by the DNN (:mod:`ensemblab.tabular.dnn`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensemblab.errors import EnsemblabError
from ensemblab.tabular.composition import composition_matrix

ENCODINGS = ("onehot", "embedding")
"""Encodings of the categorical columns."""

@dataclass
class TabularFeatures:
    """Model inputs for N rows.

    Attributes:
        x_num: float32[N, F] standardised numeric / one-hot / composition features.
        x_cat: int64[N, K] category indices for embeddings (K = 0 with one-hot encoding).
    """

    x_num: np.ndarray
    x_cat: np.ndarray


class TabularPreprocessor:
    """Fit-on-train feature builder (see the module docstring).

    Args:
        numeric: numeric column names (bool columns are read as 0/1).
        categorical: categorical column names (any values; compared as strings).
        formula: name of a chemical-formula column turned into element fractions, or None.
        log_numeric: subset of ``numeric`` to pass through ``sign(x) * log1p(|x|)`` first.
        encoding: ``"onehot"`` or ``"embedding"`` for the categorical columns.
    """

    def __init__(
        self,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        formula: str | None = None,
        log_numeric: Sequence[str] = (),
        encoding: str = "onehot",
    ):
        if encoding not in ENCODINGS:
            raise EnsemblabError(f"categorical encoding {encoding!r}: use one of {ENCODINGS}")
        unknown = set(log_numeric) - set(numeric)
        if unknown:
            raise EnsemblabError(f"log_numeric columns {sorted(unknown)} are not numeric columns")
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.formula = formula
        self.log_numeric = list(log_numeric)
        self.encoding = encoding
        self.categories_: dict[str, list[str]] = {}
        self.elements_: list[str] = []
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    @property
    def columns(self) -> list[str]:
        """Every input column the preprocessor reads."""
        return self.numeric + self.categorical + ([self.formula] if self.formula else [])

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table size per categorical column (training categories + 1 for unseen)."""
        if self.encoding != "embedding":
            return []
        return [len(self.categories_[c]) + 1 for c in self.categorical]

    @property
    def feature_names(self) -> list[str]:
        """Names of the ``x_num`` columns, in order."""
        names = [f"log({c})" if c in self.log_numeric else c for c in self.numeric]
        names += [f"frac({el})" for el in self.elements_]
        if self.encoding == "onehot":
            names += [f"{c}={v}" for c in self.categorical for v in self.categories_[c]]
        return names

    def fit(self, df: pd.DataFrame, vocabulary: pd.DataFrame | None = None) -> TabularPreprocessor:
        """Learn categories, the element vocabulary and the scaling from training rows.

        Args:
            df: training rows (the scaling statistics come from these).
            vocabulary: rows whose categories / elements define the columns (default ``df``);
                a superset of ``df`` gives several preprocessors one column layout (e.g. one
                per inner fold of the same training set). Labels are never read.
        """
        self._check(df)
        vocab = df if vocabulary is None else vocabulary
        self.categories_ = {c: sorted(vocab[c].astype(str).unique()) for c in self.categorical}
        if self.formula:
            _, self.elements_ = composition_matrix(vocab[self.formula])
        raw = self._raw_numeric(df)
        self.mean_ = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        return self

    def transform(self, df: pd.DataFrame) -> TabularFeatures:
        """Features of any rows with the fitted statistics (unseen categories -> zeros / 0)."""
        if self.mean_ is None:
            raise EnsemblabError("TabularPreprocessor.transform called before fit")
        self._check(df)
        x_num = ((self._raw_numeric(df) - self.mean_) / self.scale_).astype(np.float32)
        if self.encoding == "embedding" and self.categorical:
            x_cat = np.stack([self._codes(df, c) for c in self.categorical], axis=1)
        else:
            x_cat = np.zeros((len(df), 0), dtype=np.int64)
        return TabularFeatures(x_num=x_num, x_cat=x_cat)

    def fit_transform(self, df: pd.DataFrame) -> TabularFeatures:
        """``fit(df)`` then ``transform(df)``."""
        return self.fit(df).transform(df)

    def _check(self, df: pd.DataFrame) -> None:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise EnsemblabError(f"table lacks feature columns {missing}")

    def _codes(self, df: pd.DataFrame, column: str) -> np.ndarray:
        index = {v: i + 1 for i, v in enumerate(self.categories_[column])}
        return np.array([index.get(v, 0) for v in df[column].astype(str)], dtype=np.int64)

    def _raw_numeric(self, df: pd.DataFrame) -> np.ndarray:
        parts = []
        if self.numeric:
            num = df[self.numeric].astype(float).to_numpy()
            for j, c in enumerate(self.numeric):
                if c in self.log_numeric:
                    num[:, j] = np.sign(num[:, j]) * np.log1p(np.abs(num[:, j]))
            parts.append(num)
        if self.formula:
            parts.append(composition_matrix(df[self.formula], self.elements_)[0].astype(float))
        if self.encoding == "onehot" and self.categorical:
            for c in self.categorical:
                values = df[c].astype(str).to_numpy()
                parts.append((values[:, None] == np.array(self.categories_[c])[None, :]) * 1.0)
        if not parts:
            return np.zeros((len(df), 0))
        return np.concatenate(parts, axis=1)
