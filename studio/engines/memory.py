"""Memory: what models weigh, what a job will need, the budgets, and recovering from out-of-memory.

Estimates are deliberately simple and documented in docs/models.md: weights are measured (tensor
bytes) once loaded and computed from safetensors headers before; working memory of a job scales
with pixels x frames x batch with a per-task coefficient a card may override.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any, Iterable

from studio.catalog.cards import ModelCard
from studio.catalog.integrity import FolderScan, tensor_bytes

log = logging.getLogger(__name__)

MB = 2**20
# Working memory per megapixel of output, per image or frame, at 16-bit, in MB. Rough figures taken
# from SD1.5 at 512² (~1.3 GB peak over weights, mostly the VAE decoder), SDXL at 1024² and SVD.
ACTIVATION_MB_PER_MPIX = {"diffusion": 5000, "inpaint": 5000, "controlnet": 5000, "motion": 2500,
                          "video": 2000, "vlm": 1500, "clip": 400, "vit": 400, "cnn": 400,
                          "preprocessor": 1500}
# Share of the device memory used when the user leaves the budget on automatic.
AUTO_VRAM_SHARE, AUTO_RAM_SHARE = 0.9, 0.6
DIFFUSION_TASKS = ("diffusion", "inpaint", "video", "motion")


def module_bytes(obj: Any) -> int:
    """Bytes of the parameters and buffers of a torch module (0 for anything else). Tied weights
    are one Parameter object, which `parameters()` yields once."""
    if not hasattr(obj, "parameters") or not hasattr(obj, "buffers"):
        return 0
    try:
        return sum(t.numel() * t.element_size() for t in obj.parameters()) + \
            sum(t.numel() * t.element_size() for t in obj.buffers())
    except TypeError:
        return 0


def parts_of(model: Any) -> dict[int, tuple[Any, int]]:
    """The memory-holding parts of a loaded model: the components of a diffusers pipeline, the
    detector networks of an annotator, or the model itself. Keyed by id() to count sharing once."""
    comps = getattr(model, "components", None)
    if isinstance(comps, dict):
        items = [c for c in comps.values() if hasattr(c, "parameters")]
    elif hasattr(model, "parameters"):
        items = [model]
    else:
        items = []
    return {id(p): (p, module_bytes(p)) for p in items}


def itemsize(dtype: Any) -> int:
    return int(getattr(dtype, "itemsize", 4))


def estimate_weights_mb(card: ModelCard, scan: FolderScan | None, item: int) -> float:
    """Weights in memory before loading: tensor sizes from safetensors headers at `item` bytes per
    float (what the dtype policy will give), else file sizes, else the card's own estimate."""
    if scan is None:
        return float(card.memory_mb)
    skip = tuple(f"/{s}/" for s in card.options.get("skip", []))
    total = sum(tensor_bytes(scan.headers[f], item) for f in _preferred(scan.safetensors, card)
                if f in scan.headers and not (skip and any(s in f.as_posix() for s in skip)))
    if not scan.safetensors:
        total = sum(p.stat().st_size for p in scan.pickles)
    return total / MB if total else float(card.memory_mb)


def _preferred(files: list[Path], card: ModelCard) -> list[Path]:
    """One weights variant per folder: the card's `variant` (e.g. fp16) when present, else the plain files."""
    variant = card.options.get("variant")
    by_dir: dict[Path, list[Path]] = {}
    for f in files:
        by_dir.setdefault(f.parent, []).append(f)
    out = []
    for group in by_dir.values():
        tagged = [f for f in group if variant and f".{variant}." in f.name]
        plain = [f for f in group if f.name.count(".") == 1 or "-of-" in f.name]
        out += tagged or plain or group
    return out


def activation_mb(card: ModelCard, width: int, height: int, frames: int = 1, batch: int = 1,
                  item: int = 2) -> float:
    per = float(card.options.get("activation_mb_per_mpix", ACTIVATION_MB_PER_MPIX.get(card.task, 500)))
    mpix = max(1, width) * max(1, height) / 1e6
    return per * mpix * max(1, frames) * max(1, batch) * (item / 2)


def total_ram_mb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB
    except (ValueError, OSError, AttributeError):  # pragma: no cover - Windows
        return 16 * 1024.0


def total_vram_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_properties(0).total_memory / MB
    if device == "mps":
        return total_ram_mb()  # unified memory
    return 0.0


def budget_mb(setting_mb: int, total_mb: float, share: float) -> float:
    return float(setting_mb) if setting_mb > 0 else total_mb * share


def is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None:
        oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
        if oom is not None and isinstance(exc, oom):
            return True
        if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
            return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower())


def free_caches(device: str) -> None:
    """Give freed blocks back: Python's garbage first (it may hold the last tensor refs), then torch's."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if device == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif device == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()
    except Exception:  # never let cleanup hide the original failure
        log.exception("could not empty the %s cache", device)


def used_mb(parts: Iterable[tuple[Any, int]]) -> float:
    return sum(b for _, b in parts) / MB
