"""Workarounds for bugs in the installed PySide6, applied once when studio.ui is imported.

PySide6 6.12.0 returns `None` from every void method (`setText`, `update`, `resize`, ...) and `True`
from `Signal.emit()` without the reference it owes the caller: each call drops one reference to the
singleton. Python 3.12+ made these singletons immortal, so the bug is invisible there; on 3.11 the
interpreter aborts ("Fatal Python error: none_dealloc" / "bool_dealloc") after some thousands of
calls: a few seconds of moving the mouse over the canvas.

pyproject.toml excludes 6.12.0, so a normal install never sees the bug; this guard is for environments
where that version is installed anyway. When a probe shows the leak, we make None, True and False effectively immortal the way 3.12 does:
their reference counts get a cushion of 2**40, which a leak of one per call never drains. These
objects are never freed anyway, so a larger count changes nothing else.
"""
from __future__ import annotations

import ctypes
import sys

CUSHION = 2**40
_applied = False


def leaked_refs(calls: int = 64) -> dict[str, int]:
    """References to None and True lost over `calls` void calls and signal emits (0 when healthy)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    none_before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("probe")
    none_lost = none_before - sys.getrefcount(None)
    true_before = sys.getrefcount(True)
    for _ in range(calls):
        probe.ping.emit()
    true_lost = true_before - sys.getrefcount(True)
    return {"None": none_lost, "True": true_lost}


def _add_refs(obj: object, n: int) -> None:
    # ob_refcnt is the first field of every object in CPython (< 3.12, non-debug layouts alike).
    ctypes.c_ssize_t.from_address(id(obj)).value += n


def install() -> bool:
    """Cushion the singletons if this PySide6 leaks their references. Returns whether it did."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # immortal singletons: the leak is harmless
    if hasattr(sys, "gettotalrefcount"):
        return False  # a debug build lays objects out differently; do not poke its memory
    lost = leaked_refs()
    if max(lost.values()) < 32:
        return False
    for obj in (None, True, False):
        _add_refs(obj, CUSHION)
    _applied = True
    return True
