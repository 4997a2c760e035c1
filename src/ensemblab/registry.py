"""A name -> object registry (detectron2 ``Registry``, timm ``register_model`` habit).

A new kind of component is one new module that registers itself; shared code looks kinds up by
name and never keeps an ``if kind == ...`` chain or a list of kinds to edit.

Example::

    MEMBERS = Registry("member kind")

    @MEMBERS.register("maskrcnn")
    class MaskRCNNMember: ...

    MEMBERS.get("maskrcnn")      # -> MaskRCNNMember
    MEMBERS.get("maskrcn")       # ConfigError: unknown member kind 'maskrcn' (did you mean ...)

A registry whose entries live in modules that nothing else imports takes a ``discover`` function
(e.g. one importing those modules of every installed project); the first lookup calls it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ensemblab.errors import ConfigError


class Registry:
    """Maps names to objects (classes, factories, specs).

    Args:
        what: what the names are, for messages, e.g. ``"image encoder"`` or ``"member kind"``.
        discover: called once, before the first lookup, to import the modules that register
            entries (default: none; the entries' modules are imported by their users).
    """

    def __init__(self, what: str, discover: Callable[[], object] | None = None):
        self.what = what
        self._items: dict[str, Any] = {}
        self._discover = discover

    def register(self, name: str | None = None, obj: Any = None) -> Any:
        """Register ``obj`` under ``name`` (its ``__name__`` when omitted).

        Used as a decorator (``@REG.register("name")``) or called directly
        (``REG.register("name", obj)``). Registering a taken name is an error.
        """

        def add(item: Any) -> Any:
            key = name or item.__name__
            if key in self._items:
                raise ValueError(f"{self.what} {key!r} is already registered")
            self._items[key] = item
            return item

        if obj is not None:
            return add(obj)
        return add

    def get(self, name: str) -> Any:
        """The object registered as ``name``.

        Raises:
            ConfigError: unknown name; the message lists the closest names and all names.
        """
        items = self._discovered()
        if name not in items:
            raise ConfigError(self.unknown_message(name))
        return items[name]

    def unknown_message(self, name: str) -> str:
        """One line saying ``name`` is unknown, with close matches and the known names."""
        return unknown_name_message(self.what, name, self.names())

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._discovered())

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, object)`` pairs in name order."""
        return ((k, self._items[k]) for k in self.names())

    @contextmanager
    def scope(self) -> Iterator[Registry]:
        """A block whose registrations are undone at its end (a test or a notebook that tries
        an entry out without leaving it registered)."""
        saved = dict(self._discovered())
        try:
            yield self
        finally:
            self._items = saved

    def _discovered(self) -> dict[str, Any]:
        """The entries, after the ``discover`` function (if any) has run once."""
        if self._discover is not None:
            discover, self._discover = self._discover, None  # once, also when it re-enters
            discover()
        return self._items

    def __contains__(self, name: object) -> bool:
        return name in self._discovered()

    def __iter__(self) -> Iterator[str]:
        """The registered names, sorted, as they are when iterated (``tuple(REG)`` in a check
        sees entries registered after the check was set up)."""
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._discovered())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"


def unknown_name_message(what: str, name: object, known: Iterable[str]) -> str:
    """``unknown <what> '<name>' (did you mean <closest>?); known: <all>`` on one line.

    Args:
        what: what the names are, e.g. ``"member kind"``.
        name: the name asked for.
        known: the valid names, in the order to list them.
    """
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown {what} {name!r}{hint}; known: {', '.join(known)}"


def build(registry: Registry, name: str, **kwargs: Any) -> Any:
    """Look ``name`` up in ``registry`` and call it with ``kwargs`` (a factory or a class)."""
    factory: Callable[..., Any] = registry.get(name)
    return factory(**kwargs)
