"""Quality bars of the starter motion model, measured through diffusers' AnimateDiffPipeline.

Owns the motion metrics.  A clip is rendered for "a {colour} {shape} moving {left|right|up|down}"
(8 frames, 64x64, held-out test-split seeds).  In each frame the object is the foreground pixels
(`diffusion_eval.foreground`: saturated, white or black; the world's backgrounds are muted) whose
nearest world colour (`diffusion_eval.nearest_colour`) is the prompted one.

- `motion_direction_rate`: share of clips whose object centroid travels in the prompted direction:
  the least-squares slope of the centroid over the frames, times the clip's length, is at least
  `MIN_TRAVEL` pixels along the prompted axis and larger than the travel across it.
- `motion_colour_kept`: share of clips in which every frame shows the object (at least `MIN_PIXELS`
  pixels) and the prompted colour is the most common colour among its foreground pixels.
- `motion_success_rate`: both at once (reported, not a bar).

Ground-truth world clips score ~1.0 on both (tests check it): the metrics measure the model, not
the segmentation.  numpy only, except the generation helpers, which import torch lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .diffusion_eval import foreground, nearest_colour
from .world import COLOURS, SHAPES, SPLITS, article

BARS = {"motion_direction_rate": 0.70, "motion_colour_kept": 0.70}
DIRECTIONS = ("left", "right", "up", "down")
AXIS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
MIN_TRAVEL, MIN_PIXELS = 4.0, 6
FRAMES, STEPS, GUIDANCE = 8, 20, 5.0
MOTION_SEED0 = SPLITS["test"] + 6_000_000
FULL, QUICK = dict(n_motion=100), dict(n_motion=24)


def motion_prompt(colour: str, shape: str, direction: str) -> str:
    return f"{article(colour)} {colour} {shape} moving {direction}"


def eval_cases(n: int) -> list[tuple[str, str, str, int]]:
    """(colour, shape, direction, seed) for n clips: every colour and shape, directions in turn."""
    out = []
    for i in range(n):
        label = (i * 7) % 40  # 7 is coprime with 40: all labels before any repeats
        out.append((COLOURS[label // len(SHAPES)], SHAPES[label % len(SHAPES)], DIRECTIONS[i % 4],
                    MOTION_SEED0 + i))
    return out


def _float(frames) -> np.ndarray:
    x = np.asarray(frames)
    return x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)


def object_track(frames, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: (centroid (x, y) of the prompted-colour foreground or NaN, colour kept?)."""
    x = _float(frames)
    fg = foreground(x)
    nearest = nearest_colour(x)
    want = COLOURS.index(colour)
    cents = np.full((len(x), 2), np.nan, np.float32)
    kept = np.zeros(len(x), bool)
    for k in range(len(x)):
        obj = fg[k] & (nearest[k] == want)
        if obj.sum() >= MIN_PIXELS:
            ys, xs = np.nonzero(obj)
            cents[k] = xs.mean(), ys.mean()
            kept[k] = np.bincount(nearest[k][fg[k]], minlength=len(COLOURS)).argmax() == want
    return cents, kept


def travel(cents: np.ndarray) -> np.ndarray:
    """(dx, dy) over the clip: least-squares slope of the valid centroids times (frames - 1)."""
    ok = ~np.isnan(cents[:, 0])
    if ok.sum() < 2:
        return np.zeros(2, np.float32)
    t = np.nonzero(ok)[0].astype(np.float32)
    c = cents[ok]
    tc = t - t.mean()
    slope = (tc[:, None] * (c - c.mean(0))).sum(0) / max(float((tc ** 2).sum()), 1e-6)
    return (slope * (len(cents) - 1)).astype(np.float32)


def clip_scores(frames, colour: str, direction: str) -> dict:
    """One clip: moved the prompted way?, colour kept in every frame?, travel along the axis (px)."""
    cents, kept = object_track(frames, colour)
    d = travel(cents)
    ax = np.array(AXIS[direction], np.float32)
    along = float(d @ ax)
    across = float(abs(d @ ax[::-1]))
    return {"moved": along >= MIN_TRAVEL and along > across, "kept": bool(kept.all()), "along": along}


