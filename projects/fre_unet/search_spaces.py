"""What a TPE search varies: search spaces, each registered by name (``search --space NAME``).

A space samples a point from an optuna trial, writes it into a training config, names its
parameters (the columns of ``trials.csv``) and draws the trials (the paper's Figs. 7 and 8). A
new space is one class that registers itself::

    @SEARCH_SPACES.register("lr")
    class LearningRateSpace(SearchSpace):
        params = ("lr",)  # suggest(trial, cfg) -> {"lr": ...}; apply(cfg, params) sets it
        ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ensemblab.projects.fre_unet.se_unet import FULL_WIDTHS
from ensemblab.registry import Registry

SEARCH_SPACES = Registry("search space")


class SearchSpace(ABC):
    """The parameters one search varies.

    Attributes:
        params: the parameter names, in the order ``trials.csv`` lists them.
    """

    params: tuple[str, ...] = ()

    @abstractmethod
    def suggest(self, trial: Any, cfg: dict[str, Any]) -> dict[str, Any]:
        """Sample one point ``{param: value}`` from an ``optuna.Trial`` for the config ``cfg``."""

    @abstractmethod
    def apply(self, cfg: dict[str, Any], params: dict[str, Any]) -> None:
        """Write ``params`` into ``cfg`` (a copy the caller owns)."""

    def plot(self, ax: Any, complete: Sequence[Any], best: Any) -> None:
        """Draw the completed trials on the matplotlib axes ``ax``: by default the first
        parameter against validation mIoU, the ``best`` trial starred."""
        name = self.params[0]
        ax.scatter([t.params[name] for t in complete], [t.value for t in complete], s=40)
        ax.scatter([best.params[name]], [best.value], marker="*", s=250, c="red",
                   label=f"best {name}={best.params[name]:.3f}")
        ax.set_xlabel(name)
        ax.set_ylabel("validation mIoU")


def search_space(name: str) -> SearchSpace:
    """The space registered as ``name`` (unknown: a one-line ConfigError naming the closest)."""
    return SEARCH_SPACES.get(name)()


@SEARCH_SPACES.register("fre")
class FreSpace(SearchSpace):
    """FRE's ``B`` (channels enhanced) in [1, C_deep] and ``X`` (factor), log-uniform in
    ``search.factor_range`` (``configs/baseline.yaml``: [1, 1000]); the paper runs 50 trials
    (Fig. 7)."""

    params = ("B", "X")

    def suggest(self, trial, cfg):
        deep = max(4, round(FULL_WIDTHS[-1] * float(cfg["model"]["width"])))
        lo, hi = cfg["search"]["factor_range"]
        return {"B": trial.suggest_int("B", 1, deep),
                "X": trial.suggest_float("X", float(lo), float(hi), log=True)}

    def apply(self, cfg, params):
        model = cfg.setdefault("model", {})
        model["fre"] = {**(model.get("fre") or {}), "num_enhanced": int(params["B"]),
                        "factor": float(params["X"])}

    def plot(self, ax, complete, best):
        sc = ax.scatter([t.params["B"] for t in complete], [t.params["X"] for t in complete],
                        c=[t.value for t in complete], cmap="viridis", s=40)
        ax.scatter([best.params["B"]], [best.params["X"]], marker="*", s=250, c="red",
                   label=f"best B={best.params['B']}, X={best.params['X']:.0f}")
        ax.set_yscale("log")
        ax.set_xlabel("B (channels enhanced)")
        ax.set_ylabel("X (factor)")
        ax.figure.colorbar(sc, ax=ax, label="validation mIoU")


@SEARCH_SPACES.register("supervision")
class SupervisionSpace(SearchSpace):
    """The supervision baseline's ``lambda`` in [0, 1]; the paper runs 15 trials (Fig. 8)."""

    params = ("lambda",)

    def suggest(self, trial, cfg):
        return {"lambda": trial.suggest_float("lambda", 0.0, 1.0)}

    def apply(self, cfg, params):
        cfg.setdefault("model", {})["supervision"] = True
        cfg.setdefault("train", {})["supervision_lambda"] = float(params["lambda"])
