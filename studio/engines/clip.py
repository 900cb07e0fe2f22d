"""CLIP engines of the label workspace: zero-shot labelling, word-to-region maps, the text-embedding cache,
and the command line (`python -m studio.engines.clip accuracy FOLDER --model ID`).

Every engine is `run(request, ctx, models)` on the GPU lane. Text embeddings are cached here, on the lane
side, in an LRU keyed by (model id, model object, labels, templates): typing one more label or moving a
slider never re-encodes 1000 labels x 80 templates. Entries of a model are dropped when the manager
unloads it (a weakref finalizer on the model object). Results carry numpy arrays only.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict

import numpy as np

from studio.core.context import TaskContext
from studio.core.errors import BadInputError
from studio.core.label_requests import (LabelRequest, LabelResult, RegionRequest, RegionResult,
                                        check_labels, check_templates, prompts)
from studio.engines.clip_backend import ClipAdapter, adapt

TEXT_CACHE_SIZE = 16
TEXT_CHUNK = 256

_TEXT: "OrderedDict[tuple, object]" = OrderedDict()  # key -> (labels, dim) unit tensor on the model's device
_lock = threading.Lock()
_watched: dict[int, str] = {}


def _forget(model_id: str, token: int) -> None:
    """Finalizer: the model object was released by the manager; its text embeddings go too."""
    with _lock:
        for key in [k for k in _TEXT if k[0] == model_id and k[1] == token]:
            del _TEXT[key]
        _watched.pop(token, None)


def clear_text_cache(model_id: str | None = None) -> None:
    with _lock:
        for key in [k for k in _TEXT if model_id is None or k[0] == model_id]:
            del _TEXT[key]


def text_cache_keys() -> list[tuple]:
    with _lock:
        return list(_TEXT)


def adapter_for(model_id: str, entry) -> ClipAdapter:
    adapter = adapt(entry)
    token = id(adapter.model)
    with _lock:
        if token not in _watched:
            _watched[token] = model_id
            weakref.finalize(adapter.model, _forget, model_id, token)
    return adapter


def _key(adapter: ClipAdapter, model_id: str, labels: tuple[str, ...], templates: tuple[str, ...]) -> tuple:
    return (model_id, id(adapter.model), templates, labels)


def is_cached(adapter: ClipAdapter, model_id: str, labels, templates) -> bool:
    with _lock:
        return _key(adapter, model_id, tuple(labels), tuple(templates)) in _TEXT


def text_embeddings(adapter: ClipAdapter, model_id: str, labels, templates, ctx: TaskContext | None = None,
                    span: tuple[float, float] = (0.0, 1.0)):
    """(labels, dim) unit tensor: each label's prompts encoded, averaged over templates, renormalised."""
    import torch
    import torch.nn.functional as F

    labels, templates = tuple(labels), tuple(templates)
    key = _key(adapter, model_id, labels, templates)
    with _lock:
        hit = _TEXT.get(key)
        if hit is not None:
            _TEXT.move_to_end(key)
            return hit
    texts = prompts(labels, templates)
    chunks = []
    lo, hi = span
    for start in range(0, len(texts), TEXT_CHUNK):
        if ctx is not None:
            ctx.check()
            ctx.progress(lo + (hi - lo) * start / len(texts),
                         f"Encoding prompts {start + 1}–{min(start + TEXT_CHUNK, len(texts))} of {len(texts)}…")
        chunks.append(adapter.encode_text(list(texts[start:start + TEXT_CHUNK])))
    emb = torch.cat(chunks)
    if len(templates) > 1:
        emb = F.normalize(emb.view(len(labels), len(templates), -1).mean(1), dim=-1)
    with _lock:
        _TEXT[key] = emb
        while len(_TEXT) > TEXT_CACHE_SIZE:
            _TEXT.popitem(last=False)
    return emb


def _entry(request, ctx: TaskContext, models):
    entry = models.get(request.model_id, ctx)
    ctx.check()
    return entry, adapter_for(request.model_id, entry)


def run_label(request: LabelRequest, ctx: TaskContext, models) -> LabelResult:
    """Zero-shot: cosine of the image embedding with each label's (template-averaged) text embedding."""
    t0 = time.perf_counter()
    labels = check_labels(tuple(request.labels))
    templates = check_templates(tuple(request.templates))
    entry, adapter = _entry(request, ctx, models)
    cached = is_cached(adapter, request.model_id, labels, templates)
    text = text_embeddings(adapter, request.model_id, labels, templates, ctx, span=(0.05, 0.9))
    ctx.check()
    img = adapter.encode_image(adapter.pixels([request.image.rgb()]))
    cos = (img @ text.T)[0].cpu().numpy().astype(np.float32)
    ctx.progress(1.0, "Done")
    return LabelResult(
        model_id=request.model_id, model_name=entry.card.name, labels=labels, templates=templates,
        cosine=cos, logit_scale=adapter.logit_scale, logit_bias=adapter.logit_bias,
        image_embedding=img[0].cpu().numpy().astype(np.float32), text_cached=cached,
        seconds=time.perf_counter() - t0, trained=bool(getattr(entry.card, "trained", True)))


