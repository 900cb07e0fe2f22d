"""Putting the inspect workspace's maps on the image: heatmaps mapped through the preprocessing
geometry (resize, crop or pad) into original-image pixels, composites for export, and the canvas
marks (the model's crop box, its patch grid, hovered and chosen patches, receptive-field boxes).

A map is defined over the model input (`geometry.input_size`); every original-image pixel is sent
through `geometry.original_to_input` and samples the map there. Because the mapping is axis
aligned it separates into one index vector per axis, computed once per (geometry, map shape,
output size) and cached, so a redraw is a colormap lookup and two gathers: a few milliseconds.
Pixels the model never saw (cropped away) are darkened rather than coloured.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QTransform
from PySide6.QtWidgets import QGraphicsItem

from studio.core.colormap import apply as apply_colormap

MAX_OVERLAY_SIDE = 1024  # the canvas stretches the overlay to the image; more pixels add nothing visible
OUTSIDE = (0, 0, 0, 200)  # cropped-away pixels: dimmed, so the user sees what the model did not see


@dataclass(frozen=True)
class CanvasView:
    """One map a tab wants over the image."""

    values: np.ndarray  # (h, w) raw map over the model input
    geometry: object  # PreprocessGeometry
    smooth: bool = False  # bilinear (heatmaps) or nearest (patch and channel cells)
    colormap: str = "viridis"  # "": no colour, only the dimming outside the crop
    name: str = "map"  # file-name stem for export
    vrange: Optional[tuple[float, float]] = None  # fixed value range (cosines: -1..1); None: min..max


def scaled01(values: np.ndarray, vrange: Optional[tuple[float, float]] = None) -> np.ndarray:
    """Values to 0..1: on a fixed range when given (comparable across maps), else min..max."""
    if vrange is None:
        return normalise01(values)
    lo, hi = vrange
    return np.clip((np.nan_to_num(np.asarray(values, np.float32)) - lo) / (hi - lo), 0.0, 1.0)


def normalise01(values: np.ndarray) -> np.ndarray:
    v = np.nan_to_num(np.asarray(values, np.float32))
    lo, hi = float(v.min()) if v.size else 0.0, float(v.max()) if v.size else 0.0
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def output_size(image_size: tuple[int, int], max_side: int = MAX_OVERLAY_SIDE) -> tuple[int, int]:
    w, h = image_size
    k = min(1.0, max_side / max(w, h, 1))
    return max(1, round(w * k)), max(1, round(h * k))


def _axis(n_out: int, n_orig: int, scale: float, offset: int, n_input: int, n_map: int, smooth: bool):
    """Per output pixel along one axis: (i0, i1, weight of i1, inside the model input)."""
    orig = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_orig / n_out)
    inp = orig * scale - offset
    inside = (inp >= 0) & (inp < n_input)
    m = inp * (n_map / n_input)
    if smooth:  # half-pixel centres, like F.interpolate(align_corners=False)
        f = np.clip(m - 0.5, 0, n_map - 1)
        i0 = np.floor(f).astype(np.intp)
        i1 = np.minimum(i0 + 1, n_map - 1)
        return i0, i1, (f - i0).astype(np.float32), inside
    i0 = np.clip(np.floor(m), 0, n_map - 1).astype(np.intp)
    return i0, i0, np.zeros(n_out, np.float32), inside


@lru_cache(maxsize=64)
def _sampler(geometry, map_shape: tuple[int, int], out_wh: tuple[int, int], smooth: bool):
    sx, sy = geometry.scale
    ox, oy = geometry.crop_offset
    iw, ih = geometry.input_size
    (W, H), (h, w) = geometry.original_size, map_shape
    xs = _axis(out_wh[0], W, sx, ox, iw, w, smooth)
    ys = _axis(out_wh[1], H, sy, oy, ih, h, smooth)
    outside = ~np.outer(ys[3], xs[3])
    return xs, ys, outside if outside.any() else None


def sample(values: np.ndarray, geometry, out_wh: tuple[int, int], smooth: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values at each output pixel (oh, ow), inside mask) of a map over the model input."""
    v = np.asarray(values, np.float32)
    (x0, x1, ax, inx), (y0, y1, ay, iny), _out = _sampler(geometry, tuple(v.shape), tuple(out_wh), bool(smooth))
    if smooth:
        top = v[np.ix_(y0, x0)] * (1 - ax) + v[np.ix_(y0, x1)] * ax
        bottom = v[np.ix_(y1, x0)] * (1 - ax) + v[np.ix_(y1, x1)] * ax
        out = top * (1 - ay)[:, None] + bottom * ay[:, None]
    else:
        out = v[np.ix_(y0, x0)]
    return out, np.outer(iny, inx)


