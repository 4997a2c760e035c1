"""Helpers for tests: locating the real data samples and skipping cleanly without them."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path | None:
    """``$ENSEMBLAB_DATA`` when set and present, else None."""
    root = os.environ.get("ENSEMBLAB_DATA")
    if root and Path(root).is_dir():
        return Path(root)
    return None


def real_data(rel: str) -> Path:
    """Path of a real-data sample under ``$ENSEMBLAB_DATA``, or skip the calling test.

    Args:
        rel: path relative to the data root, e.g. ``"cells/usiigaci"``.
    """
    import pytest

    root = data_root()
    if root is None:
        pytest.skip("ENSEMBLAB_DATA is not set (real-data samples absent)")
    path = root / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path
