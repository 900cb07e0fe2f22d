"""Quality bars of the starter latent diffusion, measured through the standard diffusers pipelines.

Owns the metric definitions: prompt following (the starter CNN must read the prompted colour and
shape off a generated image), control fidelity (IoU of the generated object's foreground with the
control's object region), inpainting (prompted colour inside the mask; change outside it after
mask blending).  Foreground is defined by colour, not by a model: the world draws objects in
saturated colours, white or black, and backgrounds only in muted mid tones (HSV saturation <= 0.3,
value 0.42..0.78), so a pixel is foreground when saturation > 0.45 or value > 0.88 or value < 0.3.
All held-out scenes use test-split seeds (>= 2e9) the training never drew.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .world import COLOURS, RGB, SHAPES, SPLITS, make_scene

BARS = {"t2i_prompt_following": 0.70, "control_depth_iou_rate": 0.70, "control_pose_iou_rate": 0.70,
        "inpaint_colour_rate": 0.70}
MAX_BARS = {"inpaint_outside_change": 2 / 255}  # lower is better
STEPS, GUIDANCE, IOU = 20, 5.0, 0.5
CONTROL_SEED0 = SPLITS["test"] + 3_000_000
INPAINT_SEED0 = SPLITS["test"] + 4_000_000
FULL = dict(n_t2i=200, n_control=100, n_inpaint=100)
QUICK = dict(n_t2i=40, n_control=24, n_inpaint=24)


def foreground(images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) float 0..1 -> (B, H, W) bool: object-coloured pixels (see module docstring)."""
    mx, mn = images.max(-1), images.min(-1)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    return (sat > 0.45) | (mx > 0.88) | (mx < 0.3)


def nearest_colour(images: np.ndarray) -> np.ndarray:
    """Index into COLOURS of each pixel's nearest object colour."""
    pal = np.array([RGB[c] for c in COLOURS], np.float32) / 255
    d = ((images[..., None, :] - pal) ** 2).sum(-1)
    return d.argmin(-1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def dilate(m: np.ndarray, r: int = 1) -> np.ndarray:
    out = m.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(m, dy, -2), dx, -1)
    return out


def phrase(colour: str, shape: str) -> str:
    return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}"


def _generators(seeds):
    import torch

    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def _chunks(n: int, k: int = 20):
    return [range(i, min(n, i + k)) for i in range(0, n, k)]


def generate_t2i(pipe, prompts: list[str], seeds, steps: int = STEPS) -> np.ndarray:
    out = []
    for idx in _chunks(len(prompts)):
        out.append(pipe([prompts[i] for i in idx], num_inference_steps=steps, guidance_scale=GUIDANCE,
                        generator=_generators([seeds[i] for i in idx]), output_type="np").images)
    return np.concatenate(out)


