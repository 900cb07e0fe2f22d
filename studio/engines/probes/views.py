"""Numpy-only views of a cached probe result, cheap enough to run on the main thread on every
click (layer, head, patch): CLS attention maps, attention rollout, mean attention distance,
token similarity, barcodes, and the Grad-CAM / occlusion arithmetic the engines share.

Conventions: `attentions` is (layers, heads, tokens, tokens) with rows = queries and the
`prefix` non-patch tokens (CLS first, then distillation/register tokens) before the patches;
`tokens` is (layers, tokens, dim); `grid` is (rows, cols) of patches. Returned maps are float32,
reshaped to the grid when one is given. Imports numpy only: never torch.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

HEAD_FUSIONS = ("mean", "max", "min")
CAM_METHODS = ("gradcam", "gradcam++")


def _as_grid(values: np.ndarray, grid: Optional[Sequence[int]]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if grid is None:
        return values
    rows, cols = int(grid[0]), int(grid[1])
    if values.shape[-1] != rows * cols:
        raise ValueError(f"{values.shape[-1]} patch values do not fill a {rows}x{cols} grid")
    return values.reshape(values.shape[:-1] + (rows, cols))


def fuse_heads(layer_attention: np.ndarray, head_fusion: str = "mean") -> np.ndarray:
    """(heads, T, T) -> (T, T) by mean, max or min over heads."""
    a = np.asarray(layer_attention, dtype=np.float32)
    if head_fusion == "mean":
        return a.mean(axis=0)
    if head_fusion == "max":
        return a.max(axis=0)
    if head_fusion == "min":
        return a.min(axis=0)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, not {head_fusion!r}")


def token_attention(attentions: np.ndarray, layer: int, token: int = 0, head: Optional[int] = None,
                    prefix: int = 1, grid: Optional[Sequence[int]] = None) -> np.ndarray:
    """How much query `token` attends to each patch at `layer`, for one head or the mean (head=None)."""
    a = np.asarray(attentions[layer], dtype=np.float32)  # (H, T, T)
    row = a[:, token, prefix:]
    row = row.mean(axis=0) if head is None else row[head]
    return _as_grid(row, grid)


def cls_attention(attentions: np.ndarray, layer: int, head: Optional[int] = None, prefix: int = 1,
                  grid: Optional[Sequence[int]] = None) -> np.ndarray:
    """CLS-to-patch attention at `layer` for `head` (None: mean over heads), on the patch grid.

    Without a CLS token (prefix 0, average-pooled models) this is the mean over all query patches.
    """
    if prefix > 0:
        return token_attention(attentions, layer, 0, head, prefix, grid)
    a = np.asarray(attentions[layer], dtype=np.float32)
    a = a.mean(axis=0) if head is None else a[head]
    return _as_grid(a.mean(axis=0), grid)


def rollout_matrix(attentions: np.ndarray, head_fusion: str = "mean", discard_ratio: float = 0.0,
                   prefix: int = 1, layers: Optional[int] = None) -> np.ndarray:
    """Joint attention (T, T) of Abnar & Zuidema's rollout through the first `layers` layers (all: None).

    Per layer: fuse heads; in each row zero the `discard_ratio` lowest attentions among the
    non-prefix columns (CLS and other prefix tokens are never dropped); add the identity for the
    residual connection; normalise rows to sum 1; multiply onto the layers below.
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError("discard_ratio must be in [0, 1)")
    att = np.asarray(attentions)
    n_layers = att.shape[0] if layers is None else int(layers)
    t = att.shape[-1]
    joint = np.eye(t, dtype=np.float64)
    for layer in range(n_layers):
        fused = fuse_heads(att[layer], head_fusion).astype(np.float64)
        droppable = t - prefix
        k = int(discard_ratio * droppable)
        if k > 0:
            order = np.argsort(fused[:, prefix:], axis=1, kind="stable")[:, :k] + prefix
            np.put_along_axis(fused, order, 0.0, axis=1)
        a = fused + np.eye(t)
        a = a / a.sum(axis=1, keepdims=True)
        joint = a @ joint
    return joint.astype(np.float32)


def attention_rollout(attentions: np.ndarray, prefix: int = 1, grid: Optional[Sequence[int]] = None,
                      head_fusion: str = "mean", discard_ratio: float = 0.0,
                      layers: Optional[int] = None) -> np.ndarray:
    """The CLS row of the rollout over the patches (raw, not rescaled), on the grid when given.

    Without a CLS token (prefix 0) the mean row over all tokens is returned.
    """
    joint = rollout_matrix(attentions, head_fusion, discard_ratio, prefix, layers)
    row = joint[0, prefix:] if prefix > 0 else joint.mean(axis=0)
    return _as_grid(row, grid)


def patch_centres(grid: Sequence[int], patch_size: Sequence[int]) -> np.ndarray:
    """(patches, 2) centre (x, y) of each patch in input pixels, row-major like the tokens."""
    rows, cols = int(grid[0]), int(grid[1])
    ph, pw = float(patch_size[0]), float(patch_size[1])
    yy, xx = np.meshgrid((np.arange(rows) + 0.5) * ph, (np.arange(cols) + 0.5) * pw, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)


