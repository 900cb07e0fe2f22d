"""The chat workspace on the canvas: drag a box to select a region (the canvas pans on drag, so
selection is a mode switched on by `chat.select_region`), and the overlay of grounded boxes.

The selector is an event filter on the canvas viewport, installed by the chat panel: canvas.py
stays untouched. While the mode is on it takes left-button presses, shows a QRubberBand and
reports the box in image pixels; everything else (wheel zoom, hover) passes through.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QRubberBand

from studio.ui.convert import qimage_to_array

MAX_OVERLAY_SIDE = 2048  # the canvas stretches the overlay to the image; beyond this only memory grows
MIN_OVERLAY_SIDE = 512  # small images (a 64-px scene) get a finer overlay: thin lines, crisp labels when zoomed
BOX_COLOURS = ((255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120), (255, 120, 255), (255, 150, 60))
REGION_COLOUR = (0, 230, 255)


class RegionSelector(QObject):
    """Rubber-band selection on an ImageCanvas while `active`; emits the box in image pixels."""

    selected = Signal(float, float, float, float)
    cancelled = Signal()

    def __init__(self, canvas, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("chat.region_selector")
        self.canvas = canvas
        self.active = False
        self._origin: QPoint | None = None
        self._band = QRubberBand(QRubberBand.Shape.Rectangle, canvas.viewport())
        self._band.setObjectName("chat.rubber_band")
        canvas.viewport().installEventFilter(self)

    def set_active(self, on: bool) -> None:
        self.active = bool(on)
        self._origin = None
        self._band.hide()
        vp = self.canvas.viewport()
        if on:
            vp.setCursor(Qt.CursorShape.CrossCursor)
        else:
            vp.unsetCursor()

    def detach(self) -> None:
        self.canvas.viewport().removeEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if not self.active:
            return False
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self._origin = event.position().toPoint()
            self._band.setGeometry(QRect(self._origin, self._origin))
            self._band.show()
            return True
        if kind == QEvent.Type.MouseMove and self._origin is not None:
            self._band.setGeometry(QRect(self._origin, event.position().toPoint()).normalized())
            return False  # the canvas still reports the pixel under the cursor
        if kind == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton \
                and self._origin is not None:
            start, end = self._origin, event.position().toPoint()
            self._origin = None
            self._band.hide()
            self._finish(start, end)
            return True
        return False

    def _finish(self, start: QPoint, end: QPoint) -> None:
        img = self.canvas.image()
        if img is None:
            self.cancelled.emit()
            return
        a, b = self.canvas.mapToScene(start), self.canvas.mapToScene(end)
        x0, x1 = sorted((a.x(), b.x()))
        y0, y1 = sorted((a.y(), b.y()))
        # Whole pixels the box touches, inside the image.
        x0, y0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        x1, y1 = min(img.width, math.ceil(x1)), min(img.height, math.ceil(y1))
        if x1 - x0 < 2 or y1 - y0 < 2:
            self.cancelled.emit()  # a click, or a box outside the image
            return
        self.selected.emit(float(x0), float(y0), float(x1), float(y1))


def boxes_overlay(image_size: tuple[int, int], boxes, region=None, highlight: int = -1,
                  max_side: int = MAX_OVERLAY_SIDE) -> np.ndarray | None:
    """RGBA uint8 overlay covering the image (at image resolution, at least MIN_OVERLAY_SIDE and at most
    `max_side` on the long side): each grounded
    box (x0, y0, x1, y1, label, kind) outlined and labelled, points as rings, and the attached
    region dashed. None when there is nothing to draw."""
    if not boxes and region is None:
        return None
    w, h = image_size
    side = max(w, h, 1)
    scale = min(max(side, MIN_OVERLAY_SIDE), max_side) / side
    ow, oh = max(1, round(w * scale)), max(1, round(h * scale))
    qimg = QImage(ow, oh, QImage.Format.Format_RGBA8888)
    qimg.fill(Qt.GlobalColor.transparent)
    painter = QPainter(qimg)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    line = max(2.0, min(ow, oh) / 160.0)
    font = QFont()
    font.setPixelSize(int(max(10, min(ow, oh) / 28)))
    painter.setFont(font)
    for i, (x0, y0, x1, y1, label, kind) in enumerate(boxes):
        colour = QColor(*BOX_COLOURS[i % len(BOX_COLOURS)])
        pen = QPen(colour, line * (1.8 if i == highlight else 1.0))
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if kind == "point":
            r = max(4.0, line * 3)
            cx, cy = x0 * scale, y0 * scale
            painter.drawEllipse(QRectF(cx - r, cy - r, 2 * r, 2 * r))
            painter.drawPoint(QRectF(cx - 1, cy - 1, 2, 2).center())
            anchor = (cx + r, cy - r)
        else:
            rect = QRectF(x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale)
            painter.drawRect(rect)
            anchor = (rect.left(), rect.top())
        text = label or f"#{i + 1}"
        metrics = painter.fontMetrics()
        tw, th = metrics.horizontalAdvance(text) + 6, metrics.height() + 2
        tx = min(max(0.0, anchor[0]), max(0.0, ow - tw))
        ty = anchor[1] - th if anchor[1] - th >= 0 else anchor[1]
        painter.fillRect(QRectF(tx, ty, tw, th), QColor(0, 0, 0, 170))
        painter.setPen(colour)
        painter.drawText(QRectF(tx, ty, tw, th), Qt.AlignmentFlag.AlignCenter, text)
    if region is not None:
        x0, y0, x1, y1 = region
        pen = QPen(QColor(*REGION_COLOUR), line)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale))
    painter.end()
    return qimage_to_array(qimg)