def t2i_following(pipe, cnn, n: int, steps: int = STEPS) -> dict:
    from .evaluate import cnn_logits

    labels = [i % 40 for i in range(n)]
    prompts = [phrase(COLOURS[k // 5], SHAPES[k % 5]) for k in labels]
    images = generate_t2i(pipe, prompts, [SPLITS["test"] + 5_000_000 + i for i in range(n)], steps)
    pred = cnn_logits(cnn, (images * 255).round().astype(np.uint8)).argmax(1)
    y = np.array(labels)
    return {"t2i_prompt_following": float((pred == y).mean()),
            "t2i_colour_correct": float((pred // 5 == y // 5).mean()),
            "t2i_shape_correct": float((pred % 5 == y % 5).mean())}


def control_scenes(kind: str, n: int, seed0: int = CONTROL_SEED0):
    """Single-object held-out scenes; for pose, single-person scenes."""
    scenes, s = [], seed0 + {"depth": 0, "pose": 100_000, "edges": 200_000}[kind]
    while len(scenes) < n:
        sc = make_scene(s, n_objects=1)
        s += 1
        if kind != "pose" or sc.pose:
            scenes.append(sc)
    return scenes


def control_iou(pipe, kind: str, n: int, steps: int = STEPS) -> dict:
    from PIL import Image

    from .diffusion_train import condition_image

    scenes = control_scenes(kind, n)
    images = []
    for idx in _chunks(n):
        images.append(pipe([scenes[i].caption for i in idx],
                           image=[Image.fromarray(condition_image(scenes[i], kind)) for i in idx],
                           num_inference_steps=steps, guidance_scale=GUIDANCE,
                           generator=_generators([s.seed for s in (scenes[i] for i in idx)]),
                           output_type="np").images)
    images = np.concatenate(images)
    fg = foreground(images)
    region = np.stack([s.instance_mask > 0 for s in scenes])
    ious = np.array([iou(f, r) for f, r in zip(fg, region)])
    tol = np.array([iou(dilate(f) & dilate(r), dilate(r) | dilate(f)) for f, r in zip(fg, region)])
    return {f"control_{kind}_iou_rate": float((ious >= IOU).mean()),
            f"control_{kind}_iou_mean": float(ious.mean()),
            f"control_{kind}_iou_rate_dilated1": float((tol >= IOU).mean())}


def inpaint_case(i: int):
    """(scene, mask 0/1 float (H, W), prompted colour, prompt): repaint the object a new colour."""
    s = make_scene(INPAINT_SEED0 + i, n_objects=1)
    o = s.objects[0]
    x0, y0, x1, y1 = o.bbox
    mask = np.zeros(s.instance_mask.shape, np.float32)
    mask[max(0, y0 - 3):y1 + 3, max(0, x0 - 3):x1 + 3] = 1
    colour = COLOURS[(COLOURS.index(o.colour) + 1 + i % 7) % len(COLOURS)]
    return s, mask, colour, phrase(colour, o.shape)


def inpaint_metrics(pipe, n: int, steps: int = STEPS) -> dict:
    from PIL import Image

    cases = [inpaint_case(i) for i in range(n)]
    images = []
    for idx in _chunks(n):
        images.append(pipe([cases[i][3] for i in idx], image=[Image.fromarray(cases[i][0].image) for i in idx],
                           mask_image=[Image.fromarray((cases[i][1] * 255).astype(np.uint8)) for i in idx],
                           num_inference_steps=steps, guidance_scale=GUIDANCE,
                           generator=_generators([INPAINT_SEED0 + i for i in idx]), output_type="np").images)
    raw = np.concatenate(images)
    orig = np.stack([c[0].image for c in cases]).astype(np.float32) / 255
    mask = np.stack([c[1] for c in cases])[..., None]
    blended = mask * raw + (1 - mask) * orig  # the studio's paste-back (apply_overlay with a hard mask)
    hits = []
    outside = mask[..., 0] < 0.5
    for k, (s, m, colour, _) in enumerate(cases):
        inside = (m > 0.5) & foreground(blended[k:k + 1])[0]
        if inside.sum() < 10:
            hits.append(False)
            continue
        votes = np.bincount(nearest_colour(blended[k][inside]), minlength=len(COLOURS))
        hits.append(int(votes.argmax()) == COLOURS.index(colour))
    diff_b = np.abs(blended - orig).mean(-1)
    diff_r = np.abs(raw - orig).mean(-1)
    return {"inpaint_colour_rate": float(np.mean(hits)),
            "inpaint_outside_change": float(diff_b[outside].mean()),
            "inpaint_outside_change_unblended": float(diff_r[outside].mean())}


def eval_diffusion(assets: Path, n_t2i: int, n_control: int, n_inpaint: int, steps: int = STEPS, **_) -> dict:
    from .diffusion_models import CONTROLS, load_pipeline

    keys = list(BARS) + list(MAX_BARS)
    sd, clip = assets / "sd", assets / "clip"
    if not (sd / "model_index.json").exists() or not (clip / "config.json").exists():
        return {k: None for k in keys}
    out: dict = {}
    pipe = load_pipeline(sd, clip)
    if (assets / "cnn" / "config.json").exists():
        from .models import load_cnn

        out.update(t2i_following(pipe, load_cnn(assets / "cnn"), n_t2i, steps))
    for kind in CONTROLS:
        folder = assets / f"controlnet-{kind}"
        if (folder / "config.json").exists():
            out.update(control_iou(load_pipeline(sd, clip, controlnet=folder), kind, n_control, steps))
    if (assets / "sd-inpaint" / "model_index.json").exists():
        out.update(inpaint_metrics(load_pipeline(assets / "sd-inpaint", clip, "inpaint"), n_inpaint, steps))
    return {**{k: None for k in keys}, **out}


def eval_entry(assets: Path, **sizes) -> dict:
    """Evaluator for studio.starter.evaluate's registry (FULL / QUICK sizes chosen by its flag)."""
    import torch

    from .diffusion_train import threads

    before = torch.get_num_threads()
    torch.set_num_threads(threads())  # see diffusion_train.threads: 1 on a shared 2-core box
    try:
        return eval_diffusion(assets, **(QUICK if sizes.get("n_single", 0) < 1000 else FULL))
    finally:
        torch.set_num_threads(before)
