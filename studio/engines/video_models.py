"""Whole video models behind the frame tape's engine: Stable Video Diffusion (image to video), CogVideoX
and LTX-Video (text to video; LTX also from a first image). Each loads through the model manager like
any diffusers pipeline (a card that is not downloaded fails there with the manager's message), runs
after the manager's preflight for its size and length, and reports progress per step and a cancel
within one step. GPU lane only; torch and diffusers are imported inside functions.
"""
from __future__ import annotations

import numpy as np

from studio.core.errors import BadInputError
from studio.core.tape_requests import COGVIDEOX, LTX, SVD, TapeRequest

# Length and size rules of each model (frames = 8k + 1 for the causal video VAEs).
RULES = {COGVIDEOX: (8, 16), LTX: (8, 32), SVD: (1, 8)}


def check_shape(req: TapeRequest, cls: str) -> None:
    frame_step, side = RULES.get(cls, (1, 8))
    if frame_step > 1 and req.frames % frame_step != 1:
        lo = max(1, (req.frames // frame_step) * frame_step + 1)
        raise BadInputError(f"This model makes clips of 8k+1 frames: try {lo} or {lo + frame_step} frames.")
    if req.width % side or req.height % side:
        raise BadInputError(f"This model needs width and height in multiples of {side} pixels.")


def generate(req: TapeRequest, ctx, models, card, cls: str) -> tuple[list[np.ndarray], int, str]:
    import torch
    from PIL import Image

    from studio.engines.video import _Steps

    check_shape(req, cls)
    entry = models.get(req.model_id, ctx)
    key = req.model_id
    if cls == LTX and req.first_image is not None:
        entry = models.pipeline(req.model_id, ctx, pipeline="LTXImageToVideoPipeline")
        key = entry.key
    pipe = entry.model
    models.preflight(key, ctx, width=req.width, height=req.height, frames=req.frames)
    steps = _Steps(ctx, req.uid, req.steps, 1.0, f"{req.frames} frames")
    kw = dict(num_frames=req.frames, height=req.height, width=req.width, num_inference_steps=req.steps,
              generator=torch.Generator("cpu").manual_seed(req.seed), output_type="np",
              callback_on_step_end=steps, callback_on_step_end_tensor_inputs=[])
    if cls == SVD:
        image = Image.fromarray(req.first_image.rgb()).resize((req.width, req.height), Image.LANCZOS)
        # SVD guides from min to max over the frames; the tape's CFG is the maximum.
        kw.update(image=image, max_guidance_scale=req.cfg_scale, fps=max(1, req.fps - 1), decode_chunk_size=8)
    else:
        kw.update(prompt=req.prompt_keys()[0].prompt, negative_prompt=req.negative_prompt or None,
                  guidance_scale=req.cfg_scale)
        if cls == LTX and req.first_image is not None:
            kw["image"] = Image.fromarray(req.first_image.rgb())
    ctx.check()
    try:
        with torch.inference_mode(), models.oom_guard("generating the clip"):
            out = pipe(**kw)
    finally:
        pipe._interrupt = False
    video = np.asarray(out.frames[0])
    if video.dtype != np.uint8:
        video = np.clip(video * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(f[..., :3]) for f in video], req.frames, card.name
