"""TPE search of FRE's (B, X) or the supervision weight lambda (Sec. 4, Figs. 7 and 8).

The paper tunes ``B`` (channels enhanced) and ``X`` (factor) with the Tree-structured Parzen
Estimator in 50 trials, and the supervision baseline's ``lambda`` in 15, maximising validation
mIoU. Here an optuna ``TPESampler`` drives the same objective; the study lives in SQLite, so a
killed search resumes where it stopped: trials left ``RUNNING`` by the dead process are marked
failed and their parameters queued again, then only the missing trials are run.

Outputs in ``OUT``: ``trials/trial_NNN/`` (one run folder per trial), ``trials.csv``,
``search_<space>.png`` (scatter of the trials coloured by mIoU, like Figs. 7/8) and
``best_<space>.yaml`` (the input config with the best parameters filled in). The spaces are
registered in :mod:`.search_spaces`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from ensemblab.io import atomic_write_text, save_figure, write_csv  # noqa: E402
from ensemblab.projects.fre_unet.commands import train_run  # noqa: E402
from ensemblab.projects.fre_unet.search_spaces import search_space  # noqa: E402


def apply_params(cfg: dict[str, Any], space: str, params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` with the parameters of the search space ``space`` set."""
    cfg = copy.deepcopy(cfg)
    search_space(space).apply(cfg, params)
    return cfg


def best_val_miou(run_dir: Path) -> float:
    """The highest ``val/miou`` logged by a run."""
    df = pd.read_csv(run_dir / "logs" / "metrics.csv")
    return float(df["val/miou"].max())


def _recover(study: optuna.Study) -> int:
    """Fail trials a killed process left RUNNING and queue their parameters again."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, skip_if_exists=True)
    return len(stale)


def run_search(cfg: dict[str, Any], data: str | Path, out: str | Path, space: str = "fre",
               trials: int = 50, study: str | None = None, device: str = "auto",
               seed: int = 0, progress_bar: bool = False) -> optuna.Study:
    """Run (or resume) a TPE study until it holds ``trials`` completed trials.

    Args:
        cfg: resolved training config (the schedule each trial trains with).
        data: dataset folder.
        out: output folder.
        space: a registered search space: ``fre`` (B, X), ``supervision`` (lambda), ...
        trials: completed trials wanted in total (resuming counts earlier ones).
        study: optuna storage URL; default ``sqlite:///OUT/study.db``.
        device: training device.
        seed: seeds the TPE sampler.
    """
    searched = search_space(space)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = study or f"sqlite:///{(out / 'study.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, trials // 3)))
    st = optuna.create_study(study_name=f"fre_unet_{space}", storage=storage, sampler=sampler,
                             direction="maximize", load_if_exists=True)
    recovered = _recover(st)
    done = len(st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    print(f"study {storage}: {done} trials complete, {recovered} interrupted re-queued, "
          f"{max(0, trials - done)} to run", flush=True)

    def objective(trial: optuna.Trial) -> float:
        params = searched.suggest(trial, cfg)
        run_dir = out / "trials" / f"trial_{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        train_run(apply_params(cfg, space, params), data, run_dir, device=device,
                  progress_bar=progress_bar)
        value = best_val_miou(run_dir)
        print(f"trial {trial.number}: {params} -> val mIoU {value:.4f}", flush=True)
        return value

    if trials > done:
        st.optimize(objective, n_trials=trials - done)
    write_report(st, cfg, space, out)
    return st


def write_report(study: optuna.Study, cfg: dict[str, Any], space: str, out: Path) -> None:
    """``trials.csv``, the scatter plot and ``best_<space>.yaml``."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    searched = search_space(space)
    keys = list(searched.params)
    write_csv(out / "trials.csv", ["number", *keys, "val_miou"],
              [[t.number, *[t.params[k] for k in keys], t.value] for t in complete])
    best = study.best_trial
    fig, ax = plt.subplots(figsize=(6, 4.5))
    searched.plot(ax, complete, best)
    values = [t.value for t in complete]
    ax.set_title(f"TPE search ({space}, {len(complete)} trials, val mIoU "
                 f"{100 * min(values):.1f}-{100 * max(values):.1f} %)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, out / f"search_{space}.png")
    best_cfg = apply_params(cfg, space, best.params)
    best_cfg["data"]["root"] = None  # this machine's dataset path is not part of the result
    header = (f"# Best of {len(complete)} TPE trials ({space}): {best.params}, "
              f"val mIoU {best.value:.4f}\n")
    atomic_write_text(out / f"best_{space}.yaml", header + yaml.safe_dump(best_cfg,
                                                                          sort_keys=False))
