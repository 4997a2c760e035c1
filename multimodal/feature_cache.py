"""Memory-mapped caches of frozen-encoder outputs, keyed by everything that changes them.

A frozen image trunk (or a frozen pretrained text encoder) gives the same output for the same
input every epoch, so it is computed once and read back from a ``.npy`` file mapped into memory:
a CPU epoch then costs only the trainable part of the model. An entry is a folder

    <root>/<label>-<digest>/features.npy     the array, [N, ...] (rows follow ``keys``)
    <root>/<label>-<digest>/meta.json        the fields that made the digest, shape, dtype

where ``digest`` is the sha256 of the fields (encoder name, sha256 of its weights, input size,
augmentation, the exact inputs ...). Change any field and a different folder is used, so a stale
entry can never be read. The array is written under a temporary name and renamed into place
only when complete (an interrupted run leaves no half-written entry, and two processes filling
the same entry do not corrupt it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ensemblab.io import write_json


def digest_of(fields: dict) -> str:
    """sha256 (hex) of a JSON-serialisable dict, independent of key order."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def state_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes, bytes) in state-dict order.

    Keys the cache by the weights actually loaded, whether they came from a packaged file, a
    local file, a random initialisation or a checkpoint.
    """
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def files_digest(paths: Iterable[tuple[str, str | Path]]) -> str:
    """sha256 of ``(key, resolved path, size, mtime)`` rows: which exact files were read."""
    rows = []
    for key, path in paths:
        st = Path(path).stat()
        rows.append([key, str(Path(path).resolve()), st.st_size, st.st_mtime_ns])
    return digest_of({"files": rows})


class FeatureCache:
    """A folder of cached arrays.

    Args:
        root: the cache folder (created on first write).

    Attributes:
        computed: labels of the entries this object computed (not read back), in order; lets a
            caller (and the tests) see whether a run reused the cache.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.computed: list[str] = []

    def entry(self, label: str, fields: dict) -> Path:
        """The folder of the entry for ``fields``."""
        return self.root / f"{label}-{digest_of(fields)[:16]}"

    def get(self, label: str, fields: dict, shape: Sequence[int], dtype: str,
            fill: Callable[[np.ndarray], None]) -> np.ndarray:
        """The cached array for ``fields``, computing it with ``fill`` when absent.

        Args:
            label: readable prefix of the entry folder (``efficientnet_lite0_256px_hflip``).
            fields: everything the array depends on (JSON-serialisable).
            shape: array shape, first axis = items.
            dtype: numpy dtype name (``float16`` halves the size of features).
            fill: writes the array in place (it receives a writable memory map).

        Returns:
            A read-only memory map ``[N, ...]``.
        """
        folder = self.entry(label, fields)
        path = folder / "features.npy"
        if path.is_file() and (folder / "meta.json").is_file():
            array = np.load(path, mmap_mode="r")
            if tuple(array.shape) == tuple(shape) and array.dtype == np.dtype(dtype):
                return array
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".features.{os.getpid()}.npy"
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
            fill(out)
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        write_json(folder / "meta.json", {"label": label, "shape": list(shape), "dtype": dtype,
                                          "fields": fields})
        self.computed.append(label)
        return np.load(path, mmap_mode="r")
