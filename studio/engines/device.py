"""Device policy: CUDA, then MPS, then CPU, unless the user chose one; dtype follows the device."""
from __future__ import annotations

import sys


def torch_loaded() -> bool:
    return "torch" in sys.modules


def pick_device(preference: str = "auto") -> str:
    import torch

    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if torch.cuda.is_available():
            return "cuda"
    if preference == "mps" or preference == "auto":
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
    return "cpu"


def default_dtype(device: str):
    import torch

    return torch.float16 if device in ("cuda", "mps") else torch.float32


def describe(device: str) -> str:
    """A short label for the status bar, e.g. 'CUDA: NVIDIA H100' or 'CPU'."""
    if device == "cuda":
        import torch

        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return device.upper()


def memory_in_use_mb(device: str) -> float:
    """Memory the studio holds on `device`: allocated VRAM for CUDA, resident set size otherwise."""
    if device == "cuda" and torch_loaded():
        import torch

        return torch.cuda.memory_allocated() / 2**20
    return rss_mb()


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        # ru_maxrss is the peak, in KiB on Linux and bytes on macOS: better than nothing.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)
