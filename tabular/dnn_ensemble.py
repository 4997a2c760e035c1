"""A DNN classifier with nested hyper-parameter selection and a cross-validation ensemble.

:class:`DNNEnsembleClassifier` is what the battery evaluation calls "DNN". Given only the
training rows of an outer split it

1. cuts them into ``inner_folds`` stratified (optionally formula-grouped) inner folds and fits
   one preprocessor per inner-training part (scaling never sees its inner-validation rows; the
   category / element columns are those of all training rows, so every fold has one layout);
2. trains, for every hyper-parameter setting of ``grid`` and every inner fold, one network on
   the inner-training rows with early stopping on the inner-validation rows — all settings of
   one hidden shape as members of one :class:`ensemblab.tabular.dnn.MemberMLPModule`;
3. picks the setting with the best out-of-fold macro-F1 on the training rows (ties: lower
   out-of-fold cross-entropy);
4. keeps that setting's ``inner_folds x repeats`` networks and predicts by averaging their
   softmax outputs (a cross-validation bag: every network saw a different ~80 % of the
   training rows, and the test rows were never used for anything).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import groupby

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ensemblab.tabular.dnn import MemberMLP, MemberMLPModule, fit_members
from ensemblab.tabular.preprocess import TabularPreprocessor

DEFAULT_GRID = (
    {"hidden": (64, 64), "dropout": 0.1, "weight_decay": 1e-4},
    {"hidden": (64, 64), "dropout": 0.3, "weight_decay": 1e-3},
)


class DNNEnsembleClassifier:
    """Nested-selection DNN ensemble (see the module docstring).

    Args:
        make_preprocessor: returns a fresh, unfitted :class:`TabularPreprocessor`.
        n_classes: number of classes C (labels are 0..C-1).
        grid: hyper-parameter settings, each ``{"hidden", "dropout", "weight_decay"}``.
        inner_folds: inner cross-validation folds (>= 2).
        repeats: networks per setting and inner fold (different initialisations).
        max_epochs, patience, val_every, lr: training schedule (early stopping after
            ``patience`` validation checks, one every ``val_every`` epochs, without improvement).
        optimizer: the full-batch optimizer (``adam``; see :class:`~.dnn.MemberMLPModule`).
        embedding_dim: width of learned categorical embeddings.
        seed: seeds the inner split and the initialisations.
    """

    def __init__(self, make_preprocessor: Callable[[], TabularPreprocessor], n_classes: int,
                 grid: Sequence[dict] = DEFAULT_GRID, inner_folds: int = 5, repeats: int = 1,
                 max_epochs: int = 300, patience: int = 10, val_every: int = 5,
                 lr: float = 3e-3, embedding_dim: int = 4, seed: int = 0,
                 optimizer: str = "adam"):
        self.make_preprocessor = make_preprocessor
        self.n_classes = n_classes
        self.grid = [dict(g, hidden=tuple(g["hidden"])) for g in grid]
        self.inner_folds = inner_folds
        self.repeats = repeats
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_every = val_every
        self.lr = lr
        self.optimizer = optimizer
        self.embedding_dim = embedding_dim
        self.seed = seed
        self.preprocessors_: list[TabularPreprocessor] = []
        self.net_: MemberMLP | None = None
        self.selected_: dict | None = None
        self.search_: list[dict] = []
        self.member_folds_: list[int] = []

    def fit(self, df: pd.DataFrame, y: np.ndarray, groups: np.ndarray | None = None):
        """Select a setting on inner folds of ``df`` and keep its networks.

        Args:
            df: training rows (validated table).
            y: int[N] labels in 0..C-1.
            groups: optional group id per row (e.g. formula): inner folds keep groups whole.
        """
        y = np.asarray(y, dtype=np.int64)
        k = self.inner_folds
        if groups is None:
            splitter = StratifiedKFold(k, shuffle=True, random_state=self.seed)
            folds = list(splitter.split(df, y))
        else:
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=self.seed)
            folds = list(splitter.split(df, y, groups))
        # one column layout (categories, elements of all training rows), fold-wise scaling
        self.preprocessors_ = [self.make_preprocessor().fit(df.iloc[tr], vocabulary=df)
                               for tr, _ in folds]
        x_fold, c_fold = self._inputs(df, range(k))
        cards = self.preprocessors_[0].cardinalities
        y_t = torch.from_numpy(y)
        n = len(y)
        train = torch.zeros(k, n, dtype=torch.bool)
        val = torch.zeros(k, n, dtype=torch.bool)
        for f, (tr, va) in enumerate(folds):
            train[f, tr] = True
            val[f, va] = True
        self.search_ = []
        kept: list[tuple[MemberMLP, list[int]]] = []
        order = sorted(range(len(self.grid)), key=lambda i: self.grid[i]["hidden"])
        for hidden, idx in groupby(order, key=lambda i: self.grid[i]["hidden"]):
            idx = list(idx)
            # member layout: setting-major, then repeat, then inner fold
            members = [(i, r, f) for i in idx for r in range(self.repeats) for f in range(k)]
            fold_of = [f for _, _, f in members]
            torch.manual_seed(self.seed + 1000 * len(self.search_))
            module = MemberMLPModule(
                n_members=len(members), in_features=x_fold.shape[2], n_classes=self.n_classes,
                hidden=hidden, dropout=[self.grid[i]["dropout"] for i, _, _ in members],
                weight_decay=[self.grid[i]["weight_decay"] for i, _, _ in members],
                cardinalities=cards, embedding_dim=self.embedding_dim, lr=self.lr,
                optimizer=self.optimizer)
            batch = (x_fold[fold_of], c_fold[fold_of], y_t, train[fold_of], val[fold_of])
            fit_members(module, batch, self.max_epochs, self.patience, self.val_every)
            probs = module.predict_proba(batch[0], batch[1]).numpy()  # [M, N, C]
            for i in idx:
                rows = [j for j, (s, _, _) in enumerate(members) if s == i]
                oof = np.zeros((n, self.n_classes))
                for j in rows:
                    va = val[fold_of[j]].numpy()
                    oof[va] += probs[j, va] / self.repeats
                ce = float(-np.mean(np.log(np.clip(oof[np.arange(n), y], 1e-12, None))))
                f1 = float(f1_score(y, oof.argmax(1), average="macro"))
                self.search_.append({**self.grid[i], "hidden": list(hidden),
                                     "oof_macro_f1": f1, "oof_cross_entropy": ce})
                kept.append((module.net, rows))
        best = max(range(len(self.search_)), key=lambda j: (self.search_[j]["oof_macro_f1"],
                                                           -self.search_[j]["oof_cross_entropy"]))
        self.selected_ = self.search_[best]
        net, rows = kept[best]
        self.net_ = _subset(net, rows)
        self.member_folds_ = [j % k for j in range(len(rows))]
        return self

    def _inputs(self, df: pd.DataFrame, folds) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_num[M, N, F], x_cat[M, N, K])`` of ``df``, one preprocessor per listed fold."""
        feats = [self.preprocessors_[f].transform(df) for f in folds]
        return (torch.from_numpy(np.stack([f.x_num for f in feats])),
                torch.from_numpy(np.stack([f.x_cat for f in feats])))

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """float[N, C]: mean softmax of the kept networks (each with its own preprocessor)."""
        x, x_cat = self._inputs(df, self.member_folds_)
        self.net_.eval()
        with torch.no_grad():
            probs = torch.softmax(self.net_(x, x_cat), dim=-1)
        return probs.mean(0).numpy()

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """int[N]: arg-max of :meth:`predict_proba`."""
        return self.predict_proba(df).argmax(1)


def _subset(net: MemberMLP, rows: list[int]) -> MemberMLP:
    """A copy of ``net`` holding only members ``rows`` (plain module, picklable)."""
    idx = torch.tensor(rows)
    hidden = [w.shape[2] for w in net.weights][:-1]
    sub = MemberMLP(len(rows), net.weights[0].shape[1] - sum(e.shape[2] for e in net.embeddings),
                    net.weights[-1].shape[2], hidden=hidden,
                    dropout=net.dropout[idx].tolist(),
                    cardinalities=[e.shape[1] for e in net.embeddings],
                    embedding_dim=net.embeddings[0].shape[2] if len(net.embeddings) else 4)
    with torch.no_grad():
        for dst, src in zip(sub.parameters(), net.parameters()):
            dst.copy_(src[idx])
    return sub.eval()
