"""Quality bars of the shipped starter models, measured on held-out Shapes-world seeds.

Owns the metric definitions (CNN top-1, CLIP zero-shot top-1, multi-label F1 with a
threshold calibrated on the val split, caption-to-image retrieval R@1; the VLM's live in
`vlm_eval`), the bars,
and the evaluator registry later starter models extend: each evaluator returns flat
metric keys that `python -m studio.starter evaluate --json` merges into one object.
Models are loaded only through the standard timm / transformers calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .diffusion_eval import BARS as DIFFUSION_BARS, MAX_BARS  # noqa: F401 (torch-free)
from .vlm_eval import BARS as VLM_BARS  # torch-free
from .motion_eval import BARS as MOTION_BARS
from .world import LABELS, SPLITS, make_scene

BARS = {"cnn_top1": 0.95, "clip_zeroshot_top1": 0.90, "clip_multilabel_f1": 0.70,
        "clip_retrieval_r1": 0.60}

# Held-out seed ranges (the train split stops at SPLITS["val"]).
SINGLE_SEED0 = SPLITS["test"]
MULTI_SEED0 = SPLITS["test"] + 1_000_000
RETRIEVAL_SEED0 = SPLITS["test"] + 2_000_000
CALIBRATION_SEED0 = SPLITS["val"]

FULL = dict(n_single=2000, n_multi=1000, n_val=1000, n_retrieval_batches=10)
QUICK = dict(n_single=200, n_multi=150, n_val=200, n_retrieval_batches=2)


def single_scenes(n: int, seed0: int = SINGLE_SEED0):
    return [make_scene(seed0 + i, n_objects=1) for i in range(n)]


def multi_scenes(n: int, seed0: int = MULTI_SEED0):
    """2-3 distinct objects per scene, as the multi-label bar asks."""
    return [make_scene(seed0 + i, n_objects=2 + (seed0 + i) % 2) for i in range(n)]


# ---------------------------------------------------------------- CNN

def cnn_logits(model, images: np.ndarray, batch: int = 500):
    import timm.data
    import torch

    from .train import to_tensor

    cfg = timm.data.resolve_data_config({}, model=model)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out.append(model(to_tensor(images[i:i + batch], cfg["mean"], cfg["std"])))
    return torch.cat(out).numpy()


def eval_cnn(assets: Path, n_single: int, **_) -> dict:
    from .models import load_cnn

    folder = assets / "cnn"
    if not (folder / "config.json").exists():
        return {"cnn_top1": None}
    model = load_cnn(folder)
    scenes = single_scenes(n_single)
    logits = cnn_logits(model, np.stack([s.image for s in scenes]))
    y = np.array([s.label_ids[0] for s in scenes])
    return {"cnn_top1": float((logits.argmax(1) == y).mean())}


# ---------------------------------------------------------------- CLIP

def clip_image_features(model, processor, images, batch: int = 250) -> np.ndarray:
    import torch

    from .models import image_embeds

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            pv = processor(images=list(images[i:i + batch]), return_tensors="pt")["pixel_values"]
            out.append(torch.nn.functional.normalize(image_embeds(model, pv), dim=-1))
    return torch.cat(out).numpy()


def clip_text_features(model, processor, texts: list[str], batch: int = 500) -> np.ndarray:
    import torch

    from .models import text_embeds

    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            enc = processor(text=texts[i:i + batch], padding=True, return_tensors="pt")
            out.append(torch.nn.functional.normalize(
                text_embeds(model, enc["input_ids"], enc["attention_mask"]), dim=-1))
    return torch.cat(out).numpy()


def standardise(sims: np.ndarray) -> np.ndarray:
    """Per-image z-score over the 40 labels: removes each image's overall similarity offset."""
    return (sims - sims.mean(1, keepdims=True)) / (sims.std(1, keepdims=True) + 1e-8)


def micro_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float((pred & truth).sum())
    return 2 * tp / max(1.0, float(pred.sum() + truth.sum()))


