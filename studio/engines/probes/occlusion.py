"""Occlusion sensitivity engine (Zeiler & Fergus): slide a mean-colour square over the model input,
batch the forward passes, and map the drop of the target class probability.

The occluder is the normalisation mean (zero after normalising), the least informative colour
for the model. Progress is reported and cancellation checked once per batch.
"""
from __future__ import annotations

import time

import numpy as np

from studio.core.context import TaskContext
from studio.core.errors import BadInputError
from studio.core.inspect_requests import OcclusionRequest, OcclusionResult
from studio.engines.probes.adapters import adapter_for
from studio.engines.probes.cam import check_class, require_head
from studio.engines.probes.views import occlusion_positions, spread_windows

MAX_POSITIONS = 4096


def run(request: OcclusionRequest, ctx: TaskContext, models) -> OcclusionResult:
    import torch

    t0 = time.perf_counter()
    entry = models.get(request.model_id, ctx)
    ctx.check()
    ad = adapter_for(entry)
    require_head(ad, entry.card.name, "occlusion")
    prep = ad.prepare(request.image)
    w, h = ad.spec.input_size
    window = int(request.window) or max(1, round(min(w, h) / 8))
    if not request.window and ad.patch_size:
        window = max(window, max(ad.patch_size))
    stride = int(request.stride) or max(1, window // 2)
    if window < 1 or stride < 1:
        raise BadInputError("The occlusion window and stride must be at least one pixel.")
    ys, xs = occlusion_positions(h, window, stride), occlusion_positions(w, window, stride)
    n = len(ys) * len(xs)
    if n > MAX_POSITIONS:
        raise BadInputError(f"{n} occluder positions is too many; use a larger stride (at most {MAX_POSITIONS}).")
    batch = max(1, int(request.batch_size))
    x = prep.x
    with torch.inference_mode():
        logits = ad.forward(x)
        target = check_class(ad, logits, request.target_class)
        baseline = float(torch.softmax(logits[0].float(), -1)[target])
        probs = np.empty(n, np.float64)
        cells = [(y, xx) for y in ys for xx in xs]
        for start in range(0, n, batch):
            ctx.check()
            chunk = cells[start:start + batch]
            xb = x.repeat(len(chunk), 1, 1, 1)
            for i, (y, xx) in enumerate(chunk):
                xb[i, :, y:y + window, xx:xx + window] = 0
            out = ad.forward(xb)
            probs[start:start + len(chunk)] = torch.softmax(out.float(), -1)[:, target].cpu().numpy()
            done = start + len(chunk)
            ctx.progress(done / n, f"Occluding {done}/{n}…")
    drops = (baseline - probs).reshape(len(ys), len(xs)).astype(np.float32)
    ctx.progress(1.0, "Done")
    return OcclusionResult(
        model_id=request.model_id, model_name=entry.card.name, target_class=target,
        target_label=ad.label(target), top5=ad.top_k(logits), baseline=baseline, drops=drops,
        heatmap=spread_windows(drops, ys, xs, window, (h, w)), window=window, stride=stride,
        ys=tuple(ys), xs=tuple(xs),
        geometry=prep.geometry, model_input=prep.model_input, seconds=time.perf_counter() - t0,
    )
