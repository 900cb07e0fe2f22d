"""Colormaps and per-channel normalisation for showing activations, in numpy only."""
from __future__ import annotations

import numpy as np

# Control points of matplotlib's colormaps (sampled), so the studio needs no matplotlib.
_POINTS = {
    "viridis": [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
                (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)],
    "magma": [(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
              (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191)],
    "gray": [(0, 0, 0), (255, 255, 255)],
    "coolwarm": [(59, 76, 192), (124, 159, 249), (192, 212, 245), (242, 203, 183),
                 (238, 133, 105), (180, 4, 38)],
}
COLORMAPS = tuple(_POINTS)


def lut(name: str) -> np.ndarray:
    """A 256x3 uint8 lookup table."""
    pts = np.asarray(_POINTS[name], dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(pts))
    t = np.linspace(0.0, 1.0, 256)
    out = np.stack([np.interp(t, xs, pts[:, c]) for c in range(3)], axis=1)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def normalise(maps: np.ndarray) -> np.ndarray:
    """Scale each channel of (C, H, W) to 0..1 on its own min..max; flat channels become 0."""
    maps = np.asarray(maps, dtype=np.float32)
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.min(axis=1)[:, None, None]
    hi = flat.max(axis=1)[:, None, None]
    span = hi - lo
    return np.where(span > 1e-12, (maps - lo) / np.where(span > 1e-12, span, 1.0), 0.0).astype(np.float32)


def apply(values01: np.ndarray, name: str) -> np.ndarray:
    """Map an array of 0..1 values to RGB uint8 (shape + (3,))."""
    idx = np.clip((np.asarray(values01) * 255.0 + 0.5).astype(np.int32), 0, 255)
    return lut(name)[idx]


def tile(maps01: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (C, h, w) into one 2-D mosaic with `pad` pixels of NaN between tiles (drawn as background)."""
    c, h, w = maps01.shape
    if c == 0:
        return np.zeros((h, w), np.float32)
    cols = cols or int(np.ceil(np.sqrt(c)))
    rows = int(np.ceil(c / cols))
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan, np.float32)
    for i in range(c):
        r, k = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, k * (w + pad): k * (w + pad) + w] = maps01[i]
    return out


def mosaic_rgb(maps: np.ndarray, name: str, cols: int | None = None,
               background: tuple[int, int, int] = (32, 32, 36)) -> np.ndarray:
    """Per-channel normalise, tile and colour activations into an RGB uint8 mosaic."""
    tiled = tile(normalise(maps), cols)
    rgb = apply(np.nan_to_num(tiled, nan=0.0), name)
    rgb[np.isnan(tiled)] = background
    return rgb
