"""Random-number-generator state in every checkpoint, so a resumed run repeats exactly.

A run resumed from ``last.ckpt`` re-seeds at start-up, so without this its later epochs would
draw a different shuffle order (``DataLoader(shuffle=True)`` seeds its sampler from the global
torch generator at each epoch), different dropout masks and different augmentations (NumPy,
Python ``random``) than the run that was interrupted. Lightning restores weights, optimizer and
loop state but not these generators.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RngStateCheckpoint(L.Callback):
    """Save the Python, NumPy, torch CPU and CUDA generator states with each checkpoint and
    restore them when training resumes from it.

    The state is the one at the moment the checkpoint is written (``last.ckpt``: the end of a
    training epoch), so the resumed run draws the next epoch's shuffle, dropout and augmentation
    exactly as the uninterrupted run did. Values are plain ints, lists and tensors, so the
    checkpoint still loads with ``torch.load(weights_only=True)``. Under DDP every rank restores
    rank 0's state, which equals its own when all ranks were seeded alike (the engine's default);
    state held inside persistent DataLoader workers is not captured.
    """

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state(legacy=False)
        state = {
            "python": random.getstate(),
            "numpy": {
                "bit_generator": numpy_state["bit_generator"],
                "key": numpy_state["state"]["key"].tolist(),
                "pos": int(numpy_state["state"]["pos"]),
                "has_gauss": int(numpy_state["has_gauss"]),
                "gauss": float(numpy_state["gauss"]),
            },
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["torch_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))
        numpy_state = state_dict["numpy"]
        np.random.set_state({
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": np.asarray(numpy_state["key"], dtype=np.uint32),
                      "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        })
        torch.set_rng_state(state_dict["torch"])
        cuda_states = state_dict.get("torch_cuda")
        if cuda_states and torch.cuda.is_available():
            # a run resumed on fewer GPUs restores the devices it has
            for device, cuda_state in enumerate(cuda_states[:torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state, device)
