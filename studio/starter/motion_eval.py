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
the segmentation.  `word_effect` (`--word-effect`, seconds) tells whether a model reads the direction
word at all.  numpy only, except the generation helpers and `word_effect`, which import torch lazily.
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
    """(colour, shape, direction, seed) for n clips: every colour and shape, directions in turn. Each
    round of the 40 labels shifts the directions by one, so a label that comes back comes back with
    another direction: a model whose clips drift one way for some colours or shapes, whatever the
    prompt says, is not credited with following the word."""
    out = []
    n_labels = len(COLOURS) * len(SHAPES)
    for i in range(n):
        label = (i * 7) % n_labels  # 7 is coprime with 40: all labels before any repeats
        out.append((COLOURS[label // len(SHAPES)], SHAPES[label % len(SHAPES)],
                    DIRECTIONS[(i + i // n_labels) % len(DIRECTIONS)], MOTION_SEED0 + i))
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
    from diffusers import AnimateDiffPipeline

    from studio.engines.video import load_motion_lora

    from .diffusion_models import load_pipeline
    from .motion_train import load_adapter

    sd = load_pipeline(assets / "sd", assets / "clip")
    folder = Path(motion or assets / "motion")
    pipe = AnimateDiffPipeline.from_pipe(sd, motion_adapter=load_adapter(folder))
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


WORD_T = (700, 850, 950, 990)  # timesteps of `word_effect`: the object shows in the frames at 700, hardly at 990
WORD_SEED0 = SPLITS["val"] + 6_000_000
ACROSS = {"left": "up", "right": "down", "up": "right", "down": "left"}


def word_effect(assets: Path, motion: Path | None = None, n: int = 16, timesteps=WORD_T) -> dict:
    """Does the motion model read the direction word? A diagnostic in seconds, where the direction
    rate needs minutes of rendering and moves only once the word is read.

    n held-out one-object clips (validation split, the four directions in turn) are encoded and
    noised to each timestep (the same noise for both prompts); the model predicts the clean clip
    with the clip's own prompt (`word`), with the opposite direction word (`opposite`) and with a
    direction across it (`across`: "up" for "right"). Reported: the path of each prediction
    (`motion_train.trajectory`, latent cells from the first to the last frame) along the clip's true
    direction, and the true path. A model that ignores the word gives the same three numbers:
    whatever path it predicts it reads from the noisy frames, and at the top of the schedule (where
    the sampler picks the direction) the frames show none. `word` above `across` but equal to
    `opposite`: the model reads the axis (left / right or up / down) from the word but not the way."""
    import torch

    from .motion_train import OPPOSITE, Base, load_adapter, load_text_lora_for_inference, motion_unet, trajectory
    from .world import make_clip

    folder = Path(motion or assets / "motion")
    base = Base.load(assets)
    model = motion_unet(base.unet, load_adapter(folder), fresh=False).eval()
    load_text_lora_for_inference(model, folder)
    clips = [make_clip(WORD_SEED0 + i, frames=FRAMES, n_objects=1, motion=DIRECTIONS[i % 4]) for i in range(n)]
    axis = torch.tensor([AXIS[c.motion] for c in clips])
    prompts = [c.caption for c in clips]
    other = {"opposite": OPPOSITE, "across": ACROSS}
    texts = {"word": prompts} | {k: [p.replace(f"moving {c.motion}", f"moving {m[c.motion]}") for p, c in
                                     zip(prompts, clips)] for k, m in other.items()}
    texts = {k: base.encode_text(v).repeat_interleave(FRAMES, 0) for k, v in texts.items()}

    def along(x) -> float:
        path = trajectory(x)
        return round(float(((path[:, -1] - path[:, 0]) * axis).sum(-1).mean()), 2)

    with torch.random.fork_rng():  # the VAE samples its latents: the same ones every run
        torch.manual_seed(0)
        z = base.encode_clips(clips)
    gen = torch.Generator().manual_seed(0)
    out = {"true_path": along(z)}
    with torch.no_grad():
        for tt in timesteps:
            noise = torch.randn(z.shape, generator=gen)
            t = torch.full((n,), int(tt))
            zt = base.add_noise(z, noise, t)
            out[f"t{tt}"] = {k: along(base.x0(zt, model(zt, t, e).sample, t)) for k, e in texts.items()}
    return out


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
    p.add_argument("--word-effect", action="store_true",
                   help="instead of rendering: does the model read the direction word? (seconds; see word_effect)")
    a = p.parse_args(argv)
    import torch

    from .diffusion_train import threads

    torch.set_num_threads(threads())
    if a.word_effect:
        print(json.dumps(word_effect(a.assets, a.motion)))
    else:
        print(json.dumps(eval_motion(a.assets, a.n, a.steps, a.motion)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
