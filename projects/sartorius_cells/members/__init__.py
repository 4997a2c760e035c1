"""Ensemble members, one module per kind (``maskrcnn.py``, ``yolox.py``, ``upernet.py``) with its
network and data code beside it.

Importing this package imports every module in it, so each kind registers itself in
:data:`MEMBERS`: a new kind is one new module here, nothing else to edit.
"""

import importlib
import pkgutil

from ensemblab.projects.sartorius_cells.members.base import (
    MEMBERS,
    LoadedMember,
    MemberKind,
    load_member,
    member_kind,
    register_member,
    resolve_classes,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["MEMBERS", "LoadedMember", "MemberKind", "load_member", "member_kind",
           "register_member", "resolve_classes"]
