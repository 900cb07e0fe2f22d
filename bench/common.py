"""Shared helpers for benchmarks: machine info and merging figures into bench/results.json.

`BENCH_RESULTS` (an environment variable) points the figures at another file, so the smoke test and
experiments never overwrite the committed results. Each record carries when it was measured and
whether it was a `--quick` run (`BENCH_QUICK=1`), so a table mixing runs says so.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results.json"


def results_path() -> Path:
    return Path(os.environ.get("BENCH_RESULTS") or DEFAULT_RESULTS)





def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _ram_gb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine(with_device: bool = False) -> dict:
    """CPU, cores, RAM, library versions (from package metadata: nothing heavy is imported) and the torch
    device when `with_device` or when torch is already imported (benchmarks record it for free; the
    orchestrator does not pay a torch import for it)."""
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "ram_gb": _ram_gb(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for dist in ("torch", "diffusers", "transformers", "open_clip_torch", "timm"):
        info[dist] = _version(dist)
    info["PySide6"] = _version("PySide6") or _version("PySide6-Essentials")
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    if with_device or "torch" in sys.modules:
        info.update(device_info())
    return info


def host_label(info: dict, device: dict | None = None) -> str:
    """A one-line name of a machine: CPU model, cores, and the torch device when known."""
    text = f"{info.get('cpu', info.get('processor', '?'))}, {info.get('cpu_count')} cores"
    dev = (device or {}).get("device_name") or info.get("device_name")
    return f"{text}, {dev}" if dev else text


def device_info() -> dict:
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(0),
                "vram_gb": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    return {"device": "cpu", "device_name": "CPU (no CUDA device)", "torch_threads": torch.get_num_threads()}


def load() -> dict:
    path = results_path()
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            return {}
    return {}


def save(data: dict) -> None:
    from studio.core.atomic import atomic_write_json

    atomic_write_json(results_path(), data)


def record(key: str, figures: dict) -> None:
    """Merge `figures` under `key` in the results file (read-modify-write, atomic)."""
    data = load()
    figures = dict(figures)
    figures.setdefault("measured_at", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    figures.setdefault("quick", os.environ.get("BENCH_QUICK") == "1")
    try:
        figures.setdefault("load_average_after", [round(x, 2) for x in os.getloadavg()])
    except OSError:
        pass
    mach = data.setdefault("machine", machine())
    if "torch" in sys.modules and "device" not in mach:
        mach.update(device_info())
    here = machine()
    # Where this figure was measured: a later `--only gpu` on another machine must not pass for this one.
    figures.setdefault("host", host_label(here, device_info() if "torch" in sys.modules else None))
    data[key] = figures
    save(data)


def median(xs) -> float:
    return float(statistics.median(xs))


def percentile(xs, q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, without numpy."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))
