"""``--print-config``: the resolved config as YAML, each key with the comment its file gives it.

Comments are the inline ``# ...`` of the config files of the ``_base_`` chain; a child's comment
on a key replaces its parent's. The output is valid YAML that loads back to the resolved config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ensemblab.config import config_chain

_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w\-]*)\s*:(?P<rest>.*)$")
_COMMENT_COLUMN = 32


def inline_comments(path: str | Path) -> dict[str, str]:
    """``{dotted key: comment}`` of the ``key: value  # comment`` lines of one YAML file.

    Nesting is read from indentation (block-style mappings, as the bundled configs use).
    """
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    for line in Path(path).read_text().splitlines():
        match = _KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [match["key"]])
        stack.append((indent, match["key"]))
        rest = match["rest"]
        if " #" in rest or rest.startswith("#"):
            comments[dotted] = rest.split("#", 1)[1].strip()
    return comments


def render_config(cfg: Mapping[str, Any], config_path: str | Path) -> str:
    """The resolved ``cfg`` as commented YAML, comments taken from ``config_path``'s chain.

    Args:
        cfg: the resolved config (after overrides).
        config_path: the config file it was loaded from (its ``_base_`` chain is read too).
    """
    comments: dict[str, str] = {}
    for path in config_chain(config_path):
        comments.update(inline_comments(path))
    lines = [f"# resolved from {config_path}"]
    _render(cfg, "", 0, comments, lines)
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def _render(node: Mapping[str, Any], prefix: str, depth: int, comments: dict[str, str],
            lines: list[str]) -> None:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        head = f"{'  ' * depth}{key}:"
        if isinstance(value, Mapping) and value:
            text = head
        else:
            text = f"{head} {_flow(value)}"
        if dotted in comments:
            text = f"{text.ljust(_COMMENT_COLUMN - 1)} # {comments[dotted]}"
        lines.append(text)
        if isinstance(value, Mapping) and value:
            _render(value, f"{dotted}.", depth + 1, comments, lines)
