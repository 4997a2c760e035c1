"""Strict config checking: a key must exist in the base config and keep its value's type.

The base config (the root of a ``_base_`` chain) is the schema, as in yacs and Lightning's CLI:
a key it does not hold is an error naming the key, the file and the closest valid keys, never a
silent new key. Values are checked against the type of the base value:

- ``null`` in the base declares an optional slot of any type (its value is not checked);
- an empty mapping ``{}`` in the base is a free-form mapping (any keys and values beneath);
- ``null`` as a new value is accepted everywhere (it switches an option off);
- int and float slots take any number (a float slot keeps floats, an integral value in an int
  slot stays an int); a number written as YAML 1.1 text (``1e-4``) is parsed;
- a string slot takes a number too, as its text (``encoder=18`` is ``"18"``);
- bool, list and mapping slots take only their own kind; mappings are checked key by key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from ensemblab.errors import ConfigError


def key_paths(cfg: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every dotted key of a nested mapping, parents before children."""
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, Mapping):
            yield from key_paths(value, f"{path}.")


def closest_keys(key: str, schema: Mapping[str, Any], parent: str = "") -> str:
    """``"closest: a.b, a.c"`` for an unknown dotted ``key``, else the keys valid beside it.

    Args:
        key: the unknown dotted key.
        schema: the config that declares the valid keys.
        parent: the longest prefix of ``key`` that exists in ``schema`` (``""``: top level).
    """
    name = key[len(parent) + 1:] if parent else key
    name = name.split(".")[0]
    node = lookup(schema, parent) if parent else schema
    siblings = sorted(map(str, node)) if isinstance(node, Mapping) else []
    prefix = f"{parent}." if parent else ""
    close = [prefix + k for k in difflib.get_close_matches(name, siblings, n=3, cutoff=0.6)]
    if not close:  # the key may sit under another parent (``optimizer.lr`` for ``train.lr``)
        last = key.split(".")[-1]
        close = [p for p in key_paths(schema)
                 if difflib.get_close_matches(last, [p.split(".")[-1]], cutoff=0.8)][:3]
    if close:
        return "closest: " + ", ".join(close)
    where = f"under {parent}" if parent else "at the top level"
    return f"valid keys {where}: " + (", ".join(siblings) if siblings else "none")


def lookup(cfg: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c`` of a nested mapping (KeyError when absent)."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            raise KeyError(dotted)
        node = node[part]
    return node


def is_free(declared: Any) -> bool:
    """True for a base value that accepts anything beneath it (``null`` or ``{}``)."""
    return declared is None or (isinstance(declared, Mapping) and not declared)


def check_value(value: Any, declared: Any, key: str, source: str, raw: str | None = None
                ) -> Any:
    """Check ``value`` against the base value ``declared`` of ``key``; returns it coerced.

    Args:
        value: the new value (parsed YAML).
        declared: the base config's value of the same key (its type is the schema).
        key: dotted key, for messages.
        source: the file (or override) the value comes from, for messages.
        raw: the override's text, used as is for a string slot.

    Raises:
        ConfigError: an unknown key beneath a mapping, or a value of the wrong type.
    """
    if value is None or is_free(declared):
        return value
    if isinstance(declared, Mapping):
        if not isinstance(value, Mapping):
            raise _type_error(key, source, value, declared)
        out = dict(value)
        for sub, sub_value in value.items():
            path = f"{key}.{sub}"
            if sub not in declared:
                scope: Mapping[str, Any] = declared
                for part in reversed(key.split(".")):
                    scope = {part: scope}
                raise ConfigError(f"{source}: unknown key '{path}' "
                                  f"({closest_keys(path, scope, key)})")
            out[sub] = check_value(sub_value, declared[sub], path, source)
        return out
    if isinstance(declared, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(declared, (int, float)):
        number = _as_number(value)
        if number is not None:
            if isinstance(declared, float) or not float(number).is_integer():
                return float(number)
            return int(number)
    elif isinstance(declared, str):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return raw if raw is not None else str(value)
    elif isinstance(declared, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
    elif type(value) is type(declared):
        return value
    raise _type_error(key, source, value, declared)


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _type_error(key: str, source: str, value: Any, declared: Any) -> ConfigError:
    want = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", tuple: "a list", dict: "a mapping"}.get(type(declared))
    if want is None and isinstance(declared, Mapping):
        want = "a mapping"
    return ConfigError(f"{source}: '{key}' must be {want or type(declared).__name__} "
                       f"like the base value {declared!r}, got {value!r}")


def check_against_base(cfg: Mapping[str, Any], base: Mapping[str, Any], source: str
                       ) -> dict[str, Any]:
    """Check every key of a child config against its base; returns the child coerced.

    Args:
        cfg: the child's own keys (before merging).
        base: the resolved parent config (the schema).
        source: the child's file, for messages.
    """
    out = {}
    for key, value in cfg.items():
        if key not in base:
            raise ConfigError(f"{source}: unknown key '{key}' ({closest_keys(str(key), base)})")
        out[key] = check_value(value, base[key], key, source)
    return out