def run_region(request: RegionRequest, ctx: TaskContext, models) -> RegionResult:
    """Word-to-region: patch tokens through the post-layernorm and visual projection, cosine with the word
    (method "value": the last block's attention limited to each patch itself, see encode_patches)."""
    t0 = time.perf_counter()
    label = " ".join(request.label.split())
    if not label:
        raise BadInputError("Type a word or label to find in the image.")
    templates = check_templates(tuple(request.templates))
    entry, adapter = _entry(request, ctx, models)
    text = text_embeddings(adapter, request.model_id, (label,), templates, ctx, span=(0.05, 0.5))
    ctx.check()
    ctx.progress(0.6, "Projecting patch tokens…")
    pooled, patches = adapter.encode_patches(adapter.pixels([request.image.rgb()], crop=False), request.method)
    heat = (patches[0] @ text[0]).cpu().numpy().astype(np.float32)
    ctx.progress(1.0, "Done")
    return RegionResult(model_id=request.model_id, label=label, heatmap=heat,
                        global_cosine=float(pooled[0] @ text[0]), image_size=request.image.size,
                        seconds=time.perf_counter() - t0, image_source=request.image.source,
                        method=request.method)


def register(registry) -> None:
    """Register the label workspace's engines (all on the GPU lane: they all run a model)."""
    from studio.core.label_requests import AccuracyRequest, ArithmeticRequest, LabelBatchRequest
    from studio.engines.clip_batch import run_accuracy, run_batch
    from studio.engines.clip_vocab import run_arithmetic
    from studio.runtime.scheduler import GPU

    registry.register(LabelRequest, run_label, GPU)
    registry.register(RegionRequest, run_region, GPU)
    registry.register(LabelBatchRequest, run_batch, GPU)
    registry.register(AccuracyRequest, run_accuracy, GPU)
    registry.register(ArithmeticRequest, run_arithmetic, GPU)


# ----------------------------------------------------------------------------- command line

def _cli_models(home: str | None, device: str):
    from pathlib import Path

    from studio.catalog.cards import Catalog
    from studio.core.paths import StudioPaths, assets_dir
    from studio.engines.manager import ModelManager

    paths = StudioPaths(Path(home)) if home else StudioPaths.from_env()
    catalog = Catalog.from_toml(assets_dir() / "models.toml", paths.home / "models.toml")
    return ModelManager(catalog, device)


def _print_progress(fraction: float, text: str) -> None:
    import sys

    sys.stderr.write(f"\r{fraction * 100:5.1f}%  {text[:70]:<70}")
    sys.stderr.flush()
    if fraction >= 1.0:
        sys.stderr.write("\n")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from studio.core.errors import StudioError
    from studio.core.label_requests import (AccuracyRequest, LabelBatchRequest, TEMPLATE_SETS,
                                            load_labels_file, parse_labels, template_set)

    parser = argparse.ArgumentParser(prog="python -m studio.engines.clip",
                                     description="CLIP zero-shot tools of the studio's label workspace.")
    parser.add_argument("--model", default="starter-clip", help="model id from the catalog")
    parser.add_argument("--templates", default="single", choices=list(TEMPLATE_SETS))
    parser.add_argument("--home", help="studio data folder (default: $STUDIO_HOME or the platform data dir)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="cmd", required=True)
    acc = sub.add_parser("accuracy", help="zero-shot accuracy on FOLDER/<class name>/*.png")
    acc.add_argument("folder")
    bat = sub.add_parser("batch", help="label every image of a folder and write a CSV or JSON table")
    bat.add_argument("folder")
    bat.add_argument("--labels", help="labels separated by commas")
    bat.add_argument("--labels-file", help="a text file with one label per line")
    bat.add_argument("--out", required=True, help="output .csv or .json")
    args = parser.parse_args(argv)

    models = _cli_models(args.home, args.device)
    ctx = TaskContext(on_progress=_print_progress)
    templates = template_set(args.templates)
    try:
        if args.cmd == "accuracy":
            from studio.engines.clip_batch import run_accuracy

            res = run_accuracy(AccuracyRequest(args.folder, args.model, templates), ctx, models)
            if args.json:
                print(json.dumps({"model": res.model_id, "accuracy": res.accuracy, "total": res.total,
                                  "correct": res.correct, "classes": list(res.classes),
                                  "per_class": [list(r) for r in res.per_class],
                                  "errors": [list(e) for e in res.errors]}, indent=2))
            else:
                print(f"{res.model_id}: zero-shot accuracy {res.accuracy:.3f} ({res.correct}/{res.total}) "
                      f"over {len(res.classes)} classes in {res.seconds:.1f}s")
                for name, n, ok in res.per_class:
                    print(f"  {name:<30} {ok:>5}/{n:<5} {ok / n if n else 0:.3f}")
                for path, msg in res.errors:
                    print(f"  error: {path}: {msg}")
        else:
            from studio.engines.clip_batch import run_batch

            if args.labels_file:
                labels = load_labels_file(args.labels_file)
            else:
                labels = parse_labels((args.labels or "").replace(",", "\n"))
            res = run_batch(LabelBatchRequest(args.folder, args.model, labels, templates, csv_path=args.out),
                            ctx, models)
            print(f"{len(res.items)} images labelled, {len(res.errors)} unreadable, written to {res.csv_path}")
    except StudioError as exc:
        print(f"error: {exc.user_message}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
