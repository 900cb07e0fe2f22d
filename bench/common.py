"""Shared helpers for benchmarks: machine info and merging figures into bench/results.json."""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def machine() -> dict:
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def record(key: str, figures: dict) -> None:
    """Merge `figures` under `key` in results.json (read-modify-write, atomic)."""
    from studio.core.atomic import atomic_write_json

    data = {}
    if RESULTS.exists():
        try:
            data = json.loads(RESULTS.read_text())
        except ValueError:
            data = {}
    data[key] = figures
    data["machine"] = machine()
    atomic_write_json(RESULTS, data)


def median(xs) -> float:
    return float(statistics.median(xs))
