"""Run records: which project and kind of run made a run folder, and the check of it.

Every run folder holds ``run.json``, written atomically when the folder is made::

    {"project": "mineral_ruel", "kind": "learner", "ensemblab": "0.1.0"}

Kinds are the project's own words: a trained model (``model``, mineral_ruel's ``learner``,
sartorius_cells' ``member``), or a folder that verbs accept in a run's place (``ensemble``:
mineral_ruel / sartorius_cells ensemble outputs; ``seeds``: fre_unet multi-seed folders). Every
verb that takes a run folder calls :func:`check_run` first, so a run of another project or kind
is one line naming both, not a crash deep in the model code. Nothing here imports torch.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ensemblab import __version__
from ensemblab.config import CONFIG_NAME, load_run_config
from ensemblab.errors import ConfigError, DataError
from ensemblab.io import write_json

RUN_RECORD = "run.json"
# Share of a config's keys (top level and one below) that a project's bundled configs must
# hold for a run folder without a record to be taken as that project's.
MIN_CONFIG_MATCH = 0.8


@dataclass(frozen=True)
class RunRecord:
    """What made a run folder: the contents of ``RUN/run.json``, or what was inferred.

    Attributes:
        project: the project, e.g. ``"mineral_ruel"``.
        kind: the kind of run, e.g. ``"learner"``; None when inferred from the saved config of
            a folder without a record (a trained run, of no recorded kind).
        ensemblab: the version that wrote the record; None when there is no record.
    """

    project: str
    kind: str | None
    ensemblab: str | None = None

    def describe(self) -> str:
        """``a mineral_ruel run (learner)``, as error messages name a run."""
        return describe_run(self.project, [self.kind] if self.kind else None)


def describe_run(project: str, kinds: Iterable[str] | None = None) -> str:
    """``a <project> run`` and, when given, its kinds: ``a fre_unet run (model or seeds)``."""
    kinds = list(kinds or ())
    return f"a {project} run" + (f" ({' or '.join(kinds)})" if kinds else "")


def write_run_record(run_dir: str | Path, project: str, kind: str) -> Path:
    """Write ``run_dir/run.json`` (project, kind, ensemblab version) atomically.

    Args:
        run_dir: the run folder (created when missing).
        project: the project that makes the folder.
        kind: the kind of run (``model``, ``learner``, ``member``, ``ensemble``, ``seeds``).

    Returns:
        The record file.
    """
    path = Path(run_dir) / RUN_RECORD
    write_json(path, {"project": project, "kind": kind, "ensemblab": __version__})
    return path


def read_run_record(run_dir: str | Path) -> RunRecord | None:
    """The record of a run folder, or None when the folder holds none.

    Raises:
        DataError: ``run.json`` is unreadable or lacks ``project`` / ``kind``.
    """
    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a valid run record ({exc})") from None
    if not isinstance(data, dict) or not all(
            isinstance(data.get(key), str) and data[key] for key in ("project", "kind")):
        raise DataError(path, "not a valid run record (needs the strings 'project' and 'kind')")
    version = data.get("ensemblab")
    return RunRecord(data["project"], data["kind"], version if isinstance(version, str) else None)


def check_run(run_dir: str | Path, project: str, kinds: Sequence[str] | None = None,
              verb: str | None = None, markers: Mapping[str, str] | None = None) -> RunRecord:
    """Check that ``run_dir`` is a run of ``project`` and of one of ``kinds``; its record.

    The one check every verb that takes a run folder makes before reading anything else in it.
    The record is ``run.json``. A folder without one is taken as the run of the one
    project whose bundled configs hold its ``config.yaml``'s keys
    (:func:`infer_project`; its kind is then not checked), else, when it holds a file matching
    one of ``markers``, as a run of ``project`` of that marker's kind.

    Args:
        run_dir: the folder given as ``--run`` (or a member, a seed run ...).
        project: the project whose verb reads it.
        kinds: the kinds of run the verb accepts; None accepts any.
        verb: the verb, for messages (``"evaluate"``, ``"train --resume"``).
        markers: ``{glob pattern: kind}`` of folders of runs without a record, e.g.
            ``{"ensemble.json": "ensemble"}``.

    Returns:
        The record (recorded or inferred).

    Raises:
        ConfigError: one line: the folder is not a run folder, holds a run of another project
            or kind (``RUN is a battery_crystal run (model); mineral_ruel evaluate needs a
            mineral_ruel run (learner)``), or holds no record and its config does not show
            which project made it.
        DataError: the folder does not exist, or its ``run.json`` or ``config.yaml`` is
            unreadable.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(run_dir, "run folder not found")
    record = read_run_record(run_dir) or _unrecorded_run(run_dir, project, markers or {})
    if record.project != project or (kinds and record.kind and record.kind not in kinds):
        needs = f"{project} {verb}" if verb else project
        raise ConfigError(f"{run_dir} is {record.describe()}; {needs} needs "
                          f"{describe_run(project, kinds)}")
    return record