def summarise(scores: list[dict]) -> dict:
    moved = np.array([s["moved"] for s in scores])
    kept = np.array([s["kept"] for s in scores])
    return {"motion_direction_rate": float(moved.mean()), "motion_colour_kept": float(kept.mean()),
            "motion_success_rate": float((moved & kept).mean()),
            "motion_travel_px": float(np.mean([s["along"] for s in scores]))}


# ---------------------------------------------------------------- generation (torch)

def load_animatediff(assets: Path, motion: Path | None = None):
    """AnimateDiffPipeline on the starter SD with the motion adapter (and its cross-attention LoRA
    where the folder has one), by the standard diffusers calls."""
    import torch
    from diffusers import AnimateDiffPipeline, MotionAdapter

    from studio.engines.video import load_motion_lora

    from .diffusion_models import load_pipeline

    sd = load_pipeline(assets / "sd", assets / "clip")
    folder = Path(motion or assets / "motion")
    adapter = MotionAdapter.from_pretrained(str(folder), dtype=torch.float32)
    pipe = AnimateDiffPipeline.from_pipe(sd, motion_adapter=adapter)
    load_motion_lora(pipe, folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render_clips(pipe, prompts: list[str], seeds: list[int], frames: int = FRAMES, steps: int = STEPS,
                 chunk: int = 4) -> list[np.ndarray]:
    """(frames, H, W, 3) float 0..1 per prompt; `chunk` clips per pipeline call."""
    import torch

    out = []
    for i in range(0, len(prompts), chunk):
        idx = range(i, min(len(prompts), i + chunk))
        res = pipe([prompts[k] for k in idx], num_frames=frames, height=64, width=64, num_inference_steps=steps,
                   guidance_scale=GUIDANCE, output_type="np",
                   generator=[torch.Generator().manual_seed(int(seeds[k])) for k in idx])
        out += [np.asarray(v, np.float32) for v in res.frames]
    return out


def eval_motion(assets: Path, n_motion: int, steps: int = STEPS, motion: Path | None = None, **_) -> dict:
    keys = list(BARS) + ["motion_success_rate", "motion_travel_px"]
    folder = Path(motion) if motion else assets / "motion"
    if not (folder / "config.json").exists() or not (assets / "sd" / "model_index.json").exists():
        return {k: None for k in keys}
    pipe = load_animatediff(assets, folder)
    cases = eval_cases(n_motion)
    clips = render_clips(pipe, [motion_prompt(c, s, d) for c, s, d, _ in cases], [c[3] for c in cases],
                         steps=steps)
    return summarise([clip_scores(v, c, d) for v, (c, _, d, _) in zip(clips, cases)])


def eval_entry(assets: Path, **sizes) -> dict:
    """Evaluator for studio.starter.evaluate's registry (FULL / QUICK sizes chosen by its flag)."""
    import torch

    from .diffusion_train import threads

    before = torch.get_num_threads()
    torch.set_num_threads(threads())
    try:
        return eval_motion(assets, **(QUICK if sizes.get("n_single", 0) < 1000 else FULL))
    finally:
        torch.set_num_threads(before)


def _main(argv=None) -> int:
    import argparse
    import json
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog="python -m studio.starter.motion_eval")
    p.add_argument("--assets", type=Path, required=True, help="folder with sd/ and clip/")
    p.add_argument("--motion", type=Path, default=None, help="MotionAdapter folder (default: ASSETS/motion)")
    p.add_argument("--n", type=int, default=FULL["n_motion"])
    p.add_argument("--steps", type=int, default=STEPS)
    a = p.parse_args(argv)
    import torch

    from .diffusion_train import threads

    torch.set_num_threads(threads())
    print(json.dumps(eval_motion(a.assets, a.n, a.steps, a.motion)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
