"""A name -> object registry (detectron2 ``Registry``, timm ``register_model`` habit).

A new kind of component is one new module that registers itself; shared code looks kinds up by
name and never keeps an ``if kind == ...`` chain or a list of kinds to edit.

Example::

    MEMBERS = Registry("member kind")

    @MEMBERS.register("maskrcnn")
    class MaskRCNNMember: ...

    MEMBERS.get("maskrcnn")      # -> MaskRCNNMember
    MEMBERS.get("maskrcn")       # ConfigError: unknown member kind 'maskrcn' (did you mean ...)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

from ensemblab.errors import ConfigError


class Registry:
    """Maps names to objects (classes, factories, specs).

    Args:
        what: what the names are, for messages, e.g. ``"image encoder"`` or ``"member kind"``.
    """

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, Any] = {}

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
        if name not in self._items:
            raise ConfigError(self.unknown_message(name))
        return self._items[name]

    def unknown_message(self, name: str) -> str:
        """One line saying ``name`` is unknown, with close matches and the known names."""
        close = difflib.get_close_matches(str(name), list(self._items), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"unknown {self.what} {name!r}{hint}; known: {', '.join(self.names())}"

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, object)`` pairs in name order."""
        return ((k, self._items[k]) for k in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"


def build(registry: Registry, name: str, **kwargs: Any) -> Any:
    """Look ``name`` up in ``registry`` and call it with ``kwargs`` (a factory or a class)."""
    factory: Callable[..., Any] = registry.get(name)
    return factory(**kwargs)
