"""The central image canvas: zoom (wheel, +/-), pan (drag), fit, 100%, pixel grid, patch grid overlay.

It reports the image pixel and its RGB under the cursor, and accepts dropped image files.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from studio.core.image import StudioImage
from studio.ui.convert import array_to_pixmap

MIN_ZOOM, MAX_ZOOM = 1 / 32, 64.0
PIXEL_GRID_ZOOM = 8.0
ZOOM_STEP = 1.25


class ImageCanvas(QGraphicsView):
    # Image pixel under the cursor (x, y, (r, g, b)), or (-1, -1, None) when outside.
    hovered = Signal(int, int, object)
    zoom_changed = Signal(float)
    files_dropped = Signal(list)
    # A click (press and release without dragging) on image pixel (x, y).
    clicked = Signal(int, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("canvas")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._scene.addItem(self._item)
        # Overlays (heatmaps, masks, boxes) sit above the image, stretched to the image's size.
        self._overlay = QGraphicsPixmapItem()
        self._overlay.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay.setZValue(1)
        self._scene.addItem(self._overlay)
        self._press_pos = None
        self._image: StudioImage | None = None
        self._patch_size = 0
        self._hover_patch: tuple[int, int, int] | None = None
        self._fit_mode = True
        self.setBackgroundBrush(QBrush(QColor(38, 38, 42)))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)

    # -- image ----------------------------------------------------------------------------
    def set_image(self, image: StudioImage | None) -> None:
        self._image = image
        if image is None:
            self._item.setPixmap(QPixmap())
            self._scene.setSceneRect(QRectF())
        else:
            self._item.setPixmap(array_to_pixmap(image.pixels))
            self.set_overlay(None)
            self._scene.setSceneRect(QRectF(0, 0, image.width, image.height))
            self.fit()
        self.viewport().update()

    def image(self) -> StudioImage | None:
        return self._image

    # -- overlays -------------------------------------------------------------------------
    def set_patch_grid(self, size: int) -> None:
        """Draw a patch grid of `size` image pixels (0 hides it)."""
        self._patch_size = int(size)
        self.viewport().update()

    def set_overlay(self, rgba, opacity: float = 0.6, smooth: bool = True) -> None:
        """Show an RGB(A) uint8 array over the image, scaled to cover it exactly; None removes it."""
        if rgba is None or self._image is None:
            self._overlay.setPixmap(QPixmap())
            self._overlay.setVisible(False)
            return
        pix = array_to_pixmap(rgba)
        self._overlay.setPixmap(pix)
        self._overlay.setTransformationMode(
            Qt.TransformationMode.SmoothTransformation if smooth else Qt.TransformationMode.FastTransformation)
        self._overlay.setScale(1.0)
        sx = self._image.width / max(pix.width(), 1)
        sy = self._image.height / max(pix.height(), 1)
        self._overlay.setTransform(QTransform.fromScale(sx, sy))
        self._overlay.setOpacity(max(0.0, min(1.0, opacity)))
        self._overlay.setVisible(True)

    def has_overlay(self) -> bool:
        return self._overlay.isVisible() and not self._overlay.pixmap().isNull()

    def set_hover_patch(self, patch: tuple[int, int, int] | None) -> None:
        self._hover_patch = patch
        self.viewport().update()

    # -- zoom -----------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, z: float) -> None:
        z = max(MIN_ZOOM, min(MAX_ZOOM, z))
        cur = self.zoom()
        if cur > 0 and not math.isclose(cur, z):
            self.scale(z / cur, z / cur)
        self._fit_mode = False
        self.zoom_changed.emit(self.zoom())

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom() * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom() / ZOOM_STEP)

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def fit(self) -> None:
        if self._image is None:
            return
        self.resetTransform()
        self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_mode = True
        self.zoom_changed.emit(self.zoom())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    def wheelEvent(self, event) -> None:
        delta = event.angleDelta().y()
        if delta == 0:
            return
        factor = ZOOM_STEP ** (delta / 120.0)
        self.set_zoom(self.zoom() * factor)
        event.accept()

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif key == Qt.Key.Key_Minus:
            self.zoom_out()
        elif key == Qt.Key.Key_0:
            self.fit()
        elif key == Qt.Key.Key_1 and not event.modifiers():
            self.actual_size()
        else:
            super().keyPressEvent(event)

    # -- hover ----------------------------------------------------------------------------
    def image_pos(self, view_pos) -> QPointF:
        return self.mapToScene(view_pos)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press_pos = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        start, self._press_pos = self._press_pos, None
        if start is None or event.button() != Qt.MouseButton.LeftButton or self._image is None:
            return
        if (event.position().toPoint() - start).manhattanLength() > 3:
            return  # a drag pans; it is not a click
        p = self.image_pos(event.position().toPoint())
        x, y = math.floor(p.x()), math.floor(p.y())
        if 0 <= x < self._image.width and 0 <= y < self._image.height:
            self.clicked.emit(x, y)

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        self._report(self.image_pos(event.position().toPoint()))

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        self.hovered.emit(-1, -1, None)

    def _report(self, p: QPointF) -> None:
        img = self._image
        if img is None:
            self.hovered.emit(-1, -1, None)
            return
        x, y = math.floor(p.x()), math.floor(p.y())
        if 0 <= x < img.width and 0 <= y < img.height:
            px = img.pixels[y, x]
            self.hovered.emit(x, y, tuple(int(v) for v in px))
        else:
            self.hovered.emit(-1, -1, None)

    # -- drawing --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self._image is None:
            painter = QPainter(self.viewport())
            painter.setPen(QColor(170, 170, 180))
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter,
                             "Open an image: File > Open (Ctrl+O), drop a file here, "
                             "or paste (Ctrl+V)")
            painter.end()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        img = self._image
        if img is None:
            return
        z = self.zoom()
        bounds = rect.intersected(QRectF(0, 0, img.width, img.height))
        if bounds.isEmpty():
            return
        painter.save()
        if z >= PIXEL_GRID_ZOOM:
            pen = QPen(QColor(0, 0, 0, 70))
            pen.setCosmetic(True)
            painter.setPen(pen)
            self._grid(painter, bounds, 1)
        if self._patch_size > 0:
            if self._hover_patch is not None:
                r, c, _ = self._hover_patch
                p = self._patch_size
                painter.fillRect(QRectF(c * p, r * p, p, p), QColor(255, 210, 0, 70))
            pen = QPen(QColor(255, 255, 255, 170))
            pen.setCosmetic(True)
            pen.setWidthF(1.0)
            painter.setPen(pen)
            self._grid(painter, bounds, self._patch_size)
        painter.restore()

    @staticmethod
    def _grid(painter: QPainter, bounds: QRectF, step: int) -> None:
        x0 = int(bounds.left() // step) * step
        y0 = int(bounds.top() // step) * step
        x = float(x0)
        while x <= bounds.right():
            painter.drawLine(QPointF(x, bounds.top()), QPointF(x, bounds.bottom()))
            x += step
        y = float(y0)
        while y <= bounds.bottom():
            painter.drawLine(QPointF(bounds.left(), y), QPointF(bounds.right(), y))
            y += step

    # -- drag and drop --------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.files_dropped.emit(urls)
        else:
            super().dropEvent(event)