def patch_distances(grid: Sequence[int], patch_size: Sequence[int]) -> np.ndarray:
    """(patches, patches) Euclidean distance between patch centres, in input pixels."""
    c = patch_centres(grid, patch_size)
    return np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))


def mean_attention_distance(attentions: np.ndarray, grid: Sequence[int], patch_size: Sequence[int],
                            prefix: int = 1) -> np.ndarray:
    """(layers, heads) mean attention distance in input pixels (Dosovitskiy et al., fig. 7).

    Patch-to-patch attention only: each query patch's row is renormalised over the patches (so
    mass given to CLS/registers does not count as distance 0), distances are weighted by it, and
    the result is averaged over the query patches that attend to any patch.
    """
    att = np.asarray(attentions, dtype=np.float32)[..., prefix:, prefix:]
    dist = patch_distances(grid, patch_size).astype(np.float32)
    mass = att.sum(axis=-1)  # (L, H, P)
    weighted = (att * dist).sum(axis=-1)
    valid = mass > 1e-12
    per_query = np.where(valid, weighted / np.where(valid, mass, 1.0), 0.0)
    count = valid.sum(axis=-1)
    return np.where(count > 0, per_query.sum(axis=-1) / np.maximum(count, 1), 0.0).astype(np.float32)


def token_similarity(tokens: np.ndarray, layer: int, token: int, prefix: int = 1,
                     grid: Optional[Sequence[int]] = None) -> np.ndarray:
    """Cosine similarity of token `token` (index in the full sequence) to every patch at `layer`."""
    x = np.asarray(tokens[layer], dtype=np.float32)
    q = x[token]
    p = x[prefix:]
    den = np.linalg.norm(p, axis=1) * np.linalg.norm(q)
    sim = np.where(den > 0, p @ q / np.where(den > 0, den, 1.0), 0.0)
    return _as_grid(sim, grid)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """(n, n) cosine similarity of the rows of (n, d); zero rows give 0."""
    v = np.asarray(vectors, dtype=np.float64)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    u = v / np.where(n > 0, n, 1.0)
    return (u @ u.T).astype(np.float32)


def similarity_row(similarity: np.ndarray, index: int, grid: Optional[Sequence[int]] = None) -> np.ndarray:
    """One row of a (patches, patches) similarity matrix (e.g. pos_similarity) on the grid."""
    return _as_grid(np.asarray(similarity)[index], grid)


def barcode(vector: np.ndarray, mode: str = "minmax") -> np.ndarray:
    """A token vector as a 1-D strip in 0..1: "minmax" stretches min..max, "symmetric" puts 0 at 0.5
    and +-max|v| at 1/0 (for a diverging colormap)."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    if v.size == 0:
        return v
    if mode == "minmax":
        lo, hi = float(v.min()), float(v.max())
        return ((v - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(v)
    if mode == "symmetric":
        m = float(np.abs(v).max())
        return (0.5 + 0.5 * v / m).astype(np.float32) if m > 0 else np.full_like(v, 0.5)
    raise ValueError("mode must be 'minmax' or 'symmetric'")


def grad_cam(activations: np.ndarray, gradients: np.ndarray, method: str = "gradcam") -> np.ndarray:
    """(h, w) class activation map from a layer's (C, h, w) activations and their gradients.

    gradcam:   weights = spatial mean of the gradients (Selvaraju et al.).
    gradcam++: weights = sum of alpha * relu(grad), alpha = g^2 / (2 g^2 + sum(A) g^3)
               (Chattopadhay et al., with the first-order approximation used in practice).
    Both: ReLU(sum_c w_c A_c). Spatial detail of the gradient is pooled away by design.
    """
    a = np.asarray(activations, dtype=np.float64)
    g = np.asarray(gradients, dtype=np.float64)
    if method == "gradcam":
        w = g.mean(axis=(1, 2))
    elif method == "gradcam++":
        g2 = g * g
        denom = 2.0 * g2 + a.sum(axis=(1, 2))[:, None, None] * g2 * g
        alpha = np.where((g != 0) & (denom != 0), g2 / np.where(denom != 0, denom, 1.0), 0.0)
        w = (alpha * np.maximum(g, 0.0)).sum(axis=(1, 2))
    else:
        raise ValueError(f"method must be one of {CAM_METHODS}, not {method!r}")
    return np.maximum((w[:, None, None] * a).sum(axis=0), 0.0).astype(np.float32)


def occlusion_positions(size: int, window: int, stride: int) -> list[int]:
    """Top/left offsets of a window sliding over `size` pixels, the last one flush with the edge."""
    if window >= size:
        return [0]
    pos = list(range(0, size - window + 1, max(1, stride)))
    if pos[-1] + window < size:
        pos.append(size - window)
    return pos


def spread_windows(values: np.ndarray, ys: Sequence[int], xs: Sequence[int], window: int,
                   shape: Sequence[int]) -> np.ndarray:
    """(h, w) map: each pixel gets the mean of `values[i, j]` over the windows (ys[i], xs[j]) covering it."""
    h, w = int(shape[0]), int(shape[1])
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            total[y:y + window, x:x + window] += values[i, j]
            count[y:y + window, x:x + window] += 1
    return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)


def normalise01(values: np.ndarray) -> np.ndarray:
    """Scale to 0..1 by min..max; a flat map becomes zeros."""
    v = np.asarray(values, dtype=np.float32)
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
