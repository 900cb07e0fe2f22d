"""Peak resident memory of each workspace's main job, each in a fresh process.

A preparing child builds the stand-in models (so building them never counts); then, per workspace, a
child imports the libraries, loads the model through the model manager and runs the workspace's engine
once, reporting resident memory (psutil) after the imports and after the load, and the process peak
(ru_maxrss) after the load and after the job. The baseline is the process with the libraries imported
and the model loaded: the ratio peak / loaded shows what the job itself adds.

  inspect  feature maps of the starter CNN (assets/starter/cnn), 224 px
  label    CLIP zero-shot, one image against 1000 labels (starter CLIP, else a random one of its shape)
  chat     a VLM answer, 32 new tokens (starter VLM, else a tiny random LLaVA)
  paint    txt2img (starter SD, else a random SD 1.x with UNet 32/64), 256 px, 20 steps
  tape     an AnimateDiff clip, 8 frames 32x32, 2 steps (starter motion + SD, else a tiny random one)
Run: python -m bench.memory [--quick] [--only inspect,paint]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKSPACES = ("inspect", "label", "chat", "paint", "tape")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


# -- preparing the stand-in models (own process) ------------------------------------------------------
def prepare(root: Path) -> dict:
    """Model folders and cards for every workspace; writes root/models.json."""
    sys.path.insert(0, str(ROOT))
    from studio.core.paths import assets_dir
    from studio.engines import clip_tiny

    starter = assets_dir() / "starter"
    spec: dict = {}
    if clip_tiny.has_starter_clip():
        spec["label"] = {"catalog": "assets", "id": "starter-clip", "note": "starter CLIP"}
    else:
        folder = clip_tiny.hf_clip_folder(root / "clip", seed=0, shape="starter")
        spec["label"] = {"cards": [["rand-clip", "clip", "transformers", f"local:{folder}", {}]], "id": "rand-clip",
                         "note": "RANDOM CLIP of the starter's shape (assets/starter/clip is missing)"}
    if (starter / "vlm" / "config.json").exists():
        spec["chat"] = {"cards": [["starter-vlm", "vlm", "transformers", "bundled:starter/vlm",
                                   {"vision_tower": "starter/clip"}]],
                        "id": "starter-vlm", "note": "starter VLM"}
    else:
        from tests.helpers.tiny_vlm import save_tiny_llava_chat

        folder = save_tiny_llava_chat(root / "llava")
        spec["chat"] = {"cards": [["tiny-llava", "vlm", "transformers", f"local:{folder}", {}]], "id": "tiny-llava",
                        "note": "TINY RANDOM LLaVA (assets/starter/vlm is missing)"}
    if (starter / "sd" / "model_index.json").exists():
        spec["paint"] = {"catalog": "assets", "id": "starter-sd", "note": "starter SD"}
    else:
        from tests.helpers.tiny_sd import save_bench_sd

        folder = save_bench_sd(root / "bench-sd")
        spec["paint"] = {"cards": [["bench-sd", "diffusion", "diffusers", f"local:{folder}", {}]], "id": "bench-sd",
                         "note": "RANDOM SD 1.x, UNet 32/64 (assets/starter/sd is missing)"}
    if (starter / "motion" / "config.json").exists() and spec["paint"]["id"] == "starter-sd":
        spec["tape"] = {"catalog": "assets", "id": "starter-motion", "base": "starter-sd",
                        "note": "starter motion model on the starter SD"}
    else:
        from tests.helpers import tiny_models, tiny_video

        zoo = tiny_models.Zoo(root / "zoo")
        sd, motion = zoo.path("sd"), zoo.path("motion")
        spec["tape"] = {"cards": [[tiny_video.SD_ID, "diffusion", "diffusers", f"local:{sd}", {}],
                                  [tiny_video.MOTION_ID, "motion", "diffusers", f"local:{motion}",
                                   tiny_video.MOTION_OPTIONS]],
                        "id": tiny_video.MOTION_ID, "base": tiny_video.SD_ID,
                        "note": "TINY RANDOM AnimateDiff (no starter motion model)"}
    if (starter / "cnn" / "config.json").exists():
        spec["inspect"] = {"catalog": "assets", "id": "starter-cnn", "note": "starter CNN"}
    else:
        spec["inspect"] = {"catalog": "assets", "id": "resnet18-untrained",
                           "note": "untrained torchvision ResNet-18 (assets/starter/cnn is missing)"}
    (root / "models.json").write_text(json.dumps(spec))
    return spec


# -- one workspace's job (own process) ----------------------------------------------------------------
def _manager(spec: dict):
    from studio.catalog.cards import Catalog, ModelCard, load_catalog
    from studio.catalog.requests import ModelPolicy
    from studio.core.paths import assets_dir
    from studio.engines.manager import ModelManager

    if spec.get("catalog") == "assets":
        catalog = load_catalog([assets_dir() / "models.toml"])
    else:
        catalog = Catalog([ModelCard(id=i, name=i, task=t, library=lib, source=src, options=dict(opts), trained=False)
                           for i, t, lib, src, opts in spec["cards"]])
    return ModelManager(catalog, policy=ModelPolicy(device="cpu"))


def child(workspace: str, root: Path, quick: bool) -> dict:
    import numpy as np

    t0 = time.perf_counter()
    import diffusers  # noqa: F401 - every workspace's process has these once the GPU lane has run
    import torch
    import transformers  # noqa: F401

    from studio.core.context import TaskContext
    from studio.core.image import StudioImage
    from studio.starter.world import SPLITS, make_scene

    spec = json.loads((root / "models.json").read_text())[workspace]
    out = {"model": spec["id"], "model_note": spec["note"], "import_rss_mb": round(_rss_mb(), 1),
           "torch_threads": torch.get_num_threads()}
    manager = _manager(spec)
    image = StudioImage(make_scene(SPLITS["test"]).image)
    if workspace == "inspect":
        from studio.core.requests import FeatureMapRequest
        from studio.engines import featuremaps

        manager.get(spec["id"])
        job = "feature maps, one image"
        run = lambda: featuremaps.run(FeatureMapRequest(image, spec["id"]), TaskContext(), manager)  # noqa: E731
    elif workspace == "label":
        from studio.core.label_requests import SINGLE_TEMPLATE, LabelRequest, preset_labels
        from studio.engines import clip

        manager.get(spec["id"])
        labels = tuple(preset_labels("imagenet"))[:1000]
        job = f"one image vs {len(labels)} labels"
        run = lambda: clip.run_label(LabelRequest(image, spec["id"], labels, (SINGLE_TEMPLATE,)),  # noqa: E731
                                     TaskContext(), manager)
    elif workspace == "chat":
        from studio.core.chat_requests import ChatRequest, ChatTurn
        from studio.engines import vlm

        manager.get(spec["id"])
        tokens = 8 if quick else 32
        job = f"VLM answer, {tokens} new tokens"
        req = ChatRequest(spec["id"], (ChatTurn("user", "What is in this picture?", image),), max_new_tokens=tokens,
                          temperature=1.0, seed=0)
        run = lambda: vlm.run(req, TaskContext(), manager)  # noqa: E731
    elif workspace == "paint":
        from studio.core.paint_requests import PaintRequest
        from studio.engines import diffusion

        manager.get(spec["id"])
        size, steps = (64, 4) if quick else (256, 20)
        job = f"txt2img {size}x{size}, {steps} steps"
        req = PaintRequest(prompt="a lighthouse on a cliff", model_id=spec["id"], steps=steps, width=size,
                           height=size, seed=1, output_dir=str(root / f"out-{os.getpid()}"),
                           gallery=str(root / f"gallery-{os.getpid()}.sqlite"))
        run = lambda: diffusion.run(req, TaskContext(), manager)  # noqa: E731
    elif workspace == "tape":
        from studio.core.tape_requests import TapeRequest
        from studio.engines import video

        manager.get(spec["base"])
        manager.get(spec["id"])
        job = "AnimateDiff clip, 8 frames 32x32, 2 steps"
        req = TapeRequest(spec["id"], "a red circle moving right", base_id=spec["base"], frames=8, width=32,
                          height=32, steps=2, seed=1)
        run = lambda: video.run(req, TaskContext(), manager)  # noqa: E731
    else:
        raise ValueError(workspace)
    out["load_s"] = round(time.perf_counter() - t0, 2)
    out["loaded_rss_mb"] = round(_rss_mb(), 1)
    out["peak_after_load_mb"] = round(_peak_mb(), 1)
    t1 = time.perf_counter()
    result = run()
    out["job_s"] = round(time.perf_counter() - t1, 3)
    out["peak_rss_mb"] = round(_peak_mb(), 1)
    out["after_job_rss_mb"] = round(_rss_mb(), 1)
    out["job"] = job
    out["job_adds_mb"] = round(out["peak_rss_mb"] - max(out["loaded_rss_mb"], out["peak_after_load_mb"]), 1)
    out["ratio_peak_to_loaded"] = round(out["peak_rss_mb"] / out["loaded_rss_mb"], 3)
    assert result is not None and np is not None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.memory")
    ap.add_argument("--quick", action="store_true", help="smaller paint and chat jobs")
    ap.add_argument("--only", default="", help="comma-separated workspaces")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--root", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child == "prepare":
        prepare(Path(args.root))
        return 0
    if args.child:
        print("RESULT " + json.dumps(child(args.child, Path(args.root), args.quick)), flush=True)
        return 0

    from bench.common import record

    names = [n for n in args.only.split(",") if n] or list(WORKSPACES)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    figures: dict = {"method": "fresh process per workspace; psutil RSS after imports/load, ru_maxrss peak after the "
                               "job; stand-in models built beforehand in another process", "device": "cpu"}
    with tempfile.TemporaryDirectory(prefix="studio-bench-mem-") as tmp:
        subprocess.run([sys.executable, "-m", "bench.memory", "--child", "prepare", "--root", tmp], cwd=ROOT, env=env,
                       check=True, timeout=900)
        for name in names:
            cmd = [sys.executable, "-m", "bench.memory", "--child", name, "--root", tmp] + (["--quick"] if args.quick else [])
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
            res = next((json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
            if res is None:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                figures[name] = {"error": tail[0]}
                print(f"{name}: FAILED: {tail[0]}")
                continue
            figures[name] = res
            print(f"{name:<8} {res['job']:<40} peak {res['peak_rss_mb']:7.0f} MB  (imports {res['import_rss_mb']:.0f} MB, "
                  f"loaded {res['loaded_rss_mb']:.0f} MB, job adds {res['job_adds_mb']:.0f} MB; {res['model_note']})")
    record("memory", figures)
    return 0 if all("error" not in figures[n] for n in names) else 1


if __name__ == "__main__":
    sys.exit(main())
