"""Small drawn views of the inspect workspace: a heatmap label (a map at its own resolution,
scaled with crisp cells, clickable by cell), the clickable channel grid, an activation histogram,
the mean-attention-distance scatter (layer on x, distance on y, one dot per head) and a token
barcode. All draw with QPainter from numpy arrays handed to them; none computes anything heavy.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from studio.core.colormap import apply as apply_colormap
from studio.core.colormap import normalise, tile
from studio.ui.convert import array_to_pixmap

BACKGROUND = QColor(32, 32, 36)
AXIS = QColor(170, 170, 180)
HIGHLIGHT = QColor(0, 230, 255)


def _fit_rect(src_w: int, src_h: int, dst: QRectF) -> QRectF:
    """The largest rectangle of aspect src_w:src_h centred in dst."""
    if src_w <= 0 or src_h <= 0:
        return QRectF()
    k = min(dst.width() / src_w, dst.height() / src_h)
    w, h = src_w * k, src_h * k
    return QRectF(dst.center().x() - w / 2, dst.center().y() - h / 2, w, h)


class HeatmapLabel(QLabel):
    """Shows an RGB array scaled to fit with nearest-neighbour cells; reports clicks by cell."""

    cell_clicked = Signal(int, int)  # (row, col) of the array

    def __init__(self, name: str, parent=None, min_side: int = 120) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(min_side, min_side)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: #202024;")
        self._rgb: Optional[np.ndarray] = None
        self._mark: Optional[tuple[int, int]] = None
        self._placeholder = ""

    def sizeHint(self) -> QSize:
        # The minimum (the layout stretches it): a hint that followed the pixmap would let the dock
        # only ever grow, and a large one makes a scrolled tab scroll although it could fit.
        return self.minimumSize()

    def minimumSizeHint(self) -> QSize:
        return self.minimumSize()

    def set_rgb(self, rgb: Optional[np.ndarray], mark: Optional[tuple[int, int]] = None,
                placeholder: str = "") -> None:
        self._rgb = None if rgb is None else np.ascontiguousarray(rgb)
        self._mark = mark
        self._placeholder = placeholder
        self._redraw()

    def rgb(self) -> Optional[np.ndarray]:
        return self._rgb

    def _target(self) -> QRectF:
        if self._rgb is None:
            return QRectF()
        h, w = self._rgb.shape[:2]
        return _fit_rect(w, h, QRectF(self.contentsRect()))

    def _redraw(self) -> None:
        if self._rgb is None:
            self.clear()
            self.setText(self._placeholder)
            return
        h, w = self._rgb.shape[:2]
        target = self._target()
        pix = array_to_pixmap(self._rgb).scaled(max(1, int(target.width())), max(1, int(target.height())),
                                                Qt.AspectRatioMode.IgnoreAspectRatio,
                                                Qt.TransformationMode.FastTransformation)
        if self._mark is not None:
            r, c = self._mark
            p = QPainter(pix)
            pen = QPen(HIGHLIGHT)
            pen.setWidthF(2.0)
            p.setPen(pen)
            cw, ch = pix.width() / w, pix.height() / h
            p.drawRect(QRectF(c * cw + 1, r * ch + 1, max(cw - 2, 1), max(ch - 2, 1)))
            p.end()
        self.setPixmap(pix)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._rgb is not None:
            self._redraw()

    def mousePressEvent(self, event) -> None:
        t = self._target()
        pos = event.position()
        if self._rgb is not None and t.contains(pos):
            h, w = self._rgb.shape[:2]
            col = min(int((pos.x() - t.left()) / t.width() * w), w - 1)
            row = min(int((pos.y() - t.top()) / t.height() * h), h - 1)
            self.cell_clicked.emit(row, col)
        super().mousePressEvent(event)


class ChannelGrid(QLabel):
    """The feature-map mosaic: every channel normalised on its own, tiled, coloured; a click on a
    tile reports its position in the mosaic."""

    tile_clicked = Signal(int)

    def __init__(self, name: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(240, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: #202024;")
        self.setToolTip("Click a channel to see it large over the image")
        self._maps: Optional[np.ndarray] = None
        self._cmap = "viridis"
        self._selected: Optional[int] = None
        self._cols = 1
        self._mosaic: Optional[np.ndarray] = None

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSizeHint(self) -> QSize:
        return self.minimumSize()

    def set_maps(self, maps: Optional[np.ndarray], colormap: str, selected: Optional[int] = None) -> None:
        self._cmap, self._selected = colormap, selected
        if maps is not self._maps:
            self._maps = maps
            self._mosaic = None
            if maps is not None and len(maps):
                self._cols = int(np.ceil(np.sqrt(maps.shape[0])))
                self._mosaic = tile(normalise(maps), self._cols)
        self._redraw()

    def _geometry(self) -> tuple[QRectF, int, int]:
        h, w = self._mosaic.shape
        return _fit_rect(w, h, QRectF(self.contentsRect())), w, h

    def _redraw(self) -> None:
        if self._mosaic is None:
            self.clear()
            return
        rgb = apply_colormap(np.nan_to_num(self._mosaic, nan=0.0), self._cmap)
        rgb[np.isnan(self._mosaic)] = (32, 32, 36)
        rect, w, h = self._geometry()
        pix = array_to_pixmap(rgb).scaled(max(1, int(rect.width())), max(1, int(rect.height())),
                                          Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.FastTransformation)
        if self._selected is not None and self._maps is not None:
            th, tw = self._maps.shape[1:]
            r, c = divmod(self._selected, self._cols)
            k = pix.width() / w
            p = QPainter(pix)
            pen = QPen(HIGHLIGHT)
            pen.setWidthF(2.0)
            p.setPen(pen)
            p.drawRect(QRectF(c * (tw + 1) * k, r * (th + 1) * k, tw * k, th * k))
            p.end()
        self.setPixmap(pix)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._redraw()

    def tile_at(self, x: float, y: float) -> Optional[int]:
        if self._mosaic is None or self._maps is None:
            return None
        rect, w, h = self._geometry()
        if not rect.contains(QPointF(x, y)):
            return None
        th, tw = self._maps.shape[1:]
        mx = (x - rect.left()) / rect.width() * w
        my = (y - rect.top()) / rect.height() * h
        col, row = int(mx // (tw + 1)), int(my // (th + 1))
        index = row * self._cols + col
        return index if col < self._cols and index < self._maps.shape[0] else None

    def tile_centre(self, index: int) -> QPointF:
        """Widget coordinates of the centre of tile `index` (for tests and the benchmark)."""
        rect, w, h = self._geometry()
        th, tw = self._maps.shape[1:]
        r, c = divmod(index, self._cols)
        k = rect.width() / w
        return QPointF(rect.left() + (c * (tw + 1) + tw / 2) * k, rect.top() + (r * (th + 1) + th / 2) * k)

    def mousePressEvent(self, event) -> None:
        i = self.tile_at(event.position().x(), event.position().y())
        if i is not None:
            self.tile_clicked.emit(i)
        super().mousePressEvent(event)


class _Plot(QWidget):
    MARGIN = (34, 8, 8, 22)  # left, top, right, bottom

    def __init__(self, name: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        return QSize(280, self.minimumHeight())

    def _area(self) -> QRectF:
        l, t, r, b = self.MARGIN
        return QRectF(self.rect()).adjusted(l, t, -r, -b)

    def _frame(self, p: QPainter, empty: str) -> Optional[QRectF]:
        p.fillRect(self.rect(), BACKGROUND)
        p.setPen(AXIS)
        font = QFont(p.font())
        font.setPointSizeF(7.5)
        p.setFont(font)
        if empty:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, empty)
            return None
        a = self._area()
        p.drawLine(a.bottomLeft(), a.bottomRight())
        p.drawLine(a.bottomLeft(), a.topLeft())
        return a


class HistogramWidget(_Plot):
    """Activation histogram of one layer: bars, the value range, and zero marked when inside it."""

    def __init__(self, name: str, parent=None) -> None:
        super().__init__(name, parent)
        self._counts = self._edges = None
        self._title = ""

    def set_histogram(self, counts, edges, title: str = "") -> None:
        self._counts = None if counts is None else np.asarray(counts, np.float64)
        self._edges = None if edges is None else np.asarray(edges, np.float64)
        self._title = title
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        a = self._frame(p, "" if self._counts is not None else "Activation histogram: run feature maps")
        if a is not None:
            c, e = self._counts, self._edges
            # sqrt counts: a spike at zero (ReLU) would flatten every other bar.
            heights = np.sqrt(c / max(c.max(), 1.0))
            bw = a.width() / len(c)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(90, 170, 240))
            for i, hgt in enumerate(heights):
                p.drawRect(QRectF(a.left() + i * bw, a.bottom() - hgt * a.height(), max(bw - 0.5, 0.5),
                                  hgt * a.height()))
            lo, hi = float(e[0]), float(e[-1])
            if lo < 0 < hi:
                x = a.left() + (0 - lo) / (hi - lo) * a.width()
                p.setPen(QPen(QColor(255, 200, 0), 1, Qt.PenStyle.DashLine))
                p.drawLine(QPointF(x, a.top()), QPointF(x, a.bottom()))
            p.setPen(AXIS)
            p.drawText(QRectF(a.left(), a.bottom() + 2, a.width(), 16), Qt.AlignmentFlag.AlignLeft, f"{lo:.3g}")
            p.drawText(QRectF(a.left(), a.bottom() + 2, a.width(), 16), Qt.AlignmentFlag.AlignRight, f"{hi:.3g}")
            p.drawText(QRectF(a.left(), a.bottom() + 2, a.width(), 16), Qt.AlignmentFlag.AlignHCenter,
                       self._title)
            p.drawText(QRectF(0, a.top(), self.MARGIN[0] - 3, 14), Qt.AlignmentFlag.AlignRight,
                       f"{int(c.max())}")
            p.drawText(QRectF(0, a.bottom() - 14, self.MARGIN[0] - 3, 14), Qt.AlignmentFlag.AlignRight, "0")
        p.end()


class DistancePlot(_Plot):
    """Mean attention distance: layer on x, distance (input pixels) on y, one dot per head.
    The current layer's column is shaded and the current head ringed; a click picks a dot."""

    picked = Signal(int, int)  # (layer, head)

    def __init__(self, name: str, parent=None) -> None:
        super().__init__(name, parent)
        self._d: Optional[np.ndarray] = None
        self._layer = 0
        self._head: Optional[int] = None
        self._ymax = 1.0
        self.setToolTip("Mean attention distance per head (Dosovitskiy et al.): click a dot to show that "
                        "layer and head")

    def set_distances(self, d: Optional[np.ndarray], layer: int, head: Optional[int], ymax: float) -> None:
        self._d, self._layer, self._head, self._ymax = d, layer, head, max(float(ymax), 1e-6)
        self.update()

    def _point(self, a: QRectF, layer: int, value: float) -> QPointF:
        n = self._d.shape[0]
        x = a.left() + (layer + 0.5) / n * a.width()
        return QPointF(x, a.bottom() - value / self._ymax * a.height())

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        a = self._frame(p, "" if self._d is not None else "Mean attention distance: run the attention probe")
        if a is not None:
            d = self._d
            n, heads = d.shape
            colw = a.width() / n
            p.fillRect(QRectF(a.left() + self._layer * colw, a.top(), colw, a.height()), QColor(255, 255, 255, 28))
            for layer in range(n):
                for h in range(heads):
                    pt = self._point(a, layer, float(d[layer, h]))
                    hue = int(300 * h / max(heads, 1))
                    p.setPen(Qt.PenStyle.NoPen)
                    p.setBrush(QColor.fromHsv(hue, 160, 240))
                    p.drawEllipse(pt, 3.2, 3.2)
                    if layer == self._layer and (self._head is None or self._head == h):
                        p.setBrush(Qt.BrushStyle.NoBrush)
                        p.setPen(QPen(HIGHLIGHT, 1.5))
                        p.drawEllipse(pt, 5.5, 5.5)
            p.setPen(AXIS)
            p.drawText(QRectF(0, a.top() - 2, self.MARGIN[0] - 3, 14), Qt.AlignmentFlag.AlignRight,
                       f"{self._ymax:.0f}")
            p.drawText(QRectF(0, a.bottom() - 12, self.MARGIN[0] - 3, 14), Qt.AlignmentFlag.AlignRight, "0 px")
            step = max(1, n // 8)
            for layer in range(0, n, step):
                x = a.left() + (layer + 0.5) * colw
                p.drawText(QRectF(x - 12, a.bottom() + 2, 24, 14), Qt.AlignmentFlag.AlignHCenter, str(layer + 1))
            p.drawText(QRectF(0, a.bottom() + 2, self.MARGIN[0] - 3, 14), Qt.AlignmentFlag.AlignRight, "layer")
        p.end()

    def mousePressEvent(self, event) -> None:
        if self._d is None:
            return
        a = self._area()
        pos = event.position()
        best, where = 1e9, None
        for layer in range(self._d.shape[0]):
            for h in range(self._d.shape[1]):
                pt = self._point(a, layer, float(self._d[layer, h]))
                dist = (pt.x() - pos.x()) ** 2 + (pt.y() - pos.y()) ** 2
                if dist < best:
                    best, where = dist, (layer, h)
        if where is not None and best <= 12 ** 2:
            self.picked.emit(*where)


class BarcodeWidget(QWidget):
    """A token vector as a strip of coloured bars (blue negative, red positive, symmetric in 0)."""

    def __init__(self, name: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setMinimumHeight(44)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._strip: Optional[QImage] = None
        self._text = ""

    def set_vector(self, vector: Optional[np.ndarray]) -> None:
        from studio.engines.probes.views import barcode

        if vector is None:
            self._strip, self._text = None, ""
        else:
            v = np.asarray(vector, np.float32)
            rgb = apply_colormap(barcode(v, "symmetric"), "coolwarm")[None, :, :]
            self._strip = array_to_pixmap(np.ascontiguousarray(rgb)).toImage()
            self._text = f"{v.size} dims, min {v.min():+.2f}, max {v.max():+.2f}, norm {np.linalg.norm(v):.2f}"
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(280, 44)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        if self._strip is not None:
            bar = QRectF(self.rect()).adjusted(2, 2, -2, -16)
            p.drawPixmap(bar, QPixmap.fromImage(self._strip), QRectF(self._strip.rect()))
            p.setPen(AXIS)
            font = QFont(p.font())
            font.setPointSizeF(7.5)
            p.setFont(font)
            p.drawText(QRectF(2, bar.bottom() + 1, self.width() - 4, 14), Qt.AlignmentFlag.AlignLeft, self._text)
        p.end()
