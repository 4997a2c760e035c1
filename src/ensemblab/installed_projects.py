"""Projects found through the ``ensemblab.projects`` entry-point group.

A project is a package whose ``cli`` module has ``register(subparsers)`` (adding a
``<name>`` sub-parser with its verbs) and, beside it, an optional ``demo`` module with
``run_demo(out_dir, device) -> str``, an optional ``members`` package (ensemble member kinds)
and a ``configs/`` folder. A distribution declares its
projects in ``pyproject.toml``::

    [project.entry-points."ensemblab.projects"]
    my_paper = "my_package.my_paper.cli"

and after ``pip install`` the console script, ``ensemblab.PROJECTS`` and the demo find it: a
sixth project edits no core file. ``ensemblab`` declares its own five the same way.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from types import ModuleType

ENTRY_POINT_GROUP = "ensemblab.projects"

# Entry points carry no order (setuptools writes them sorted), so the papers keep the order of
# DESIGN.md's table here; any other project follows them, by name. Nothing is found through it.
PAPER_ORDER = ("sartorius_cells", "mineral_ruel", "fre_unet", "crossattn_vl", "battery_crystal")


@dataclass(frozen=True)
class ProjectEntry:
    """One installed project.

    Attributes:
        name: the sub-command, e.g. ``"mineral_ruel"``.
        cli_module: dotted name of the module with ``register(subparsers)``.
    """

    name: str
    cli_module: str

    @property
    def package(self) -> str:
        """Dotted name of the project package (the ``cli`` module's parent)."""
        return self.cli_module.rpartition(".")[0]

    def load_cli(self) -> ModuleType | None:
        """The imported ``cli`` module, or None when it is not installed."""
        return _import_if_present(self.cli_module)

    def load_demo(self) -> ModuleType | None:
        """The imported ``demo`` module beside ``cli``, or None when the project has none."""
        return _import_if_present(f"{self.package}.demo")

    def load_members(self) -> ModuleType | None:
        """The imported ``members`` package beside ``cli`` (its modules register the project's
        ensemble member kinds in :data:`ensemblab.ensemble.members.MEMBERS`), or None when the
        project has none."""
        return _import_if_present(f"{self.package}.members")

    def config_dir(self) -> Path:
        """The project's ``configs/`` folder."""
        return Path(importlib.import_module(self.package).__file__).parent / "configs"


@functools.cache
def installed_projects() -> dict[str, ProjectEntry]:
    """Every project declared in the ``ensemblab.projects`` group, papers first.

    Returns:
        ``{name: ProjectEntry}`` in :data:`PAPER_ORDER`, then the others sorted by name. When two
        distributions declare one name, the first on ``sys.path`` wins.
    """
    found: dict[str, ProjectEntry] = {}
    # Every copy of the metadata, not just the first per distribution as ``entry_points()``
    # reads: a stale ``ensemblab.egg-info`` that a source build leaves in the repository root
    # comes first on ``sys.path`` when Python runs from there, and must not hide the projects.
    for dist in distributions():
        for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            found.setdefault(ep.name, ProjectEntry(name=ep.name, cli_module=ep.module))
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    order = sorted(found, key=lambda name: (rank.get(name, len(rank)), name))
    return {name: found[name] for name in order}


def _import_if_present(module: str) -> ModuleType | None:
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except ModuleNotFoundError:  # a parent package is missing
        return None
    return importlib.import_module(module)
