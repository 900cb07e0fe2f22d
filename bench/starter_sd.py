"""Starter latent diffusion speed: one 64x64 image, 20 steps, through the StableDiffusionPipeline call.

Model: assets/starter/sd (card `starter-sd`) with the starter CLIP's text tower passed as
`text_encoder=`, loaded by `StableDiffusionPipeline.from_pretrained`. Goal: <= 1.5 s per image on a
2-core CPU (guidance 5, so each step runs the UNet on a batch of 2). The baseline, run in the same
process, is a bare denoising loop over the same components (text encoding, 20 DDIM steps, VAE decode):
the ratio shows what the pipeline call itself costs.
Run: python -m bench.starter_sd [--repeats N] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

GOAL_S = 1.5


def _bare(pipe, prompt: str, steps: int, guidance: float, seed: int):
    import torch

    tok = pipe.tokenizer([prompt, ""], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        emb = pipe.text_encoder(tok)[0]
        g = torch.Generator().manual_seed(seed)
        z = torch.randn((1, 4, 16, 16), generator=g)
        pipe.scheduler.set_timesteps(steps)
        for t in pipe.scheduler.timesteps:
            eps = pipe.unet(torch.cat([z, z]), t, emb).sample
            e_c, e_u = eps.chunk(2)
            z = pipe.scheduler.step(e_u + guidance * (e_c - e_u), t, z).prev_sample
        return pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.starter_sd")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from studio.starter import assets_dir
    from studio.starter.diffusion_models import load_pipeline

    torch.set_num_threads(a.threads)
    assets = assets_dir()
    if not (assets / "sd" / "model_index.json").exists():
        print(f"starter_sd: {assets / 'sd'} is missing: run `python -m studio.starter train --only diffusion`")
        return 1
    t0 = time.perf_counter()
    pipe = load_pipeline(assets / "sd", assets / "clip")
    load_s = time.perf_counter() - t0
    prompt, steps, guidance = "a red star", 20, 5.0

    def call():
        pipe(prompt, num_inference_steps=steps, guidance_scale=guidance,
             generator=torch.Generator().manual_seed(0), output_type="np")

    call()  # warm-up: first-call allocations and lazy imports
    _bare(pipe, prompt, steps, guidance, 0)
    times = {"pipeline": [], "bare": []}
    for _ in range(a.repeats):  # interleaved, so load from other processes falls on both alike
        t = time.perf_counter()
        call()
        times["pipeline"].append(time.perf_counter() - t)
        t = time.perf_counter()
        _bare(pipe, prompt, steps, guidance, 0)
        times["bare"].append(time.perf_counter() - t)
    pipe_s, bare_s = statistics.median(times["pipeline"]), statistics.median(times["bare"])
    figures = {"seconds_per_image": round(pipe_s, 4), "bare_loop_seconds": round(bare_s, 4),
               "ratio_to_bare_loop": round(pipe_s / bare_s, 3), "goal_seconds": GOAL_S,
               "meets_goal": pipe_s <= GOAL_S, "steps": steps, "guidance_scale": guidance, "size": 64,
               "threads": a.threads, "load_seconds": round(load_s, 3), "repeats": a.repeats,
               "min_seconds": round(min(times["pipeline"]), 4)}
    print(f"starter_sd: {pipe_s:.3f} s per 64x64 image, 20 steps (goal <= {GOAL_S} s: "
          f"{'met' if pipe_s <= GOAL_S else 'NOT met'}); bare loop {bare_s:.3f} s, ratio "
          f"{pipe_s / bare_s:.2f}; min {min(times['pipeline']):.3f} s; {a.threads} threads; load {load_s:.2f} s")
    from bench.common import record

    record("starter_sd", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
