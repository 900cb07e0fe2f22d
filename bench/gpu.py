"""GPU: full-size Stable Diffusion 1.5 (UNet, VAE, CLIP text encoder built from the public configs in
bench/sd15_configs.py, random weights: speed does not depend on them) at 512x512, 50 steps, fp16.

The pipeline is saved as a standard diffusers folder and loaded by the studio's model manager (CUDA,
the manager's dtype policy). Figures, interleaved and repeated (median):
  bare       the loaded pipeline object called directly (diffusers' default attention: SDPA),
  studio     the same request through the runtime, GPU lane and paint engine (scheduler made per job,
             step callback with throttled live previews, cancellation checks; nothing written to disk),
  studio_saving  the same, writing the PNG + metadata + gallery row as the Paint workspace does,
and speed options applied by this benchmark to the same pipeline (the studio has no setting for them
yet, so they show what it could gain): eager attention (SDPA off), channels-last, channels-last +
torch.compile(unet), and the studio path on that compiled pipeline. Peak VRAM of a studio generation is
compared with the manager's VRAM budget and its preflight estimate.
Goal: studio / bare <= 1.02. Without CUDA it records "skipped: no CUDA device".
Run: python -m bench.gpu [--quick] [--steps N] [--repeats N] [--no-compile] [--cpu-dry-run]
(--cpu-dry-run runs this code path on the CPU with tiny configs and records nothing.)
"""
from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL_RATIO = 1.02
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def build_folder(folder: Path, tiny: bool, device: str, dtype) -> Path:
    """Random SD 1.5 components from the public configs, saved with save_pretrained."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from bench import sd15_configs
    from studio.core.paths import assets_dir

    unet_c, vae_c, text_c = sd15_configs.tiny() if tiny else (sd15_configs.UNET, sd15_configs.VAE,
                                                                sd15_configs.TEXT_ENCODER)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: a CPU init of 1 B parameters takes minutes
        unet = UNet2DConditionModel(**unet_c)
        vae = AutoencoderKL(**vae_c)
        text = CLIPTextModel(CLIPTextConfig(**text_c))
    # The real CLIP BPE vocabulary (49408 tokens), shipped with the studio's starter assets.
    tokenizer = CLIPTokenizer.from_pretrained(str(assets_dir() / "starter" / "tokenizer"))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler.from_config(sd15_configs.SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.to(dtype=dtype)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    del pipe, unet, vae, text
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu")
    ap.add_argument("--quick", action="store_true", help="20 steps, 1 repeat, no torch.compile")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--cpu-dry-run", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.quick:
        args.steps, args.repeats, args.no_compile = min(args.steps, 20), 1, True

    import torch

    from bench.common import record

    dry = args.cpu_dry_run
    if not torch.cuda.is_available() and not dry:
        print("gpu: skipped: no CUDA device")
        record("gpu", {"skipped": "skipped: no CUDA device", "torch": torch.__version__})
        return 0
    if dry:
        args.steps, args.size, args.repeats, args.no_compile = 3, 64, 1, True
    device = "cpu" if dry else "cuda"
    dtype = torch.float32 if dry else torch.float16

    import numpy as np
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from studio.catalog.cards import Catalog, ModelCard
    from studio.catalog.requests import ModelPolicy
    from studio.core.context import TaskContext
    from studio.core.paint_requests import PaintRequest
    from studio.engines import diffusion
    from studio.engines.manager import VRAM, ModelManager
    from studio.runtime import EngineRegistry, Runtime

    tmp = Path(tempfile.mkdtemp(prefix="studio-bench-gpu-"))
    t0 = time.perf_counter()
    folder = build_folder(tmp / "sd15-random", tiny=dry, device=device, dtype=dtype)
    build_s = time.perf_counter() - t0
    card = ModelCard(id="sd15-random", name="SD 1.5 (random weights)", task="diffusion", library="diffusers",
                     source=f"local:{folder}", trained=False)
    manager = ModelManager(Catalog([card]), policy=ModelPolicy(device=device))
    posted: queue.Queue = queue.Queue()
    registry = EngineRegistry()
    diffusion.register(registry)
    runtime = Runtime(registry, manager, posted.put)
    t0 = time.perf_counter()
    base = manager.get(card.id, TaskContext())
    load_s = time.perf_counter() - t0
    pipe = base.model
    original = pipe.scheduler
    common = dict(prompt=PROMPT, model_id=card.id, steps=args.steps, width=args.size, height=args.size, seed=1,
                  cfg_scale=7.5, scheduler="Euler a")
    req = PaintRequest(**common, uid="bench")
    req_saving = PaintRequest(**common, uid="bench-save", output_dir=str(tmp / "library"),
                              gallery=str(tmp / "gallery.sqlite"))

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def studio(r: PaintRequest = req) -> float:
        done: list = []
        sync()
        t = time.perf_counter()
        runtime.submit(r, on_result=done.append, on_error=done.append)
        while not done:
            try:
                posted.get(timeout=0.005)()  # this thread plays the Qt main thread
            except queue.Empty:
                pass
        if not hasattr(done[0], "images"):
            raise RuntimeError(getattr(done[0], "user_message", str(done[0])))
        return time.perf_counter() - t

    def bare() -> float:
        pipe.scheduler = diffusion.make_scheduler(req.scheduler, original)
        kw = diffusion.call_kwargs(req, None, None, [], "sd")
        sync()
        t = time.perf_counter()
        try:
            with torch.inference_mode():
                pipe(**kw, generator=torch.Generator("cpu").manual_seed(req.seed))
            sync()
        finally:
            pipe.scheduler = original
        return time.perf_counter() - t

    def timed(fns: dict, repeats: int) -> dict[str, float]:
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):  # interleaved: clock and thermal drift fall on all alike
            for k, fn in fns.items():
                times[k].append(fn())
        return {k: statistics.median(v) for k, v in times.items()}

    figures: dict = {"device": manager.device, "dtype": str(dtype).replace("torch.", ""), "steps": args.steps,
                     "size": f"{args.size}x{args.size}", "sampler": req.scheduler, "cfg_scale": req.cfg_scale,
                     "repeats": args.repeats, "model": "SD 1.5 UNet/VAE/text encoder from the public configs, random "
                     "weights", "build_s": round(build_s, 1), "load_through_manager_s": round(load_s, 2),
                     "goal_ratio": GOAL_RATIO, "attention_default": type(
                         next(iter(pipe.unet.attn_processors.values()))).__name__}
    if device == "cuda":
        figures["device_name"] = torch.cuda.get_device_name(0)
    try:
        studio()  # warm-up: kernels, cuDNN autotuning, the engine's first-call work
        bare()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        studio()
        if device == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**20
            figures["peak_vram_mb"] = round(peak, 0)
            figures["peak_vram_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 0)
            figures["vram_budget_mb"] = round(manager.budget_mb(VRAM), 0)
            figures["ratio_peak_vram_to_budget"] = round(peak / max(figures["vram_budget_mb"], 1), 3)
            pre = manager.preflight(card.id, width=args.size, height=args.size)
            figures["preflight_estimate_mb"] = round(pre.need_mb, 0)
            figures["ratio_peak_vram_to_preflight_estimate"] = round(peak / max(pre.need_mb, 1), 3)
        main_t = timed({"bare": bare, "studio": studio, "studio_saving": lambda: studio(req_saving)}, args.repeats)
        variants: dict[str, float] = {"studio": main_t["studio"], "studio_saving": main_t["studio_saving"]}

        # -- speed options, applied to the same pipeline object ---------------------------------------
        pipe.unet.set_attn_processor(AttnProcessor())
        pipe.vae.set_attn_processor(AttnProcessor())
        bare()
        variants["bare, eager attention (SDPA off)"] = timed({"x": bare}, args.repeats)["x"]
        pipe.unet.set_attn_processor(AttnProcessor2_0())
        pipe.vae.set_attn_processor(AttnProcessor2_0())
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        bare()
        variants["bare, channels-last"] = timed({"x": bare}, args.repeats)["x"]
        if not args.no_compile:
            unet = pipe.unet
            pipe.unet = torch.compile(unet)
            t = time.perf_counter()
            bare()  # compiles
            figures["compile_warmup_s"] = round(time.perf_counter() - t, 1)
            both = timed({"bare": bare, "studio": studio}, args.repeats)
            variants["bare, channels-last + torch.compile(unet)"] = both["bare"]
            variants["studio, channels-last + torch.compile(unet)"] = both["studio"]
    finally:
        runtime.shutdown(30.0)
    b = main_t["bare"]
    figures["bare_diffusers"] = {"image_s": round(b, 3), "it_per_s": round(args.steps / b, 2)}
    figures["variants"] = {}
    for name, secs in variants.items():
        # The compiled studio path is compared with the compiled bare call: same pipeline, same options.
        ref = variants.get("bare, channels-last + torch.compile(unet)", b) if name.startswith("studio, ") else b
        figures["variants"][name] = {"image_s": round(secs, 3), "it_per_s": round(args.steps / secs, 2),
                                     "ratio_time_to_bare": round(secs / b, 3),
                                     "ratio_time_to_same_options_bare": round(secs / ref, 3)}
    ratio = figures["variants"]["studio"]["ratio_time_to_bare"]
    figures["ratio_studio_to_bare"] = ratio
    figures["goal_met"] = ratio <= GOAL_RATIO
    figures["notes"] = ("it/s = steps / whole image time (text encoding, denoising with classifier-free guidance, "
                        "VAE decode); the studio has no switch for channels-last or torch.compile: those rows apply "
                        "them from the benchmark")
    print(f"{figures.get('device_name', device)}: SD 1.5 {figures['size']}, {args.steps} steps, {figures['dtype']} "
          f"(build {build_s:.0f} s, load through the manager {load_s:.1f} s)")
    print(f"  bare diffusers        {b:7.3f} s/image  {args.steps / b:7.2f} it/s")
    for name, d in figures["variants"].items():
        print(f"  {name:<45} {d['image_s']:7.3f} s/image  {d['it_per_s']:7.2f} it/s  x{d['ratio_time_to_bare']:.3f}")
    if "peak_vram_mb" in figures:
        print(f"  peak VRAM {figures['peak_vram_mb']:.0f} MB (reserved {figures['peak_vram_reserved_mb']:.0f}); manager "
              f"budget {figures['vram_budget_mb']:.0f} MB; preflight estimate {figures['preflight_estimate_mb']:.0f} MB")
    print(f"  studio / bare = {ratio:.3f} (goal <= {GOAL_RATIO}: {'met' if figures['goal_met'] else 'NOT met'})")
    if dry:
        print("(CPU dry run with tiny configs: nothing recorded)")
    else:
        record("gpu", figures)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if np is not None else 1


if __name__ == "__main__":
    sys.exit(main())
