"""Errors that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class EnsemblabError(Exception):
    """Base class of every error a user can fix (bad input, missing file, bad config)."""


class DataError(EnsemblabError):
    """A data file is missing, unreadable or inconsistent.

    Args:
        path: the offending file (or folder).
        problem: what is wrong, in a few words, e.g. ``"mask shape (10, 12) != image (10, 11)"``.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class ConfigError(EnsemblabError):
    """A config file or a ``key=value`` override is invalid."""
