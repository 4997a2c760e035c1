"""Shared fixtures: a small synthetic ssTEM-like stack and a tiny CPU config."""

import pytest

from ensemblab.config import load_config
from ensemblab.projects.fre_unet.commands import resolve_config
from ensemblab.synthetic.em import make_em_stack


@pytest.fixture(scope="session")
def em_stack(tmp_path_factory):
    """8 synthetic sections of 128x128 in the ssTEM layout."""
    return make_em_stack(tmp_path_factory.mktemp("em") / "stack", n_slices=8, size=128, seed=0)


# cpu_quick shrunk to 32-px tiles of the synthetic stack (5 train / 1 val / 2 test).
TINY_OVERRIDES = [
    "data.scale=1.0", "data.tile=32", "data.batch_size=8", "model.width=0.125",
    "train.epochs=12", "train.lr=0.01", "train.schedule=cosine", "train.log_every_n_steps=1",
    "data.split={train: 0-4, val: '5', test: 6-7}"]


@pytest.fixture
def tiny_overrides():
    """The ``key=value`` overrides of :func:`tiny_cfg` (for CLI calls)."""
    return list(TINY_OVERRIDES)


@pytest.fixture
def tiny_cfg():
    """``cpu_quick`` with :data:`TINY_OVERRIDES` applied."""
    return load_config(resolve_config("cpu_quick"), TINY_OVERRIDES)