def overlay_rgba(view: CanvasView, image_size: tuple[int, int], max_side: int = MAX_OVERLAY_SIDE) -> np.ndarray:
    """RGBA uint8 overlay covering the whole image (the canvas stretches it to the image)."""
    out_wh = output_size(image_size, max_side)
    v = scaled01(view.values, view.vrange)
    (x0, _x1, _ax, _inx), (y0, _y1, _ay, _iny), outside = _sampler(
        view.geometry, tuple(v.shape), tuple(out_wh), bool(view.smooth and view.colormap))
    if not view.colormap:
        rgba = np.zeros((out_wh[1], out_wh[0], 4), np.uint8)
    elif view.smooth:
        vals, _inside = sample(v, view.geometry, out_wh, True)
        rgba = np.empty(vals.shape + (4,), np.uint8)
        rgba[..., :3] = apply_colormap(vals, view.colormap)
        rgba[..., 3] = 255
    else:  # colour the small map first, then gather colours: a third of the work per pixel
        small = np.dstack([apply_colormap(v, view.colormap), np.full(v.shape, 255, np.uint8)])
        rgba = small[np.ix_(y0, x0)]
    if outside is not None:
        rgba[outside] = OUTSIDE
    return rgba


def composite(rgb: np.ndarray, rgba: np.ndarray, opacity: float) -> np.ndarray:
    """The image with an overlay of the same size blended on it (what the canvas shows)."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0 * float(opacity)
    out = rgb[..., :3].astype(np.float32) * (1 - a) + rgba[..., :3].astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def image_composite(image_rgb: np.ndarray, view: Optional[CanvasView], opacity: float,
                    max_side: int = 2048) -> np.ndarray:
    """The original image (at most `max_side` on its long edge) with `view` over it, for export."""
    h, w = image_rgb.shape[:2]
    out_wh = output_size((w, h), max_side)
    base = image_rgb[..., :3]
    if out_wh != (w, h):
        from PIL import Image

        base = np.asarray(Image.fromarray(np.ascontiguousarray(base)).resize(out_wh, Image.BILINEAR))
    if view is None:
        return np.ascontiguousarray(base)
    return composite(base, overlay_rgba(view, (w, h), max(out_wh)), opacity)


def heat_rgb(values: np.ndarray, colormap: str = "viridis",
             vrange: Optional[tuple[float, float]] = None) -> np.ndarray:
    """A small map coloured at its own resolution (for the panels' previews)."""
    return apply_colormap(scaled01(values, vrange), colormap)


def input_composite(model_input: np.ndarray, values: np.ndarray, colormap: str, opacity: float,
                    smooth: bool = True) -> np.ndarray:
    """The crop the model saw with a map over it, at the model's input resolution."""
    h, w = model_input.shape[:2]
    from studio.core.inspect_requests import PreprocessSpec

    geo = PreprocessSpec((w, h), (w, h), "squash").geometry(w, h)
    vals, _ = sample(normalise01(values), geo, (w, h), smooth)
    rgba = np.dstack([apply_colormap(vals, colormap), np.full((h, w), 255, np.uint8)])
    return composite(np.asarray(model_input), rgba, opacity)


def squash_geometry(image_size: tuple[int, int], input_size: tuple[int, int]):
    """The geometry of a plain resize of the whole image (the feature-map engine's preprocessing)."""
    from studio.core.inspect_requests import PreprocessSpec

    return PreprocessSpec(tuple(input_size), tuple(input_size), "squash").geometry(*image_size)


# ---------------------------------------------------------------------------------- canvas marks
class CanvasMarks(QGraphicsItem):
    """Drawn above the image and its overlay, in image pixels: the model's crop box and patch grid
    (through the preprocessing geometry), the hovered and the chosen patch, and boxes."""

    def __init__(self) -> None:
        super().__init__()
        self.setZValue(2)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._geo = None
        self._patch: Optional[tuple[int, int]] = None  # (ph, pw) input pixels
        self._grid: Optional[tuple[int, int]] = None
        self._hover: Optional[tuple[int, int]] = None
        self._selected: Optional[tuple[int, int]] = None
        self._boxes: tuple = ()  # ((x0, y0, x1, y1) original pixels, QColor, label)
        self._label = ""
        self._rect = QRectF()

    def set_marks(self, geometry=None, patch_size=None, grid=None, hover=None, selected=None,
                  boxes=(), label: str = "") -> None:
        state = (geometry, patch_size, grid, hover, selected, tuple(boxes), label)
        if state == (self._geo, self._patch, self._grid, self._hover, self._selected, self._boxes, self._label):
            return
        self.prepareGeometryChange()
        (self._geo, self._patch, self._grid, self._hover, self._selected, self._boxes, self._label) = state
        rect = QRectF()
        if geometry is not None:
            rect = QRectF(0, 0, *geometry.original_size).united(self._box(geometry.crop_box))
        for box, _c, _l in self._boxes:
            rect = rect.united(self._box(box))
        self._rect = rect.adjusted(-4, -4, 4, 4)
        self.update()

    def clear(self) -> None:
        self.set_marks()

    def is_empty(self) -> bool:
        return self._geo is None and not self._boxes

    @staticmethod
    def _box(b) -> QRectF:
        return QRectF(QPointF(b[0], b[1]), QPointF(b[2], b[3]))

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        geo = self._geo
        painter.save()
        if geo is not None and self._patch is not None and self._grid is not None:
            (ph, pw), (rows, cols) = self._patch, self._grid
            x0, y0, x1, y1 = geo.input_box_to_original((0, 0, cols * pw, rows * ph))
            if self._hover is not None:
                painter.fillRect(self._box(geo.patch_box(*self._hover, self._patch)), QColor(255, 210, 0, 90))
            pen = QPen(QColor(255, 255, 255, 150))
            pen.setCosmetic(True)
            painter.setPen(pen)
            lines = [QLineF(x, y0, x, y1) for x in (geo.input_to_original(c * pw, 0)[0] for c in range(1, cols))]
            lines += [QLineF(x0, y, x1, y) for y in (geo.input_to_original(0, r * ph)[1] for r in range(1, rows))]
            painter.drawLines(lines)  # one call: a ViT-L grid is 30+ lines
            if self._selected is not None:
                pen = QPen(QColor(0, 230, 255))
                pen.setCosmetic(True)
                pen.setWidthF(2.5)
                painter.setPen(pen)
                painter.drawRect(self._box(geo.patch_box(*self._selected, self._patch)))
        if geo is not None:
            pen = QPen(QColor(255, 200, 0))
            pen.setCosmetic(True)
            pen.setWidthF(2.0)
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            crop = self._box(geo.crop_box)
            painter.drawRect(crop)
            if self._label:
                self._text(painter, crop.topLeft(), self._label, QColor(255, 200, 0))
        for box, color, label in self._boxes:
            pen = QPen(color)
            pen.setCosmetic(True)
            pen.setWidthF(2.0)
            painter.setPen(pen)
            r = self._box(box)
            painter.drawRect(r)
            if label:
                self._text(painter, r.topLeft(), label, color)
        painter.restore()

    @staticmethod
    def _text(painter: QPainter, at: QPointF, text: str, color: QColor) -> None:
        # Text at screen size whatever the zoom: draw in device coordinates.
        p = painter.worldTransform().map(at)
        painter.save()
        painter.setWorldTransform(QTransform())
        font = QFont(painter.font())
        font.setPointSizeF(8.5)
        painter.setFont(font)
        rect = painter.fontMetrics().boundingRect(text).adjusted(-3, -1, 3, 1)
        rect.moveTo(int(p.x()) + 2, int(p.y()) + 2)  # inside the box: above it may be off screen
        painter.fillRect(rect, QColor(0, 0, 0, 170))
        painter.setPen(color)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()
