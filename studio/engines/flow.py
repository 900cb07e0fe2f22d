"""Optical flow for the frame tape (OpenCV Farneback): in-betweening two frames, the flow warping error
and the SSIM of consecutive frames (the consistency sparkline), and the CLIP variant of that check.

OpenCV is imported inside functions only (it may redirect Qt's plugin path when imported: never at
start, never on the main thread). The flow engines run on the CPU lane; CLIP needs the GPU lane.
"""
from __future__ import annotations

import time

import numpy as np

from studio.core.errors import BadInputError, ModelError
from studio.core.tape_requests import (ClipConsistencyRequest, ConsistencyRequest, ConsistencyResult,
                                       INTERPOLATORS, InbetweenRequest, InbetweenResult, frozen_frames)

MAX_INBETWEEN = 64
FLOW_SIDE = 256  # the flow of the diagnostics is computed at most this big: spikes show at any size
SSIM_SIDE = 128


def _gray(rgb: np.ndarray, side: int = 0) -> np.ndarray:
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    if side and max(g.shape) > side:
        s = side / max(g.shape)
        g = cv2.resize(g, (max(8, round(g.shape[1] * s)), max(8, round(g.shape[0] * s))),
                       interpolation=cv2.INTER_AREA)
    return g


def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) float32 from grey image `a` to grey image `b`: a(x) ~ b(x + flow(x))."""
    import cv2

    levels = max(1, min(5, int(np.log2(max(8, min(a.shape))) - 2)))
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=levels, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _warp(img: np.ndarray, flow: np.ndarray, scale: float) -> np.ndarray:
    """Sample `img` at x + scale * flow(x) (bilinear, edges replicated)."""
    import cv2

    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx = xs + scale * flow[..., 0]
    my = ys + scale * flow[..., 1]
    return cv2.remap(img, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inbetween(a: np.ndarray, b: np.ndarray, count: int) -> list[np.ndarray]:
    """`count` frames between `a` and `b`. Flow is estimated both ways; frame t samples `a` back along
    the b->a flow and `b` forward along the a->b flow, and blends them by t, so moving shapes travel
    instead of cross-fading."""
    if a.shape != b.shape:
        raise BadInputError("The two frames have different sizes: they cannot be in-betweened.")
    ga, gb = _gray(a), _gray(b)
    f_ab = farneback(ga, gb)
    f_ba = farneback(gb, ga)
    out = []
    for k in range(1, count + 1):
        t = k / (count + 1)
        # Pixel x of the in-between came from a at x + t * f_ba(x) and goes to b at x + (1-t) * f_ab(x).
        wa = _warp(a, f_ba, t).astype(np.float32)
        wb = _warp(b, f_ab, 1.0 - t).astype(np.float32)
        out.append(np.clip(wa * (1.0 - t) + wb * t + 0.5, 0, 255).astype(np.uint8))
    return out


def warp_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0..1) between frame a and frame b warped back onto a by the flow:
    large where the content jumps instead of moving."""
    ga, gb = _gray(a, FLOW_SIDE), _gray(b, FLOW_SIDE)
    flow = farneback(ga, gb)
    back = _warp(gb, flow, 1.0)
    return float(np.mean(np.abs(ga.astype(np.float32) - back.astype(np.float32))) / 255.0)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two RGB frames (grey, Gaussian window 7, at most SSIM_SIDE pixels)."""
    import cv2

    x = _gray(a, SSIM_SIDE).astype(np.float64)
    y = _gray(b, SSIM_SIDE).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img):
        return cv2.GaussianBlur(img, (7, 7), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


# -- engines -------------------------------------------------------------------------------------
def run_inbetween(req: InbetweenRequest, ctx, models) -> InbetweenResult:
    t0 = time.perf_counter()
    if req.method not in INTERPOLATORS:
        raise ModelError(f"The {req.method.upper()} interpolator is not installed: add it in Models > Manager, "
                         "or use optical flow.")
    if not 1 <= req.count <= MAX_INBETWEEN:
        raise BadInputError(f"Insert between 1 and {MAX_INBETWEEN} frames (got {req.count}).")
    ctx.check()
    frames = inbetween(np.asarray(req.a)[..., :3], np.asarray(req.b)[..., :3], req.count)
    return InbetweenResult(frozen_frames(frames), req.method, time.perf_counter() - t0)


def run_consistency(req: ConsistencyRequest, ctx, models) -> ConsistencyResult:
    t0 = time.perf_counter()
    n = len(req.frames)
    if n < 2:
        raise BadInputError("A consistency check needs a clip of at least two frames.")
    sim = np.zeros(n - 1, np.float32)
    err = np.zeros(n - 1, np.float32) if req.flow else None
    for i in range(n - 1):
        ctx.check()
        a, b = req.frames[i], req.frames[i + 1]
        if a.shape != b.shape:
            raise BadInputError(f"Frames {i + 1} and {i + 2} have different sizes.")
        sim[i] = ssim(a, b)
        if err is not None:
            err[i] = warp_error(a, b)
        ctx.progress((i + 1) / (n - 1), f"Transition {i + 1} of {n - 1}")
    return ConsistencyResult(sim, err, "ssim", time.perf_counter() - t0)


def clip_image_embedder(models, model_id: str, ctx):
    """A function frames -> unit embeddings (n, d) from the label workspace's CLIP engine, or None when
    that engine offers none (then the tape falls back to pixel similarity)."""
    try:
        from studio.engines import clip
    except ImportError:
        return None
    adapter_for = getattr(clip, "adapter_for", None)
    if adapter_for is None:
        return None
    adapter = adapter_for(model_id, models.get(model_id, ctx))
    embed = getattr(adapter, "image_embeddings", None)
    return embed


def run_clip_consistency(req: ClipConsistencyRequest, ctx, models) -> ConsistencyResult:
    t0 = time.perf_counter()
    n = len(req.frames)
    if n < 2:
        raise BadInputError("A consistency check needs a clip of at least two frames.")
    embed = clip_image_embedder(models, req.model_id, ctx)
    if embed is None:
        raise ModelError("This CLIP model cannot embed images here: use the pixel (SSIM) check.")
    embs = []
    batch = 16
    for i in range(0, n, batch):
        ctx.check()
        embs.append(np.asarray(embed([np.asarray(f) for f in req.frames[i:i + batch]]), np.float32))
        ctx.progress(min(n, i + batch) / n, f"Embedding frame {min(n, i + batch)} of {n}")
    e = np.concatenate(embs)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-8)
    cos = np.sum(e[:-1] * e[1:], axis=1).astype(np.float32)
    return ConsistencyResult(cos, None, f"clip:{req.model_id}", time.perf_counter() - t0)