def _unrecorded_run(run_dir: Path, project: str, markers: Mapping[str, str]) -> RunRecord:
    """The record of a folder without ``run.json``: from its config, else its markers."""
    if not (run_dir / CONFIG_NAME).is_file():
        for pattern, kind in markers.items():
            if next(iter(run_dir.glob(pattern)), None) is not None:
                return RunRecord(project, kind)
        raise ConfigError(f"{run_dir}: not a run folder (no {RUN_RECORD}, no {CONFIG_NAME})")
    try:
        cfg = load_run_config(run_dir)
    except yaml.YAMLError as exc:
        raise DataError(run_dir / CONFIG_NAME,
                        f"invalid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError as exc:
        raise DataError(run_dir / CONFIG_NAME, f"not UTF-8 text ({exc.reason})") from None
    found = infer_project(cfg) if isinstance(cfg, dict) else []
    if len(found) != 1:
        fits = f"it fits {' and '.join(found)}" if found else "it fits no installed project"
        raise ConfigError(f"{run_dir} holds no ensemblab run record ({RUN_RECORD}) and its "
                          f"{CONFIG_NAME} does not show which project made it ({fits})")
    return RunRecord(found[0], None)


def infer_project(cfg: Mapping[str, Any]) -> list[str]:
    """The installed projects whose bundled configs best hold a saved config's keys.

    A key is a top-level name or ``name.sub`` one level below. A project's share is the part
    of the config's keys that some YAML file in its ``configs/`` folder holds; the projects
    with the highest share, when it reaches :data:`MIN_CONFIG_MATCH`, are returned.

    Args:
        cfg: a run's resolved config.

    Returns:
        The best-fitting project names: one when the config shows its project, several when
        it fits them alike, none when it fits none.
    """
    keys = config_keys(cfg)
    if not keys:
        return []
    shares = {name: len(keys & known) / len(keys) for name, known in _project_keys().items()}
    best = max(shares.values(), default=0.0)
    return [name for name, share in shares.items() if share == best and best >= MIN_CONFIG_MATCH]


def config_keys(cfg: Mapping[str, Any]) -> frozenset[str]:
    """The top-level keys of a config and, below mappings, ``key.sub``; ``_base_`` left out."""
    keys = set()
    for key, value in cfg.items():
        if key == "_base_":
            continue
        keys.add(str(key))
        if isinstance(value, Mapping):
            keys.update(f"{key}.{sub}" for sub in value)
    return frozenset(keys)


@functools.cache
def _project_keys() -> dict[str, frozenset[str]]:
    """``{project: the keys (config_keys) of every YAML file in its configs/ folder}``."""
    from ensemblab.installed_projects import installed_projects

    found = {}
    for name, entry in installed_projects().items():
        keys: set[str] = set()
        try:
            files = sorted(entry.config_dir().rglob("*.yaml"))
        except ImportError:  # declared but not importable: it made no run here
            continue
        for path in files:
            try:
                cfg = yaml.safe_load(path.read_text())
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                continue
            if isinstance(cfg, dict):
                keys |= config_keys(cfg)
        found[name] = frozenset(keys)
    return found
