"""The registry of ensemble member kinds, which manifests check their members against.

A project registers each kind of member it trains in :data:`MEMBERS` from a module of its
``members`` package (beside its ``cli`` module)::

    @MEMBERS.register("maskrcnn")
    class MaskRCNNMember: ...

The first lookup imports the ``members`` package of every installed project (the
``ensemblab.projects`` entry points), so a manifest accepts the kinds of all installed projects
and a new kind is one new module of its project, with no list to edit here.
"""

from __future__ import annotations

from ensemblab.installed_projects import installed_projects
from ensemblab.registry import Registry


def _import_project_members() -> None:
    for entry in installed_projects().values():
        entry.load_members()


MEMBERS = Registry("member kind", discover=_import_project_members)
