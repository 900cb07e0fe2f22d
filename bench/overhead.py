"""Overhead of the studio path against direct library calls with the same model object and inputs, CPU.

1. Feature maps (Inspect): the feature-map job through the runtime (GPU lane, engine: preprocessing, a
   forward hook that stops the pass at the layer, the maps to numpy, the result posted back) against a
   user's direct code: PIL resize + normalise, a forward hook on the same layer, a full forward pass.
   Model: the starter CNN (assets/starter/cnn), else an untrained torchvision ResNet-18.
2. open_clip encode (Label): zero-shot labelling of one image against 100 labels with the text
   embeddings cached, through the runtime, against open_clip's own `preprocess` + `encode_image` +
   a matrix product with the same cached text features. Model: open_clip ViT-B-32 built from its config
   with random weights (builtin, nothing downloaded); --quick uses the tiny test open_clip (32 px).
The transformers CLIP encode is in bench.label, transformers generate in bench.chat, the diffusers
pipeline call in bench.paint. Goal: ratio <= 1.05.
Run: python -m bench.overhead [--repeats N] [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.lane import interleaved_lane, lane_runtime

GOAL = 1.05


def _figure(name: str, baseline: str, times: dict, model: str, extra: dict | None = None) -> dict:
    s, d = statistics.median(times["studio"]), statistics.median(times["direct"])
    out = {"figure": name, "model": model, "baseline": baseline, "studio_ms": round(s, 2), "direct_ms": round(d, 2),
           "studio_min_ms": round(min(times["studio"]), 2), "direct_min_ms": round(min(times["direct"]), 2),
           "ratio": round(s / d, 3), "ratio_min": round(min(times["studio"]) / min(times["direct"]), 3),
           "goal_ratio": GOAL, "goal_met": s / d <= GOAL}
    if "engine" in times:
        out["engine_only_ms"] = round(statistics.median(times["engine"]), 2)
        out["ratio_engine_only"] = round(out["engine_only_ms"] / d, 3)
    out.update(extra or {})
    return out


def bench_featuremaps(repeats: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from studio.catalog.cards import load_catalog
    from studio.catalog.requests import ModelPolicy
    from studio.core.context import TaskContext
    from studio.core.image import StudioImage
    from studio.core.paths import assets_dir
    from studio.core.requests import FeatureMapRequest
    from studio.engines import featuremaps
    from studio.engines.manager import ModelManager

    catalog = load_catalog([assets_dir() / "models.toml"])
    model_id = "starter-cnn" if (assets_dir() / "starter" / "cnn" / "config.json").exists() else "resnet18-untrained"
    manager = ModelManager(catalog, policy=ModelPolicy(device="cpu"))
    pil = Image.open(assets_dir() / "samples" / "astronaut.jpg").convert("RGB")
    image = StudioImage(np.asarray(pil))
    req = FeatureMapRequest(image, model_id)
    runtime, call, on_lane, _pump = lane_runtime(manager)
    try:
        first = call(req)  # loads the model on the lane thread
        entry = manager.get(model_id)
        layer, size = first.layer, first.input_size[0]
        model = entry.model
        module = dict(model.named_modules())[layer]
        mean = np.asarray(featuremaps.IMAGENET_MEAN, np.float32)
        std = np.asarray(featuremaps.IMAGENET_STD, np.float32)

        class Stop(Exception):
            pass

        def direct(stop: bool = True):
            """What a user writes: preprocess, hook the layer, forward (stopped at the layer, as the studio
            does, or the full pass when `stop` is False)."""
            arr = (np.asarray(pil.resize((size, size), Image.BILINEAR), np.float32) / 255.0 - mean) / std
            x = torch.from_numpy(arr.transpose(2, 0, 1)).unsqueeze(0)
            got = {}

            def hook(_m, _i, o):
                got["out"] = o
                if stop:
                    raise Stop()

            h = module.register_forward_hook(hook)
            try:
                with torch.inference_mode():
                    model(x)
            except Stop:
                pass
            finally:
                h.remove()
            return got["out"][0].float().numpy()[:64]

        on_lane(direct)
        times = interleaved_lane({"studio": lambda: call(req)},
                                  {"engine": lambda: featuremaps.run(req, TaskContext(), manager),
                                   "direct": direct, "direct_full": lambda: direct(False)}, on_lane, repeats)
        same = float(np.abs(on_lane(direct)[0] - first.maps).max())
        threads = on_lane(torch.get_num_threads)[0]
    finally:
        runtime.shutdown()
    full = statistics.median(times.pop("direct_full"))
    return _figure(f"feature maps ({model_id}, layer {layer}, {size} px)", "preprocess + hook, forward stopped at the layer",
                   times, model_id, {"max_abs_difference_vs_direct": round(same, 6), "direct_full_forward_ms": round(full, 2),
                                     "ratio_to_full_forward": round(statistics.median(times["studio"]) / full, 3),
                                     "torch_threads": threads})


def bench_open_clip(repeats: int, quick: bool, tmp: Path) -> dict:
    import numpy as np
    import torch

    from studio.catalog.cards import Catalog, ModelCard
    from studio.catalog.requests import ModelPolicy
    from studio.core.context import TaskContext
    from studio.core.image import StudioImage
    from studio.core.label_requests import SINGLE_TEMPLATE, LabelRequest, preset_labels, prompts
    from studio.core.paths import assets_dir
    from studio.engines import clip
    from studio.engines.manager import ModelManager

    if quick:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.helpers.tiny_models import save_tiny_open_clip

        folder = save_tiny_open_clip(tmp / "open-clip")
        card = ModelCard(id="oc-tiny", name="tiny open_clip", task="clip", library="open_clip",
                         source=f"local:{folder}", trained=False)
        note = "tiny random open_clip (32 px, 1 layer): per-call overhead only"
    else:
        card = ModelCard(id="oc-vit-b-32", name="open_clip ViT-B-32 (random)", task="clip", library="open_clip",
                         source="builtin:ViT-B-32", trained=False)
        note = "open_clip ViT-B-32 from its config, random weights (224 px)"
    manager = ModelManager(Catalog([card]), policy=ModelPolicy(device="cpu"))
    labels = tuple(preset_labels("imagenet"))[:100]
    templates = (SINGLE_TEMPLATE,)
    from PIL import Image

    pil = Image.open(assets_dir() / "samples" / "astronaut.jpg").convert("RGB")
    req = LabelRequest(StudioImage(np.asarray(pil)), card.id, labels, templates)
    runtime, call, on_lane, _pump = lane_runtime(manager)
    try:
        first = call(req)  # loads the model and encodes + caches the label texts, on the lane thread
        entry = manager.get(card.id)
        model, preprocess, tokenizer = entry.model, entry.preprocess, entry.tokenizer

        def encode_text():
            with torch.inference_mode():
                t = model.encode_text(tokenizer(list(prompts(labels, templates))))
                return t / t.norm(dim=-1, keepdim=True)

        text = on_lane(encode_text)[0]

        def direct():
            with torch.inference_mode():
                img = model.encode_image(preprocess(pil).unsqueeze(0))
                img = img / img.norm(dim=-1, keepdim=True)
                return (img @ text.T)[0].numpy()

        on_lane(direct)
        times = interleaved_lane({"studio": lambda: call(req)},
                                  {"engine": lambda: clip.run_label(req, TaskContext(), manager), "direct": direct},
                                  on_lane, repeats)
        diff = float(np.abs(on_lane(direct)[0] - first.cosine).max())
    finally:
        runtime.shutdown()
    return _figure(f"open_clip encode, 1 image vs {len(labels)} cached labels ({card.id})",
                   "preprocess + encode_image + matmul", times, card.id,
                   {"model_note": note, "max_abs_cosine_difference_vs_direct": round(diff, 5)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.overhead")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.common import record

    figures: dict = {"device": "cpu", "repeats": args.repeats,
                     "notes": "studio = through the runtime (GPU lane thread, result posted to this thread); "
                              "engine_only = the engine function called directly; ratios are medians, "
                              "ratio_min compares the fastest runs (steadier on a shared machine)"}
    with tempfile.TemporaryDirectory(prefix="studio-bench-overhead-") as tmp:
        for key, fn in (("featuremaps", lambda: bench_featuremaps(args.repeats)),
                        ("open_clip", lambda: bench_open_clip(args.repeats, args.quick, Path(tmp)))):
            try:
                figures[key] = fn()
            except Exception as exc:  # noqa: BLE001 - one failure must not hide the other figure
                figures[key] = {"figure": key, "skipped": f"failed: {type(exc).__name__}: {exc}"[:300]}
            d = figures[key]
            if "ratio" in d:
                print(f"{d['figure']}: studio {d['studio_ms']:.2f} ms (engine only {d.get('engine_only_ms')} ms) vs "
                      f"direct {d['direct_ms']:.2f} ms: ratio {d['ratio']:.3f} (min-based {d['ratio_min']:.3f}; goal <= "
                      f"{GOAL}: {'met' if d['goal_met'] else 'NOT met'})")
            else:
                print(f"{key}: {d['skipped']}")
    record("overhead", figures)
    return 0 if all("ratio" in figures[k] for k in ("featuremaps", "open_clip")) else 1


if __name__ == "__main__":
    sys.exit(main())
