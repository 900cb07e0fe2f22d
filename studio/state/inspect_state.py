"""State of the inspect workspace: patch grid settings and the latest feature-map result."""
from __future__ import annotations

from typing import Any

from studio.state.observable import Observable

PATCH_SIZES = (8, 14, 16, 32)


class InspectState(Observable):
    _fields = ("patch_size", "show_patches", "hover_patch", "model_id", "layers", "layer",
               "colormap", "feature_maps", "busy", "status")

    def __init__(self) -> None:
        self.patch_size: int = 16
        self.show_patches: bool = False
        self.hover_patch: tuple[int, int, int] | None = None  # (row, col, index)
        self.model_id: str = "resnet18-untrained"
        self.layers: tuple[str, ...] = ()
        self.layer: str = ""
        self.colormap: str = "viridis"
        self.feature_maps: Any = None  # FeatureMapResult
        self.busy: bool = False
        self.status: str = ""

    def set_patch_size(self, size: int) -> None:
        if size not in PATCH_SIZES:
            raise ValueError(f"patch size must be one of {PATCH_SIZES}")
        self.patch_size = size

    def patch_at(self, x: float, y: float, width: int, height: int) -> tuple[int, int, int] | None:
        """(row, col, index) of the patch under image pixel (x, y), or None outside the image."""
        if not (0 <= x < width and 0 <= y < height):
            return None
        p = self.patch_size
        cols = (width + p - 1) // p
        row, col = int(y) // p, int(x) // p
        return row, col, row * cols + col
