"""Feature-map extras: the layer tree, per-channel statistics (top-k channels, histogram) and the
effective receptive field of one location.

Receptive field: gradient-based (Luo et al. 2016, "effective receptive field"), not analytic. It
works for every layer the tree offers, residual branches and transformer blocks included, where
an analytic kernel/stride walk needs one well-defined path; and it shows what teachers want to
show: the pixels that actually move that unit, strongest near the centre. `box` is the support of
the gradient (nonzero pixels): for linear paths of convolutions it equals the analytic field
(two stacked 3x3 convs -> 5x5); ReLUs that are off for the given input can shrink it (an
empty box means no pixel moves that unit for this input). Without an image, a seeded noise input
is used.
"""
from __future__ import annotations

import time

import numpy as np

from studio.core.context import TaskContext
from studio.core.errors import BadInputError
from studio.core.inspect_requests import (ChannelStatsRequest, ChannelStatsResult, LayerTreeRequest,
                                          LayerTreeResult, ReceptiveFieldRequest, ReceptiveFieldResult)
from studio.engines.probes.adapters import adapter_for, first_tensor
from studio.engines.probes.layers import run_to, spatial_maps


def layer_tree(ad) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    """(name, class name, output shape without batch) of every module that runs on an image, in
    registration order (so dotted names build the tree parents-first)."""
    import torch

    shapes: dict[str, tuple[int, ...]] = {}

    def make(name):
        def hook(_m, _i, out):
            t = first_tensor(out)
            if t is not None and name not in shapes:
                shape = tuple(int(s) for s in t.shape)
                if t.dim() == 3 and shape[0] != 1 and shape[1] == 1:  # sequence-first transformer
                    shape = (shape[1], shape[0], shape[2])
                shapes[name] = shape[1:]
        return hook

    mods = [(n, m) for n, m in ad.model.named_modules() if n]
    handles = [m.register_forward_hook(make(n)) for n, m in mods]
    try:
        with torch.inference_mode():
            ad.forward(ad.blank())
    finally:
        for h in handles:
            h.remove()
    return tuple((n, type(m).__name__, shapes[n]) for n, m in mods if n in shapes)


def run_layer_tree(request: LayerTreeRequest, ctx: TaskContext, models) -> LayerTreeResult:
    entry = models.get(request.model_id, ctx)
    ctx.check()
    ad = adapter_for(entry)
    layers = layer_tree(ad)
    default = ad.default_cam_layer()
    ctx.progress(1.0, "Done")
    return LayerTreeResult(request.model_id, entry.card.name, ad.kind, layers, default, ad.spec.input_size)


def run_channel_stats(request: ChannelStatsRequest, ctx: TaskContext, models) -> ChannelStatsResult:
    import torch

    t0 = time.perf_counter()
    if request.top_k < 1 or request.bins < 1:
        raise BadInputError("top_k and bins must be at least 1.")
    entry = models.get(request.model_id, ctx)
    ctx.check()
    ad = adapter_for(entry)
    layer = request.layer or ad.default_cam_layer()
    module = ad.module(layer)
    prep = ad.prepare(request.image)
    ctx.progress(0.3, "Running the model…")
    with torch.inference_mode():
        out, _ = run_to(ad, prep.x, module)
        maps = spatial_maps(out, ad, layer).float().cpu().numpy()
    means = maps.mean(axis=(1, 2)).astype(np.float32)
    k = min(int(request.top_k), maps.shape[0])
    top = np.argsort(-means, kind="stable")[:k].astype(np.int64)
    finite = maps[np.isfinite(maps)]
    counts, edges = np.histogram(finite, bins=int(request.bins))
    ctx.progress(1.0, "Done")
    return ChannelStatsResult(
        model_id=request.model_id, layer=layer, channel_means=means, top_channels=top,
        top_maps=np.ascontiguousarray(maps[top], dtype=np.float32), hist_counts=counts.astype(np.int64),
        hist_edges=edges.astype(np.float32), geometry=prep.geometry, seconds=time.perf_counter() - t0,
    )


def run_receptive_field(request: ReceptiveFieldRequest, ctx: TaskContext, models) -> ReceptiveFieldResult:
    import torch

    entry = models.get(request.model_id, ctx)
    ctx.check()
    ad = adapter_for(entry)
    if not request.layer:
        raise BadInputError("Pick a layer to show the receptive field of.")
    module = ad.module(request.layer)
    geometry = None
    if request.image is not None:
        prep = ad.prepare(request.image)
        x0, geometry = prep.x, prep.geometry
    else:
        # Seeded noise, not a blank: on a zero input a bias-free conv + BN + ReLU stem sits exactly
        # at the ReLU's kink and passes no gradient at all (Luo et al. average over noise inputs).
        gen = torch.Generator().manual_seed(0)
        blank = ad.blank()
        x0 = torch.randn(blank.shape, generator=gen).to(blank.device, blank.dtype)
    x = x0.detach().clone().requires_grad_(True)
    ctx.progress(0.3, "Tracing the gradient…")
    with torch.enable_grad():
        out, _ = run_to(ad, x, module)
        maps = spatial_maps(out, ad, request.layer)
        rows, cols = int(maps.shape[1]), int(maps.shape[2])
        row = rows // 2 if request.row is None else int(request.row)
        col = cols // 2 if request.col is None else int(request.col)
        if not (0 <= row < rows and 0 <= col < cols):
            raise BadInputError(f"Location ({row}, {col}) is outside the layer's {rows}x{cols} grid.")
        (grad,) = torch.autograd.grad(maps[:, row, col].sum(), x)
    g = grad[0].detach().float().abs().sum(0).cpu().numpy()
    hi = float(g.max())
    if hi > 0:
        ys, xs = np.nonzero(g > 0)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        yy, xx = np.mgrid[0:g.shape[0], 0:g.shape[1]]
        centre = (float((g * (xx + 0.5)).sum() / g.sum()), float((g * (yy + 0.5)).sum() / g.sum()))
    else:
        box, centre = (0, 0, 0, 0), (0.0, 0.0)
    ctx.progress(1.0, "Done")
    return ReceptiveFieldResult(
        model_id=request.model_id, layer=request.layer, row=row, col=col, layer_grid=(rows, cols),
        erf=(g / hi if hi > 0 else g).astype(np.float32), box=box, centre=centre,
        input_size=ad.spec.input_size, geometry=geometry,
    )
