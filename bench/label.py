"""Label workspace speed: one image against 1000 cached labels, batch throughput, and the studio's
engine path against direct library calls with the same inputs (ratio), on the CPU.

Model: the starter CLIP (assets/starter/clip, card `starter-clip`) loaded by the real model manager;
while that folder is missing, a random CLIP of the same shape (64x64 images, patch 8) stands in and the
output says so. Goal: <= 100 ms for one image against 1000 cached labels.
Run: python -m bench.label [--repeats N] [--images N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL_MS = 100.0


def _model(tmp: Path):
    """(ModelManager, model id, folder, note) for the starter CLIP or its random stand-in."""
    from studio.catalog.cards import Catalog, load_catalog
    from studio.core.paths import assets_dir
    from studio.engines import clip_tiny
    from studio.engines.manager import ModelManager

    if clip_tiny.has_starter_clip():
        catalog = load_catalog([assets_dir() / "models.toml"])
        if "starter-clip" not in catalog:
            catalog.add(clip_tiny.card("starter-clip", clip_tiny.starter_clip_folder(), trained=True))
        folder = clip_tiny.starter_clip_folder()
        return ModelManager(catalog, "cpu"), "starter-clip", folder, "starter CLIP (assets/starter/clip)"
    folder = clip_tiny.hf_clip_folder(tmp / "random-clip", seed=0, shape="starter")
    card = clip_tiny.card("random-starter-shape", folder)
    note = ("assets/starter/clip is MISSING: measured on a RANDOM CLIP of the starter's shape "
            "(64x64, patch 8, vision 128x4, text 64x4); the timings hold, the scores mean nothing")
    return ModelManager(Catalog([card]), "cpu"), card.id, folder, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.label")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--images", type=int, default=256, help="images in the batch-throughput folder")
    parser.add_argument("--batch-repeats", type=int, default=7, help="interleaved runs of the folder batch")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    from bench.common import record
    from bench.lane import interleaved_lane, lane_runtime
    from studio.core.context import TaskContext
    from studio.core.image import StudioImage
    from studio.core.label_requests import (SINGLE_TEMPLATE, LabelBatchRequest, LabelRequest, preset_labels,
                                            prompts)
    from studio.engines import clip
    from studio.runtime import EngineRegistry
    from studio.starter.world import SPLITS, make_scene

    tmp = Path(tempfile.mkdtemp(prefix="studio-bench-label-"))
    manager, model_id, folder, note = _model(tmp)
    print(f"model: {note}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu_count {os.cpu_count()}")
    labels = tuple(preset_labels("imagenet")) + ("red circle", "blue square")
    labels = labels[:1000]
    templates = (SINGLE_TEMPLATE,)
    image = StudioImage(make_scene(SPLITS["test"]).image)
    req = LabelRequest(image, model_id, labels, templates)

    # Every torch call on the GPU lane thread, the direct baselines included (bench/lane.py).
    registry = EngineRegistry()
    clip.register(registry)
    runtime, call, on_lane, _pump = lane_runtime(manager, registry)

    t0 = time.perf_counter()
    first = call(req)  # loads the model, encodes 1000 prompts
    cold_s = time.perf_counter() - t0
    assert not first.text_cached

    # Direct library calls, same model folder, same prompts: CLIPProcessor + CLIPModel.
    from transformers import CLIPModel, CLIPProcessor

    # The same dtype as the studio's model: from_pretrained would otherwise keep the folder's fp16.
    dtype = next(manager.get(model_id).model.parameters()).dtype

    def load_direct():
        model = CLIPModel.from_pretrained(str(folder), local_files_only=True, dtype=dtype).eval()
        processor = CLIPProcessor.from_pretrained(str(folder), local_files_only=True)
        with torch.inference_mode():
            tok = processor.tokenizer(list(prompts(labels, templates)), padding=True, return_tensors="pt")
            text = model.get_text_features(**tok)
            text = getattr(text, "pooler_output", text)
            text = text / text.norm(dim=-1, keepdim=True)
        return model, processor, text

    model, processor, text = on_lane(load_direct)[0]
    pil = image.to_pil()

    def direct():
        """(cosines, softmax probabilities) of the image against the cached labels."""
        with torch.inference_mode():
            px = processor(images=pil, return_tensors="pt")["pixel_values"]
            img = model.get_image_features(pixel_values=px)
            img = getattr(img, "pooler_output", img)
            cos = img / img.norm(dim=-1, keepdim=True) @ text.T
            return cos[0].numpy(), (model.logit_scale.exp() * cos).softmax(-1).numpy()

    times = interleaved_lane({"studio": lambda: call(req)},
                             {"engine": lambda: clip.run_label(req, TaskContext(), manager), "direct": direct},
                             on_lane, args.repeats)
    ms = {k: statistics.median(v) for k, v in times.items()}
    runtime_ms, engine_ms, direct_ms = ms["studio"], ms["engine"], ms["direct"]
    same = float(np.abs(on_lane(direct)[0][0] - first.cosine).max())

    # Batch throughput: a folder of Shapes-world PNGs (decoding included), the job through the runtime
    # vs direct batched calls on the lane.
    shots = tmp / "shots"
    shots.mkdir()
    for i in range(args.images):
        Image.fromarray(make_scene(SPLITS["test"] + i).image).save(shots / f"{i:04d}.png")
    breq = LabelBatchRequest(str(shots), model_id, labels, templates, batch_size=32)

    def direct_batch():
        with torch.inference_mode():
            for i in range(0, args.images, 32):
                batch = [Image.open(shots / f"{j:04d}.png").convert("RGB")
                         for j in range(i, min(i + 32, args.images))]
                f = model.get_image_features(pixel_values=processor(images=batch, return_tensors="pt")["pixel_values"])
                f = getattr(f, "pooler_output", f)
                (f / f.norm(dim=-1, keepdim=True) @ text.T).numpy()

    call(breq)  # warm
    btimes = interleaved_lane({"studio": lambda: call(breq)}, {"direct": direct_batch}, on_lane, args.batch_repeats)
    runtime.shutdown()
    batch_ips = args.images / (statistics.median(btimes["studio"]) / 1000.0)
    direct_ips = args.images / (statistics.median(btimes["direct"]) / 1000.0)

    figures = {
        "model": model_id,
        "model_note": note,
        "device": "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "labels": len(labels),
        "repeats": args.repeats,
        "cold_first_call_s": round(cold_s, 3),
        "one_image_1000_cached_labels_ms": round(runtime_ms, 2),
        "engine_alone_ms": round(engine_ms, 2),
        "direct_library_ms": round(direct_ms, 2),
        "ratio_studio_to_direct": round(runtime_ms / direct_ms, 3),
        "max_abs_cosine_difference_vs_direct": round(same, 6),
        "goal_ms": GOAL_MS,
        "goal_met": runtime_ms <= GOAL_MS,
        "batch_images": args.images,
        "batch_repeats": args.batch_repeats,
        "batch_images_per_s": round(batch_ips, 1),
        "direct_batch_images_per_s": round(direct_ips, 1),
        "batch_ratio_studio_to_direct": round(direct_ips / batch_ips, 3),
    }
    record("label", figures)
    w = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{w}}  {v}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
