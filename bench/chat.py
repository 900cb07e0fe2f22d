"""Chat speed: time to first token and tokens/s of the studio's chat path (runtime, GPU lane,
model manager, the previewing streamer, previews through the bridge)
against a direct `model.generate` call with the same inputs in the same process (ratio).

Model: the starter VLM (assets/starter/vlm) when that folder exists; until then a tiny random
LLaVA built from configs (tests/helpers/tiny_vlm.py: CLIP tower 32 px / patch 8 + 2-layer Llama,
hidden 32) stands in and the output says so. A model that small measures the per-token overhead
of each path rather than arithmetic, which is what the ratio is about. Its generation config
suppresses end-of-sequence; for a trained model the benchmark sets `min_new_tokens`, so every answer
has exactly --tokens tokens either way.
Run: python -m bench.chat [--repeats N] [--tokens N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "What is in this picture?"


def _model(tmp: Path):
    from studio.catalog.cards import Catalog, ModelCard, load_catalog
    from studio.core.paths import assets_dir

    starter = assets_dir() / "starter" / "vlm"
    if (starter / "config.json").exists():
        catalog = load_catalog([assets_dir() / "models.toml"])
        if "starter-vlm" not in catalog:
            catalog.add(ModelCard("starter-vlm", "Starter VLM", "vlm", "transformers", "bundled:starter/vlm"))
        return catalog, "starter-vlm", "starter VLM (assets/starter/vlm)"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.helpers.tiny_vlm import save_tiny_llava_chat

    folder = save_tiny_llava_chat(tmp / "tiny-llava")
    note = ("assets/starter/vlm is MISSING: measured on a TINY RANDOM LLaVA (CLIP 32px/patch 8 + 2-layer Llama, "
            "hidden 32); the figures are per-token overhead, the answers are gibberish")
    return Catalog([ModelCard("tiny-llava", "Tiny LLaVA", "vlm", "transformers", f"local:{folder}")]), \
        "tiny-llava", note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=96, help="new tokens per answer")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 steadies figures on a busy machine")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from bench.common import record
    from bench.lane import lane_runtime
    from studio.core.chat_requests import ChatRequest, ChatTurn
    from studio.core.image import StudioImage
    from studio.engines import vlm
    from studio.engines.manager import ModelManager
    from studio.runtime import EngineRegistry

    with tempfile.TemporaryDirectory() as tmpdir:
        catalog, model_id, note = _model(Path(tmpdir))
        registry = EngineRegistry()
        vlm.register(registry)
        manager = ModelManager(catalog, "auto")
        # Every torch call on the GPU lane thread, the direct baseline included (bench/lane.py).
        runtime, _call, on_lane, pump = lane_runtime(manager, registry)
        rng = np.random.default_rng(0)
        image = StudioImage(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
        # Sampling (seeded, the same in both paths): a random model decoding greedily tends to repeat
        # one token without spaces.
        request = ChatRequest(model_id, (ChatTurn("user", QUESTION, image),), max_new_tokens=args.tokens,
                              temperature=1.0, seed=0)

        def studio_path() -> dict:
            """Submit on the 'main thread' (this one), run what it posts back until the result."""
            out: dict = {}
            t0 = time.perf_counter()
            runtime.submit(request, on_result=lambda r: out.setdefault("result", r),
                           on_preview=lambda p: out.setdefault("first_preview", time.perf_counter() - t0),
                           on_error=lambda e: out.setdefault("error", e))
            while "result" not in out and "error" not in out:
                pump()  # blocks until the lane posts something (a preview, progress, the result), as Qt's loop
            out["wall"] = time.perf_counter() - t0
            if "error" in out:
                raise RuntimeError(out["error"].user_message)
            return out

        try:
            studio_path()  # loads the model through the manager (not timed)
            entry = manager.get(model_id)
            # A trained model ends its answers early: both paths share this model object, so from here
            # on both generate exactly --tokens tokens (end-of-sequence suppressed until then).
            entry.model.generation_config.min_new_tokens = args.tokens
            prep = on_lane(lambda: vlm.prepare(request, entry))[0]
            kwargs = vlm.generate_kwargs(request, entry.model, prep["tokenizer"])
            one = dict(kwargs, max_new_tokens=1, min_new_tokens=1)

            def direct(kw: dict) -> None:
                with torch.inference_mode(), torch.random.fork_rng(devices=[]):
                    torch.manual_seed(request.seed)
                    out = entry.model.generate(**prep["inputs"], **kw)
                assert out.shape[-1] == prep["prompt_tokens"] + kw["max_new_tokens"]

            on_lane(lambda: direct(kwargs))  # warm-up
            s_ttft, s_tps, s_first_preview, d_ttft, d_tps, prep_s = [], [], [], [], [], []
            for _ in range(args.repeats):  # interleaved, so machine load falls on both alike
                r = studio_path()
                res = r["result"]
                assert res.tokens == args.tokens
                s_ttft.append(res.first_token_s)
                s_tps.append(res.tokens_per_s)
                s_first_preview.append(r.get("first_preview", float("nan")))
                prep_s.append(on_lane(lambda: vlm.prepare(request, entry))[1] / 1000.0)
                t1 = on_lane(lambda: direct(one))[1] / 1000.0
                tn = on_lane(lambda: direct(kwargs))[1] / 1000.0
                d_ttft.append(t1)
                d_tps.append((args.tokens - 1) / max(tn - t1, 1e-9))
            threads = on_lane(torch.get_num_threads)[0]
        finally:
            runtime.shutdown(10.0)

    med = statistics.median
    figures = {
        "model": note, "model_id": model_id, "device": manager.device, "torch_threads": threads,
        "prompt_tokens": prep["prompt_tokens"], "new_tokens": args.tokens, "repeats": args.repeats,
        "studio": {"ttft_ms": round(med(s_ttft) * 1000, 1), "tokens_per_s": round(med(s_tps), 1),
                   "first_text_on_main_thread_ms": round(med(s_first_preview) * 1000, 1)},
        "direct_generate": {"ttft_ms": round(med(d_ttft) * 1000, 1), "tokens_per_s": round(med(d_tps), 1)},
        "prepare_ms": round(med(prep_s) * 1000, 1),
        "notes": "all torch calls on the GPU lane thread (bench/lane.py); studio ttft: job start to first token, including the chat template and image processing "
                 "(prepare_ms); direct ttft: generate with 1 new token on prepared inputs; tokens/s excludes "
                 "the first token; sampling at temperature 1 with the same seed in both paths",
    }
    figures["ratio_tokens_per_s"] = round(figures["studio"]["tokens_per_s"] / figures["direct_generate"]["tokens_per_s"], 3)
    figures["ratio_ttft"] = round(figures["studio"]["ttft_ms"] / figures["direct_generate"]["ttft_ms"], 3)
    print(f"model: {note}")
    print(f"prompt {figures['prompt_tokens']} tokens, {args.tokens} new tokens, median of {args.repeats}")
    print(f"studio path:     first token {figures['studio']['ttft_ms']:8.1f} ms   "
          f"{figures['studio']['tokens_per_s']:8.1f} tokens/s   (first text on the main thread after "
          f"{figures['studio']['first_text_on_main_thread_ms']:.1f} ms)")
    print(f"direct generate: first token {figures['direct_generate']['ttft_ms']:8.1f} ms   "
          f"{figures['direct_generate']['tokens_per_s']:8.1f} tokens/s")
    print(f"(processor: chat template + image, inside the studio's first token: {figures['prepare_ms']:.1f} ms)")
    print(f"ratio studio/direct: tokens/s {figures['ratio_tokens_per_s']:.3f}   "
          f"time to first token {figures['ratio_ttft']:.3f}")
    record("chat", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
