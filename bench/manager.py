"""Benchmark: load time of a diffusers pipeline through the model manager vs a direct from_pretrained.

The same tiny seeded Stable Diffusion folder (tests.helpers.tiny_models) is loaded both ways,
alternating which goes first, several times; the figure is the ratio of the medians (goal <= 1.05:
the manager's checks, estimates and bookkeeping must cost next to nothing). Run from the repo root:
`python -m bench.manager [--repeats N]`. Merges its figures into bench/results.json under "manager".
"""
from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

GOAL = 1.05


def _direct(path: Path):
    import torch
    from diffusers import DiffusionPipeline

    # What a user writes on a CPU (from_pretrained already places the weights there).
    return DiffusionPipeline.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)


def _through_manager(path: Path):
    from studio.catalog.cards import Catalog
    from studio.catalog.requests import ModelPolicy
    from studio.engines.manager import ModelManager
    from tests.helpers.tiny_models import card

    manager = ModelManager(Catalog([card("sd", "diffusers", "diffusion", path)]),
                           policy=ModelPolicy(device="cpu"), assets=path)
    t0 = time.perf_counter()
    manager.get("sd")
    return time.perf_counter() - t0, manager


def run(repeats: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.common import median
    from tests.helpers.tiny_models import save_tiny_sd

    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny_sd(Path(tmp) / "sd")
        _direct(path)  # warm-up: imports and the page cache, for both sides
        _through_manager(path)
        direct, managed = [], []
        for i in range(repeats):
            for which in (("direct", "manager") if i % 2 == 0 else ("manager", "direct")):
                gc.collect()
                if which == "direct":
                    t0 = time.perf_counter()
                    pipe = _direct(path)
                    direct.append(time.perf_counter() - t0)
                    del pipe
                else:
                    seconds, manager = _through_manager(path)
                    managed.append(seconds)
                    manager.unload_all()
    ratio = median(managed) / median(direct)
    return {"pipeline": "tiny StableDiffusionPipeline (diffusers, CPU, float32)", "repeats": repeats,
            "direct_median_s": round(median(direct), 4), "manager_median_s": round(median(managed), 4),
            "ratio_manager_to_direct": round(ratio, 3), "goal_ratio": GOAL, "goal_met": ratio <= GOAL}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.manager", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    from bench.common import record

    figures = run(args.repeats)
    print(f"direct from_pretrained : {figures['direct_median_s'] * 1000:8.1f} ms (median of {args.repeats})")
    print(f"through the manager    : {figures['manager_median_s'] * 1000:8.1f} ms")
    print(f"ratio manager / direct : {figures['ratio_manager_to_direct']:.3f} (goal <= {GOAL}, "
          f"{'met' if figures['goal_met'] else 'NOT met'})")
    record("manager", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
