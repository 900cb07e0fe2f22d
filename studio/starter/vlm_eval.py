"""Quality of the starter VLM on held-out Shapes-world scenes, through the standard chat path.

Owns the `vlm_exact` bar (exact short answers to colour / shape / count questions) and the
side metrics (left/right, describe, mean box IoU of "where is ...?").  Every answer goes
through `processor.apply_chat_template` + `processor(...)` + greedy `model.generate`, the same
calls the studio's chat engine makes; only the batching (left padding) is added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import vlm_qa as qa
from .world import SPLITS, make_scene

BARS = {"vlm_exact": 0.80}
TEST_SEED0 = SPLITS["test"] + 3_000_000  # its own held-out range (see evaluate.py for the others)
MAX_NEW = {"describe": 40, "where": 32}


def questions(n_scenes: int, seed0: int = TEST_SEED0, seed: int = 1):
    """One question of every kind a scene allows, for n scenes of 1-3 objects: [(scene, QA)]."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_scenes):
        scene = make_scene(seed0 + i)
        for kind in qa.allowed_kinds(scene):
            out.append((scene, qa.make_qa(scene, kind, rng)))
    return out


def answer(model, processor, items, max_new_tokens: int = 8, batch: int = 48) -> list[str]:
    """Greedy answers to [(scene, QA)] (single-turn chats with the scene's image)."""
    import torch
    from PIL import Image

    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    try:
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            prompts = [processor.apply_chat_template(qa.messages([(q.question, None)]), add_generation_prompt=True)
                       for _, q in chunk]
            inputs = processor(text=prompts, images=[Image.fromarray(s.image) for s, _ in chunk],
                               padding=True, return_tensors="pt")
            with torch.inference_mode():
                gen = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
            out += tok.batch_decode(gen[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tok.padding_side = side
    return [a.strip() for a in out]


def exact_scores(model, processor, n_scenes: int, seed0: int = TEST_SEED0) -> dict:
    items = questions(n_scenes, seed0)
    by_kind: dict[str, list] = {k: [] for k in qa.KINDS}
    for item in items:
        by_kind[item[1].kind].append(item)
    scores: dict = {}
    hits_graded, n_graded = 0, 0
    for kind, chunk in by_kind.items():
        if not chunk:
            scores[f"vlm_{kind}"] = None
            continue
        answers = answer(model, processor, chunk, MAX_NEW.get(kind, 8))
        if kind == "where":
            ious = []
            for (scene, q), a in zip(chunk, answers):
                truth, got = qa.parse_box(q.answer), qa.parse_box(a)
                ious.append(qa.iou(truth, got) if got else 0.0)
            scores["vlm_box_iou"] = float(np.mean(ious))
            scores["vlm_box_hit50"] = float(np.mean(np.array(ious) >= 0.5))
            continue
        hits = [qa.normalise(a) == qa.normalise(q.answer) for (_, q), a in zip(chunk, answers)]
        scores[f"vlm_{kind}"] = float(np.mean(hits))
        if kind in qa.GRADED:
            hits_graded += sum(hits)
            n_graded += len(hits)
    scores.pop("vlm_where", None)
    return {"vlm_exact": hits_graded / max(1, n_graded), **scores, "vlm_questions": n_graded}


def eval_entry(assets: Path, n_single: int = 2000, **_) -> dict:
    """The evaluate command's entry: assets/vlm with its tower from assets/clip."""
    import torch

    from .vlm_train import load_vlm

    folder, clip = Path(assets) / "vlm", Path(assets) / "clip"
    if not (folder / "config.json").exists() or not (clip / "config.json").exists():
        return {"vlm_exact": None}
    torch.manual_seed(0)
    model, processor = load_vlm(folder, clip)
    return exact_scores(model, processor, max(60, n_single // 5))
