"""Fixtures shared by the projects' tests."""

import pytest
import torch


@pytest.fixture
def one_thread(monkeypatch):
    """This process predicts with one thread, as each rank of a two-process run does; yields
    the ``--threads 1`` flag and restores torch's thread count afterwards."""
    for name in ("ENSEMBLAB_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    threads = torch.get_num_threads()
    yield ["--threads", "1"]
    torch.set_num_threads(threads)
