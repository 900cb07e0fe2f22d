"""The ViT probe engine: one forward pass per (image, model) that keeps every layer's attention
(recomputed from q/k, so fused attention is fine), every block's token vectors, the positional
embedding similarity, the preprocessing geometry and the top-5 classes. The UI redraws layer,
head and patch choices from this result with `probes.views`, without running the model again.
"""
from __future__ import annotations

import time

import numpy as np

from studio.core.context import TaskContext
from studio.core.errors import BadInputError, ModelError
from studio.core.inspect_requests import VitProbeRequest, VitProbeResult
from studio.engines.probes.adapters import adapter_for, first_tensor
from studio.engines.probes.attention import AttentionCapture
from studio.engines.probes.views import cosine_matrix

# Above this many attention values the result is kept in float16 (ViT-L/14 at 336 px: 24*16*577^2).
FLOAT32_LIMIT = 16_000_000


def token_labels(prefix: int, grid: tuple[int, int]) -> tuple[str, ...]:
    names = []
    for i in range(prefix):
        names.append("CLS" if i == 0 else f"extra {i}")
    names += [f"r{r}c{c}" for r in range(grid[0]) for c in range(grid[1])]
    return tuple(names)


def run(request: VitProbeRequest, ctx: TaskContext, models) -> VitProbeResult:
    import torch

    t0 = time.perf_counter()
    entry = models.get(request.model_id, ctx)
    ctx.check()
    ad = adapter_for(entry)
    if ad.kind != "vit":
        raise BadInputError(f"{entry.card.name} is not a vision transformer: the attention views need one. "
                            "Use Grad-CAM, occlusion or feature maps for CNNs.")
    prep = ad.prepare(request.image)
    ctx.progress(0.2, "Running the model…")
    blocks = ad.blocks
    outputs: list = [None] * len(blocks)

    def keep(i):
        def hook(_m, _inp, out):
            outputs[i] = first_tensor(out).detach()
        return hook

    handles = [b.register_forward_hook(keep(i)) for i, (_n, b) in enumerate(blocks)]
    try:
        with AttentionCapture(blocks) as cap, torch.inference_mode():
            logits = ad.forward(prep.x)
            maps = cap.maps()
    finally:
        for h in handles:
            h.remove()
    ctx.check()
    ctx.progress(0.7, "Collecting attention…")
    rows, cols = ad.grid
    n_tokens = maps[0].shape[-1]
    if any(m.shape[-1] != n_tokens for m in maps):
        raise ModelError("The blocks' attention maps disagree on the number of tokens.",
                         str([tuple(m.shape) for m in maps]))
    prefix = n_tokens - rows * cols
    if prefix < 0:
        raise ModelError("The model's token count does not match its patch grid.",
                         f"{n_tokens} tokens, grid {rows}x{cols}")
    if prefix != ad.num_prefix_tokens:
        # Trust what the model did over what its attributes said (e.g. an unlisted register token).
        ad.num_prefix_tokens = prefix
    if any(o is None for o in outputs):
        raise ModelError("A transformer block did not run; the probe cannot show its tokens.")
    att = torch.stack([m[0] for m in maps]).float().cpu().numpy()
    att = att.astype(np.float32 if att.size <= FLOAT32_LIMIT else np.float16)
    toks = []
    for o in outputs:
        if o.dim() == 3 and o.shape[0] != 1 and o.shape[1] == 1:
            o = o.transpose(0, 1)
        if o.shape[1] != n_tokens:
            raise ModelError("A block's output does not line up with its attention.",
                             f"block output {tuple(o.shape)}, {n_tokens} tokens")
        toks.append(o[0].float().cpu().numpy())
    tokens = np.stack(toks).astype(np.float16)
    pe = ad.pos_embed_patches()
    pos_sim = cosine_matrix(pe) if pe is not None else None
    top5 = ad.top_k(logits) if logits is not None else ()
    ctx.progress(1.0, "Done")
    return VitProbeResult(
        model_id=request.model_id, model_name=entry.card.name, library=ad.library, trained=entry.card.trained,
        geometry=prep.geometry, spec=ad.spec, model_input=prep.model_input, patch_size=tuple(ad.patch_size),
        grid=(rows, cols), prefix_tokens=prefix, token_labels=token_labels(prefix, (rows, cols)),
        layer_names=tuple(n for n, _ in blocks), num_heads=int(att.shape[1]), attentions=att, tokens=tokens,
        pos_similarity=pos_sim, top5=top5, seconds=time.perf_counter() - t0,
    )
