"""Image value type shared by every layer: an immutable RGB(A) uint8 array plus where it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class StudioImage:
    """An immutable HxWx3 (or HxWx4) uint8 image. The array is made read-only on creation."""

    pixels: np.ndarray
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.pixels)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"StudioImage needs HxWx3/4 uint8, got {arr.dtype} {arr.shape}")
        if arr.flags.writeable:
            arr = arr.copy()
            arr.setflags(write=False)
        object.__setattr__(self, "pixels", arr)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def rgb(self) -> np.ndarray:
        """RGB pixels; transparency is composited over white so nothing turns black."""
        px = self.pixels
        if px.shape[2] == 3:
            return px
        alpha = px[..., 3:4].astype(np.float32) / 255.0
        out = px[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def to_pil(self):
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(self.pixels))

    @classmethod
    def from_pil(cls, img, source: str = "", info: dict[str, Any] | None = None) -> "StudioImage":
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        return cls(np.asarray(img), source, dict(info or {}))
