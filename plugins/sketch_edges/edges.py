"""Sketch and edge control images in numpy only (no OpenCV, no weights).

`sketch` is a difference of Gaussians: the image blurred a little minus the image blurred a bit
more is negative on the dark side of every contour, which reads like pencil lines once thresholded.
`sobel` is the gradient magnitude. Both return white lines on black, the Canny/scribble convention
ControlNets are trained on.
"""
from __future__ import annotations

import numpy as np


def _gray(image: np.ndarray) -> np.ndarray:
    rgb = image[..., :3].astype(np.float32) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _blur_axis(a: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    radius = max(1, int(3 * sigma + 0.5))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    kernel /= kernel.sum()
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    p = np.pad(a, pad, mode="reflect")
    out = np.zeros_like(a)
    n = a.shape[axis]
    # A weighted sum of shifted views: fast for small kernels, no Python loop over pixels.
    for i, w in enumerate(kernel):
        out += w * (p[i:i + n] if axis == 0 else p[:, i:i + n])
    return out


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return _blur_axis(_blur_axis(a, sigma, 0), sigma, 1)


def _lines(strength: np.ndarray, keep: float) -> np.ndarray:
    """Scale a line strength map so its strong lines reach white; drop the faint texture."""
    top = float(np.percentile(strength, 99.5))
    if top <= 1e-6:
        return np.zeros(strength.shape + (3,), np.uint8)
    v = np.clip(strength / top, 0.0, 1.0)
    v = np.where(v >= keep, v, 0.0) ** 0.6
    g = (v * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def sketch(image: np.ndarray, sigma: float = 1.5, k: float = 1.6) -> np.ndarray:
    """Pencil-like lines: where the grey image is darker than its surroundings, G(sigma) - G(k sigma)
    < 0. Keeping that side only gives one line per contour (the absolute value draws two)."""
    g = _gray(image)
    dog = blur(g, sigma) - blur(g, sigma * k)
    return _lines(np.maximum(-dog, 0.0), keep=0.3)


def sobel(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the lightly blurred grey image."""
    g = np.pad(blur(_gray(image), 0.8), 1, mode="edge")
    gx = (g[:-2, 2:] + 2 * g[1:-1, 2:] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[1:-1, :-2] + g[2:, :-2])
    gy = (g[2:, :-2] + 2 * g[2:, 1:-1] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[:-2, 1:-1] + g[:-2, 2:])
    return _lines(np.hypot(gx, gy), keep=0.15)
