"""YAML configs with strict ``key=value`` overrides, saved resolved in the run folder."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ensemblab.config_schema import check_against_base, check_value, closest_keys, is_free, lookup
from ensemblab.errors import ConfigError
from ensemblab.io import atomic_write_text
from ensemblab.registry import unknown_name_message

CONFIG_NAME = "config.yaml"


def load_config(path: str | Path, overrides: list[str] | None = None,
                choices: Mapping[str, Iterable[Any]] | None = None) -> dict[str, Any]:
    """Read a YAML config and apply dotted ``key=value`` overrides, strictly.

    A config may name a parent with ``_base_: other.yaml`` (relative to its own folder); the
    child's keys are merged over the parent's, recursively. The root of the chain is the schema
    (:mod:`ensemblab.config_schema`): a child key or override key it does not hold, or a value
    of another type, is a :class:`~ensemblab.errors.ConfigError` naming the key, the file and
    the closest valid keys.

    Args:
        path: YAML file.
        overrides: strings like ``"train.epochs=3"``; values are parsed as YAML scalars/lists.
        choices: ``{dotted key: allowed values}`` of the project's choice-valued keys, checked
            on the resolved config (:func:`check_choices`).

    Returns:
        The resolved nested dict.
    """
    cfg, schema = _load_chain(Path(path))
    cfg = apply_overrides(cfg, overrides or [], schema=schema, source=str(path))
    return check_choices(cfg, choices or {}, str(path))


def check_choice(cfg: Mapping[str, Any], key: str, allowed: Iterable[Any],
                 source: str = "config") -> Any:
    """The value of a choice-valued ``key``, which must be one of ``allowed``.

    A list value is checked item by item (``evaluate.models: [dnn, svm]``); ``None`` among the
    allowed values lets the key be ``null``.

    Args:
        cfg: the resolved config.
        key: dotted key, e.g. ``"train.optimizer"``.
        allowed: the valid values (a tuple, a registry's ``names()``).
        source: the config file or run folder, named first in the message.

    Returns:
        The value.

    Raises:
        ConfigError: a missing key, or a value not allowed: one line naming the source, the
            key, the value, the closest allowed value and every allowed one, e.g.
            ``cpu.yaml: unknown train.optimizer 'sdg' (did you mean sgd?); known: sgd, adamw``.
    """
    try:
        value = lookup(cfg, key)
    except KeyError:
        raise ConfigError(f"{source}: missing key '{key}'") from None
    allowed = tuple(allowed)
    for item in value if isinstance(value, list) else [value]:
        if (item is None and None in allowed) or (isinstance(item, str) and item in allowed):
            continue
        names = ["null" if a is None else str(a) for a in allowed]
        raise ConfigError(f"{source}: {unknown_name_message(key, item, names)}")
    return value


def check_choices(cfg: dict[str, Any], choices: Mapping[str, Iterable[Any]],
                  source: str = "config") -> dict[str, Any]:
    """:func:`check_choice` for every ``{dotted key: allowed values}``; returns ``cfg``."""
    for key, allowed in choices.items():
        check_choice(cfg, key, allowed, source)
    return cfg


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return cfg


def config_chain(path: str | Path) -> list[Path]:
    """The files of a ``_base_`` chain, root first, ending with ``path``."""
    path = Path(path)
    base = _read_yaml(path).get("_base_")
    return [path] if base is None else [*config_chain(_base_path(path, base)), path]


def _base_path(path: Path, base: Any) -> Path:
    """The parent file a config's ``_base_`` names (relative to the config's folder)."""
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: _base_ must name a YAML file, got {base!r}")
    parent = path.parent / base
    if not parent.is_file():
        raise ConfigError(f"{path}: _base_ file {parent} not found")
    return parent


def _load_chain(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(resolved config, root config)`` of a ``_base_`` chain; children checked on the root."""
    cfg = _read_yaml(path)
    base = cfg.pop("_base_", None)
    if base is None:
        return cfg, cfg
    parent, root = _load_chain(_base_path(path, base))
    return merge(parent, check_against_base(cfg, root, str(path))), root


