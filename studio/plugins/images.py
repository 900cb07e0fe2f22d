"""Checking what a plugin preprocessor returns and turning it into a control image.

Plugin authors return whatever is natural (a grey HxW array, floats in 0..1, a PIL image, RGBA):
the studio accepts those and converts to HxWx3 uint8 at the input's size; anything else is a
plugin bug and raises ValueError (the manager turns it into a failure naming the plugin).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def control_image(out: Any, size_hw: tuple[int, int]) -> np.ndarray:
    """HxWx3 uint8 at `size_hw` (height, width) from a preprocessor's return value."""
    if hasattr(out, "getbands") and hasattr(out, "convert"):  # a PIL image
        out = np.asarray(out.convert("RGB"))
    if not isinstance(out, np.ndarray):
        raise ValueError(f"a preprocessor must return a numpy array (HxWx3 uint8), not {type(out).__name__}")
    arr = out
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"a preprocessor must return HxWx3 pixels, not an array of shape {out.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError("a preprocessor returned NaN or infinite values")
        scale = 255.0 if float(arr.max(initial=0.0)) <= 1.0 else 1.0
        arr = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"a preprocessor returned values of type {arr.dtype}")
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    h, w = size_hw
    if arr.shape[:2] != (h, w):
        from PIL import Image

        arr = np.asarray(Image.fromarray(np.ascontiguousarray(arr)).resize((w, h), Image.BILINEAR))
    return np.ascontiguousarray(arr)
