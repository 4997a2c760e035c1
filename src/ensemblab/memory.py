"""Peak memory of this process: the resident set on CPU, the allocator's peak on a CUDA device.

On Linux the peak resident set is ``VmHWM`` of ``/proc/self/status``, which
:func:`reset_peak` resets to the current resident set (``/proc/self/clear_refs``), so one
stage's peak can be told from the process's; elsewhere it is ``ru_maxrss`` since the start.
"""

from __future__ import annotations

import gc
import resource
import sys
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")


def _status_bytes(key: str) -> int | None:
    """A ``kB`` line of ``/proc/self/status`` in bytes, or None where there is none."""
    try:
        line = next(x for x in _STATUS.read_text().splitlines() if x.startswith(f"{key}:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


def _is_cuda(device: Any) -> bool:
    return device is not None and str(device).startswith("cuda")


def rss_bytes() -> int:
    """The resident set of this process now (Linux ``VmRSS``; elsewhere its peak)."""
    now = _status_bytes("VmRSS")
    return peak_rss_bytes() if now is None else now


def peak_rss_bytes() -> int:
    """The peak resident set of this process since it started or since :func:`reset_peak`."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, else KiB


def reset_peak(device: Any = None) -> None:
    """Start a fresh peak: the CUDA allocator's statistics of ``device`` (a ``cuda`` device),
    or the peak resident set (Linux; a no-op elsewhere)."""
    gc.collect()
    if _is_cuda(device):
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # "5" resets VmHWM, the peak resident set
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_bytes(device: Any = None) -> int:
    """The peak since :func:`reset_peak`: memory allocated on ``device`` when it is a CUDA
    device, else the resident set of this process (:func:`peak_rss_bytes`)."""
    if _is_cuda(device):
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    return peak_rss_bytes()