def find_config(name: str | Path, config_dir: str | Path) -> Path:
    """Resolve ``--config``: an existing YAML file, or the name of one in ``config_dir`` or in
    any of its sub-folders (a project keeping ``configs/members/`` and ``configs/ensembles/``).

    Args:
        name: a path (``my.yaml``), or a name such as ``cpu_quick`` / ``cpu_quick.yaml``, or a
            name relative to ``config_dir`` (``members/cpu_quick``) where two sub-folders hold
            one name.
        config_dir: the project's bundled ``configs/`` folder.

    Returns:
        The config file.

    Raises:
        ConfigError: nothing matches, or a bare name is in several sub-folders; one line that
            names what was looked for, where, and the bundled names.
    """
    path = Path(name)
    if path.is_file():
        return path
    config_dir = Path(config_dir)
    bundled = bundled_configs(config_dir)
    known = ", ".join(bundled)
    key = (path.with_suffix("") if path.suffix == ".yaml" else path).as_posix()
    if not path.is_absolute():
        if key in bundled:
            return bundled[key]
        matches = [rel for rel in bundled if rel.rpartition("/")[2] == key]
        if len(matches) == 1:
            return bundled[matches[0]]
        if matches:
            raise ConfigError(f"{name}: several bundled configs in {config_dir} have this name "
                              f"({', '.join(matches)}); give one of these")
    raise ConfigError(f"{name}: no such config file or bundled config in {config_dir} "
                      f"(bundled: {known or 'none'})")


def bundled_configs(config_dir: str | Path) -> dict[str, Path]:
    """``{name: file}`` of every YAML file under ``config_dir``, sorted; a name is the path
    relative to ``config_dir`` without ``.yaml`` (``cpu_quick``, ``members/cpu_quick``)."""
    config_dir = Path(config_dir)
    files = sorted(config_dir.rglob("*.yaml"))
    return {f.relative_to(config_dir).with_suffix("").as_posix(): f for f in files}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``over`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(cfg: dict[str, Any], overrides: list[str],
                    schema: dict[str, Any] | None = None, source: str | None = None
                    ) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings to a copy of ``cfg`` (values parsed as YAML), strictly.

    Args:
        cfg: the resolved config.
        overrides: ``key=value`` strings.
        schema: the base config that declares keys and types (default: ``cfg``).
        source: the config file, named in messages.

    Raises:
        ConfigError: a malformed override, a key the schema lacks (the message names the
            closest valid keys) or a value of the wrong type.
    """
    cfg = copy.deepcopy(cfg)
    schema = cfg if schema is None else schema
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        where = f"override {item!r}" + (f" of {source}" if source else "")
        parts = key.split(".")
        declared: Any = schema
        for i, part in enumerate(parts):
            if is_free(declared):
                declared = None
                break
            if not isinstance(declared, dict) or part not in declared:
                parent = ".".join(parts[:i])
                raise ConfigError(f"{where}: unknown key '{key}' "
                                  f"({closest_keys(key, schema, parent)})")
            declared = declared[part]
        value = check_value(parse_value(raw), declared, key, where, raw=raw)
        node = cfg
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return cfg


def parse_value(raw: str) -> Any:
    """Parse an override value as YAML; ``1e-4`` (a string in YAML 1.1) becomes a float."""
    if raw == "":
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def save_config(cfg: dict[str, Any], run_dir: str | Path) -> Path:
    """Write the resolved config to ``run_dir/config.yaml`` atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / CONFIG_NAME
    atomic_write_text(target, yaml.safe_dump(cfg, sort_keys=False))
    return target


def load_run_config(run_dir: str | Path, base: str | Path | None = None) -> dict[str, Any]:
    """Read the resolved config saved in a run folder.

    Args:
        run_dir: the run folder.
        base: the project's root config. A key the saved config lacks (the run was saved
            before the key existed) is filled from it, so code reads every key as
            ``cfg["key"]`` and the root config stays the one place a default is written.
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no {CONFIG_NAME})")
    saved = yaml.safe_load(path.read_text()) or {}
    return saved if base is None else merge(load_config(base), saved)
