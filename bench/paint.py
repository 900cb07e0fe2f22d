"""Paint workspace speed: the studio's generation (runtime + GPU lane + engine + writing the PNG, its
metadata and the gallery row) against calling the same diffusers pipeline directly with the same
arguments, as a ratio (goal <= 1.05 on CPU), and the time to the first live preview.

Model: the starter SD pipeline (assets/starter/sd) when installed; until then a random SD 1.x pipeline
with a UNet of (32, 64) channels (tests/helpers/tiny_sd.save_bench_sd), loaded by the real manager.
Run: python -m bench.paint [--steps N] [--size PX] [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 1.05


def _model(tmp: Path):
    from studio.catalog.cards import Catalog, ModelCard, load_catalog
    from studio.catalog.requests import ModelPolicy
    from studio.core.paths import assets_dir
    from studio.engines.manager import ModelManager
    from studio.media.journal import STARTER_SOURCE

    catalog = load_catalog([assets_dir() / "models.toml"])
    starter = [c for c in catalog.cards("diffusion") if c.source == STARTER_SOURCE]
    if starter and (assets_dir() / "starter" / "sd" / "model_index.json").exists():
        return ModelManager(catalog, policy=ModelPolicy(device="cpu")), starter[0].id, "starter SD (assets/starter/sd)"
    from tests.helpers.tiny_sd import save_bench_sd

    folder = save_bench_sd(tmp / "bench-sd")
    card = ModelCard(id="bench-sd", name="Random SD (bench)", task="diffusion", library="diffusers",
                     source=f"local:{folder}", trained=False)
    note = ("assets/starter/sd is MISSING: measured on a RANDOM SD 1.x pipeline (UNet 32/64 channels, "
            "tiny CLIP text encoder); the timings hold, the images mean nothing")
    return ModelManager(Catalog([card]), policy=ModelPolicy(device="cpu")), card.id, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.paint")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from bench.common import record
    from studio.core.context import TaskContext
    from studio.core.paint_requests import PaintRequest
    from studio.engines import diffusion
    from studio.runtime import EngineRegistry

    from bench.lane import lane_runtime

    tmp = Path(tempfile.mkdtemp(prefix="studio-bench-paint-"))
    manager, model_id, note = _model(tmp)
    print(f"model: {note}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu_count {os.cpu_count()}")
    req = PaintRequest(prompt="a lighthouse on a cliff at dusk", negative_prompt="blurry", model_id=model_id,
                       steps=args.steps, width=args.size, height=args.size, seed=1234, cfg_scale=7.0,
                       scheduler="Euler a", output_dir=str(tmp / "library"), gallery=str(tmp / "gallery.sqlite"),
                       uid="bench")

    registry = EngineRegistry()
    diffusion.register(registry)
    # Every torch call on the GPU lane thread, the direct baseline included (bench/lane.py).
    runtime, _call, on_lane, pump = lane_runtime(manager, registry)
    first_preview: list[float] = []

    def studio_run() -> np.ndarray:
        """Submit through the runtime and wait for the result on this ("main") thread."""
        done: list = []
        t0 = time.perf_counter()
        runtime.submit(req, on_result=done.append, on_error=done.append,
                       on_preview=lambda p: first_preview.append(time.perf_counter() - t0) if not done else None)
        while not done:
            pump()
        if not hasattr(done[0], "images"):
            raise RuntimeError(done[0].user_message)
        return done[0].images[0].pixels

    base = on_lane(lambda: manager.get(model_id, TaskContext()))[0]
    pipe = base.model
    original = pipe.scheduler

    def direct_run(inference_mode: bool = True) -> np.ndarray:
        """The same pipeline object, same scheduler, arguments, seed and output type, called directly
        (under torch.inference_mode like the engine, or plain as diffusers' examples do)."""
        pipe.scheduler = diffusion.make_scheduler(req.scheduler, original)
        kw = diffusion.call_kwargs(req, None, None, [], "sd")
        try:
            with torch.inference_mode(inference_mode):
                out = pipe(**kw, generator=torch.Generator("cpu").manual_seed(req.seed)).images[0]
        finally:
            pipe.scheduler = original
        return np.asarray(out)

    t0 = time.perf_counter()
    studio_pixels = studio_run()  # warm-up: hashes the model files once, first-call allocations
    cold_s = time.perf_counter() - t0
    direct_pixels = on_lane(direct_run)[0]
    diff = int(np.abs(studio_pixels.astype(int) - direct_pixels.astype(int)).max())

    times: dict[str, list[float]] = {"studio": [], "direct": [], "plain": []}
    previews: list[float] = []
    for _ in range(args.repeats):  # interleaved, so load from other processes falls on all alike
        first_preview.clear()
        t0 = time.perf_counter()
        studio_run()
        times["studio"].append(time.perf_counter() - t0)
        if first_preview:
            previews.append(first_preview[0])
        for name, mode in (("direct", True), ("plain", False)):
            times[name].append(on_lane(lambda: direct_run(mode))[1] / 1000.0)
    runtime.shutdown()
    studio_s, direct_s = statistics.median(times["studio"]), statistics.median(times["direct"])
    plain_s = statistics.median(times["plain"])
    ratio = studio_s / direct_s
    figures = {
        "model": model_id,
        "model_note": note,
        "device": "cpu",
        "size": f"{args.size}x{args.size}",
        "steps": args.steps,
        "sampler": req.scheduler,
        "repeats": args.repeats,
        "cold_first_generation_s": round(cold_s, 3),
        "studio_median_s": round(studio_s, 3),
        "direct_median_s": round(direct_s, 3),
        "ratio_studio_to_direct": round(ratio, 3),
        "direct_without_inference_mode_median_s": round(plain_s, 3),
        "ratio_studio_to_direct_without_inference_mode": round(studio_s / plain_s, 3),
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio <= GOAL_RATIO,
        "time_to_first_preview_s": round(statistics.median(previews), 3) if previews else None,
        "per_step_s": round(direct_s / args.steps, 4),
        "max_abs_pixel_difference_vs_direct": diff,
        "studio_includes": "runtime queue, GPU lane, engine, PNG + A1111 parameters + recipe, gallery row",
    }
    record("paint", figures)
    w = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{w}}  {v}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
