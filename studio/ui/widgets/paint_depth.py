"""The depth painter: paint a depth map (white = near, black = far) or a scribble for a ControlNet.
Tools: a soft brush with a depth value, a linear gradient (drag from the near end to the far end),
and blur. The map has the output's size; every stroke, gradient or blur is one undo step."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.state.paint_state import blur, gradient, stroke
from studio.ui.convert import array_to_qimage
from studio.ui.widgets.paint_undo import DepthEdit

TOOLS = ("brush", "gradient")


class DepthPainter(QWidget):
    def __init__(self, session, undo, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("paint.depth_painter")
        self.session = session
        self.undo = undo
        self.tool = "brush"
        self.value = 255
        self.brush = 24
        self.hardness = 0.5
        self._work: np.ndarray | None = None
        self._before = None
        self._start: tuple[float, float] | None = None
        self._last: tuple[float, float] | None = None
        self._line: tuple[QPointF, QPointF] | None = None
        self.setMinimumSize(180, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Paint depth: white is near, black is far")
        session.paint.changed.connect(lambda name, v: self.update() if name in ("depth", "width", "height") else None)

    def sizeHint(self) -> QSize:
        return QSize(260, 260)

    def map_size(self) -> tuple[int, int]:
        st = self.session.paint
        img = self.session.app.image
        if st.mode != "txt2img" and img is not None:
            return img.width, img.height
        return max(8, st.width), max(8, st.height)

    def current(self) -> np.ndarray:
        """The depth map at the output size (a blank, far-away map when there is none yet)."""
        w, h = self.map_size()
        d = self.session.paint.depth
        if d is None:
            return np.zeros((h, w), np.uint8)
        if d.shape != (h, w):
            from PIL import Image

            return np.asarray(Image.fromarray(d).resize((w, h), Image.BILINEAR)).copy()
        return d

    def frame(self) -> QRectF:
        w, h = self.map_size()
        scale = min((self.width() - 8) / w, (self.height() - 8) / h)
        return QRectF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2, w * scale, h * scale)

    def to_map(self, pos: QPointF) -> tuple[float, float]:
        f = self.frame()
        w, h = self.map_size()
        return (pos.x() - f.left()) / f.width() * w, (pos.y() - f.top()) / f.height() * h

    # -- editing ---------------------------------------------------------------------------
    def edit(self, after: np.ndarray | None, text: str) -> None:
        st = self.session.paint
        before = st.depth
        st.depth = after
        self.undo.push(DepthEdit(st, before, after, text))

    def blur_map(self, radius: float = 6.0) -> None:
        self.edit(blur(self.current(), radius), "Blur depth")

    def clear(self) -> None:
        self.edit(None, "Clear depth")

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._before = self.session.paint.depth
        self._work = self.current().copy()
        p = self.to_map(event.position())
        self._start = self._last = p
        if self.tool == "brush":
            self._dab(p, p)
        else:
            self._line = (event.position(), event.position())

    def _dab(self, p0, p1) -> None:
        w, _ = self.map_size()
        radius = max(1.0, self.brush / 2.0 * w / max(self.frame().width(), 1.0))
        stroke(self._work, p0, p1, radius, self.hardness, self.value, "blend")
        self.update()

    def mouseMoveEvent(self, event) -> None:
        if self._work is None:
            return
        p = self.to_map(event.position())
        if self.tool == "brush":
            self._dab(self._last, p)
            self._last = p
        else:
            self._line = (self._line[0], event.position())
            self.update()

    def mouseReleaseEvent(self, event) -> None:
        if self._work is None:
            return
        if self.tool == "gradient":
            end = self.to_map(event.position())
            work = gradient(self._work.shape, self._start, end, self.value, 0)
            text = "Depth gradient"
        else:
            work, text = self._work, "Depth brush"
        self._work, self._line = None, None
        st = self.session.paint
        st.depth = work
        self.undo.push(DepthEdit(st, self._before, work, text))
        self._before = None

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 30, 34))
        f = self.frame()
        arr = self._work if self._work is not None else self.current()
        painter.drawImage(f, array_to_qimage(np.ascontiguousarray(arr)))
        painter.setPen(QColor(120, 120, 130))
        painter.drawRect(f)
        if self._line is not None:
            pen = QPen(QColor(255, 200, 0))
            pen.setWidthF(2.0)
            painter.setPen(pen)
            painter.drawLine(*self._line)
        if self.session.paint.depth is None and self._work is None:
            painter.setPen(QColor(170, 170, 180))
            painter.drawText(f, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "Paint depth here\n(white = near)")
        painter.end()
