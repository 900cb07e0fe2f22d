"""Grad-CAM and Grad-CAM++ engine for CNNs and ViTs.

CNNs: the last spatial stage by default, or any layer of the layer tree with a (C, h, w) output.
ViTs: patch tokens of a block-level output are reshaped to the patch grid (channels = embedding
dims); the default is the last block's first norm, because a CLS-pooled head sees the last
block's patch outputs only through a per-token norm, so their gradient is zero there.
The arithmetic lives in `views.grad_cam` (numpy) so tests can check it by hand.
"""
from __future__ import annotations

import time

import numpy as np

from studio.core.context import TaskContext
from studio.core.errors import BadInputError
from studio.core.inspect_requests import GradCamRequest, GradCamResult
from studio.engines.probes.adapters import ModelAdapter, adapter_for
from studio.engines.probes.layers import LayerOutput, spatial_maps
from studio.engines.probes.views import CAM_METHODS, grad_cam


def require_head(ad: ModelAdapter, name: str, what: str) -> None:
    if not ad.has_head:
        raise BadInputError(f"{name} has no classification head, so {what} has no class to explain. "
                            "CLIP-style models will get a text/embedding target later.")


def check_class(ad: ModelAdapter, logits, target) -> int:
    n = int(logits.shape[-1])
    if target is None:
        return int(logits[0].argmax())
    target = int(target)
    if not 0 <= target < n:
        raise BadInputError(f"Class {target} does not exist: the model has {n} classes (0–{n - 1}).")
    return target


def upsample(cam: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel centres, like F.interpolate align_corners=False) to (h, w), 0..1."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[None, None]
    up = F.interpolate(t, size=(size_wh[1], size_wh[0]), mode="bilinear", align_corners=False)[0, 0].numpy()
    hi = float(up.max())
    return (up / hi).astype(np.float32) if hi > 0 else np.zeros_like(up, dtype=np.float32)


def run(request: GradCamRequest, ctx: TaskContext, models) -> GradCamResult:
    import torch

    t0 = time.perf_counter()
    if request.method not in CAM_METHODS:
        raise BadInputError(f"Unknown CAM method “{request.method}” (use {', '.join(CAM_METHODS)}).")
    entry = models.get(request.model_id, ctx)
    ctx.check()
    ad = adapter_for(entry)
    require_head(ad, entry.card.name, "Grad-CAM")
    layer = request.layer or ad.default_cam_layer()
    module = ad.module(layer)
    prep = ad.prepare(request.image)
    ctx.progress(0.2, "Running the model…")
    # The input asks for gradients so the graph exists even if the model's weights are frozen.
    x = prep.x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), LayerOutput(module) as cap:
        logits = ad.forward(x)
        if cap.value is None:
            raise BadInputError(f"Layer “{layer}” is not used when the model looks at an image.")
        acts = spatial_maps(cap.value, ad, layer)
        target = check_class(ad, logits, request.target_class)
        ctx.check()
        ctx.progress(0.6, "Back-propagating…")
        # Differentiate the tensor the model produced, then view the gradient like the activations.
        (raw_grad,) = torch.autograd.grad(logits[0, target], cap.value)
        grads = spatial_maps(raw_grad, ad, layer)
    a = acts.detach().float().cpu().numpy()
    g = grads.detach().float().cpu().numpy()
    cam = grad_cam(a, g, request.method)
    ctx.progress(1.0, "Done")
    return GradCamResult(
        model_id=request.model_id, model_name=entry.card.name, method=request.method, layer=layer,
        target_class=target, target_label=ad.label(target), top5=ad.top_k(logits), cam=cam,
        heatmap=upsample(cam, ad.spec.input_size), geometry=prep.geometry, model_input=prep.model_input,
        seconds=time.perf_counter() - t0,
    )