def calibrate_threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Threshold maximising micro-F1 on the calibration split: (threshold, f1 there)."""
    grid = np.quantile(scores, np.linspace(0.80, 0.995, 200))
    f1s = [micro_f1(scores >= t, truth) for t in grid]
    k = int(np.argmax(f1s))
    return float(grid[k]), float(f1s[k])


def retrieval_r1(img: np.ndarray, txt: np.ndarray, captions: list[str]) -> tuple[float, float]:
    """Caption -> image R@1 within one batch: (lenient, strict).

    Lenient counts a hit when the top image is the caption's own scene or another scene
    with the very same caption (two lone "a red circle" scenes cannot be told apart from
    the text); strict only counts the own scene.
    """
    top = (txt @ img.T).argmax(1)
    own = top == np.arange(len(captions))
    same = np.array([captions[t] == c for t, c in zip(top, captions)])
    return float((own | same).mean()), float(own.mean())


def eval_clip(assets: Path, n_single: int, n_multi: int, n_val: int, n_retrieval_batches: int,
              **_) -> dict:
    from .models import load_clip
    from .prompts import label_prompts

    folder = assets / "clip"
    if not (folder / "config.json").exists():
        return {k: None for k in BARS if k.startswith("clip_")}
    model, processor = load_clip(folder)
    prompts = clip_text_features(model, processor, label_prompts())

    scenes = single_scenes(n_single)
    sims = clip_image_features(model, processor, np.stack([s.image for s in scenes])) @ prompts.T
    y = np.array([s.label_ids[0] for s in scenes])
    out = {"clip_zeroshot_top1": float((sims.argmax(1) == y).mean())}

    val = multi_scenes(n_val, CALIBRATION_SEED0)
    val_z = standardise(clip_image_features(model, processor, np.stack([s.image for s in val])) @ prompts.T)
    thr, _ = calibrate_threshold(val_z, np.stack([s.multi_hot for s in val]) > 0)
    test = multi_scenes(n_multi)
    z = standardise(clip_image_features(model, processor, np.stack([s.image for s in test])) @ prompts.T)
    truth = np.stack([s.multi_hot for s in test]) > 0
    pred = z >= thr
    out["clip_multilabel_f1"] = micro_f1(pred, truth)
    out["clip_multilabel_precision"] = float((pred & truth).sum() / max(1, pred.sum()))
    out["clip_multilabel_recall"] = float((pred & truth).sum() / max(1, truth.sum()))
    out["clip_multilabel_threshold"] = thr

    lenient, strict = [], []
    for b in range(n_retrieval_batches):
        batch = [make_scene(RETRIEVAL_SEED0 + b * 100 + i) for i in range(100)]
        captions = [s.caption for s in batch]
        img = clip_image_features(model, processor, np.stack([s.image for s in batch]))
        txt = clip_text_features(model, processor, captions)
        a, b_ = retrieval_r1(img, txt, captions)
        lenient.append(a)
        strict.append(b_)
    out["clip_retrieval_r1"] = float(np.mean(lenient))
    out["clip_retrieval_r1_strict"] = float(np.mean(strict))
    return out


# ---------------------------------------------------------------- VLM

def eval_vlm(assets: Path, **sizes) -> dict:
    from .vlm_eval import eval_entry

    return eval_entry(assets, **sizes)


# ---------------------------------------------------------------- latent diffusion

def eval_diffusion(assets: Path, **sizes) -> dict:
    from .diffusion_eval import eval_entry

    return eval_entry(assets, **sizes)


# ---------------------------------------------------------------- motion (AnimateDiff adapter)

def eval_motion(assets: Path, **sizes) -> dict:
    from .motion_eval import eval_entry

    return eval_entry(assets, **sizes)


BARS.update(DIFFUSION_BARS)
BARS.update(MOTION_BARS)
BARS.update(VLM_BARS)  # vlm_exact: exact answers to colour / shape / count questions

# Later starter models append (name, evaluator) here; evaluators take (assets, **sizes).
EVALUATORS: list[tuple[str, Callable[..., dict]]] = [("cnn", eval_cnn), ("clip", eval_clip),
                                                     ("diffusion", eval_diffusion), ("vlm", eval_vlm),
                                                     ("motion", eval_motion)]


def evaluate(assets: str | Path, quick: bool = False, only: str | None = None) -> dict:
    import torch

    torch.set_num_threads(2)
    sizes = QUICK if quick else FULL
    result: dict = {}
    for name, fn in EVALUATORS:
        if only in (None, name):
            result.update(fn(Path(assets), **sizes))
    return result


def format_table(result: dict) -> str:
    rows = [("metric", "value", "bar", "status")]
    for key, value in result.items():
        bar, top = BARS.get(key), MAX_BARS.get(key)
        shown = "missing" if value is None else f"{value:.4f}"
        status = "" if bar is None else ("MISSING" if value is None else "ok" if value >= bar else "BELOW")
        if top is not None:
            status = "MISSING" if value is None else "ok" if value <= top else "ABOVE"
        rows.append((key, shown, f">= {bar:.2f}" if bar is not None else f"<= {top:.4f}" if top else "",
                     status))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
