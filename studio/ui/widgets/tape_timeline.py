"""The frame tape's timeline: a thumbnail per frame, the playhead, the in/out range, prompt and image
keyframes, scrubbing by click and drag, zoom (Ctrl+wheel) and scrolling.

Drawing is virtualised: a paint touches only the frames in view (at low zoom, one thumbnail every few
frames), and thumbnails are QPixmaps cached by frame id, so a re-rendered range re-makes only its own
and a 1000-frame tape scrubs as fast as a 10-frame one. `last_paint` counts what the last paint drew
(the tests and bench/tape.py read it).
"""
from __future__ import annotations

import math
from collections import OrderedDict

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.ui.convert import array_to_qimage

RULER_H, KEYS_H = 16, 12
MIN_FRAME_W, MAX_FRAME_W = 0.5, 400.0
CACHE_SIZE = 800  # thumbnails kept (a screen holds far fewer)
BG, RULER_BG = QColor(30, 30, 34), QColor(44, 44, 50)
RANGE_SHADE = QColor(0, 0, 0, 150)
RANGE_EDGE = QColor(255, 200, 60)
PLAYHEAD = QColor(255, 70, 70)
KEY_COLOUR, IMAGE_KEY_COLOUR = QColor(255, 210, 80), QColor(120, 220, 255)


class TapeTimeline(QWidget):
    scrubbed = Signal(int)  # the user moved the playhead to this frame
    range_selected = Signal(int, int)  # shift-drag: in, out
    play_toggled = Signal()
    view_changed = Signal()  # zoom or scroll changed (the scroll bar and the sparkline follow)

    def __init__(self, state, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("tape.timeline")
        self.state = state
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumHeight(84)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(96)
        self.setMouseTracking(True)
        self.setToolTip("Click or drag to scrub; Shift+drag selects a range; I / O set In and Out; Space "
                        "plays; Ctrl+wheel zooms")
        self.zoom = 1.0  # 1 = frames as wide as their thumbnails
        self.offset = 0.0  # scrolled pixels
        self._cache: "OrderedDict[tuple[int, int], QPixmap]" = OrderedDict()
        self._drag_from: int | None = None
        self.last_paint = {"pixmaps": 0, "made": 0, "first": 0, "last": -1}
        state.changed.connect(self._on_state)

    # -- geometry --------------------------------------------------------------------------
    @property
    def thumb_h(self) -> int:
        return max(8, self.height() - RULER_H - KEYS_H - 4)

    @property
    def thumb_w(self) -> float:
        size = self.state.size
        aspect = size[0] / size[1] if size else 1.0
        return max(8.0, self.thumb_h * aspect)

    @property
    def frame_w(self) -> float:
        return max(MIN_FRAME_W, min(MAX_FRAME_W, self.thumb_w * self.zoom))

    def content_width(self) -> float:
        return self.state.count * self.frame_w

    def max_offset(self) -> float:
        return max(0.0, self.content_width() - self.width())

    def frame_x(self, index: float) -> float:
        """Left edge of frame `index` in widget pixels."""
        return index * self.frame_w - self.offset

    def frame_at(self, x: float) -> int:
        n = self.state.count
        return max(0, min(n - 1, int((x + self.offset) // self.frame_w))) if n else 0

    def set_offset(self, value: float) -> None:
        value = max(0.0, min(self.max_offset(), float(value)))
        if value != self.offset:
            self.offset = value
            self.update()
            self.view_changed.emit()

    def set_zoom(self, zoom: float, anchor_x: float | None = None) -> None:
        """Zoom keeping the frame under `anchor_x` (default: the playhead) in place."""
        anchor_x = self.frame_x(self.state.playhead) if anchor_x is None else anchor_x
        at = (anchor_x + self.offset) / self.frame_w
        lo = MIN_FRAME_W / self.thumb_w
        self.zoom = max(lo, min(MAX_FRAME_W / self.thumb_w, float(zoom)))
        self.offset = max(0.0, min(self.max_offset(), at * self.frame_w - anchor_x))
        self.update()
        self.view_changed.emit()

    def fit(self) -> None:
        """The whole clip in view (at most thumbnail-sized frames)."""
        n = self.state.count
        if n:
            self.zoom = min(1.0, max(MIN_FRAME_W / self.thumb_w, self.width() / (n * self.thumb_w)))
        self.offset = 0.0
        self.update()
        self.view_changed.emit()

    def ensure_visible(self, index: int) -> None:
        x = self.frame_x(index)
        if x < 0:
            self.set_offset(self.offset + x)
        elif x + self.frame_w > self.width():
            self.set_offset(self.offset + x + self.frame_w - self.width())

    # -- state -----------------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        if name == "frames":
            live = set(self.state.frame_ids)
            for key in [k for k in self._cache if k[0] not in live]:
                del self._cache[key]
            if self.offset > self.max_offset():
                self.offset = self.max_offset()
            self.view_changed.emit()
            self.update()
        elif name == "playhead":
            self.ensure_visible(int(value))
            self.update()
        elif name in ("in_point", "out_point", "keys", "first_image", "last_image", "num_frames"):
            self.update()

    def thumbnail(self, index: int) -> QPixmap:
        fid = self.state.frame_ids[index]
        key = (fid, self.thumb_h)
        pix = self._cache.get(key)
        if pix is None:
            img = array_to_qimage(self.state.frames[index])
            pix = QPixmap.fromImage(img.scaled(max(1, round(self.thumb_w)), self.thumb_h,
                                               Qt.AspectRatioMode.IgnoreAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))
            self._cache[key] = pix
            self.last_paint["made"] += 1
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return pix

    def cached(self) -> int:
        return len(self._cache)

    # -- painting --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, BG)
        p.fillRect(0, 0, w, RULER_H, RULER_BG)
        st = self.state
        n = st.count
        self.last_paint = {"pixmaps": 0, "made": 0, "first": 0, "last": -1}
        if not n:
            p.setPen(QColor(170, 170, 180))
            p.drawText(QRectF(0, RULER_H, w, h - RULER_H), Qt.AlignmentFlag.AlignCenter,
                       "No clip yet: type a prompt and press Generate, or import a video (Files tab)")
            p.end()
            return
        fw = self.frame_w
        first = max(0, int(self.offset // fw))
        last = min(n - 1, int(math.ceil((self.offset + w) / fw)) - 1)  # the frame cut by the right edge
        self.last_paint["first"], self.last_paint["last"] = first, last
        top = RULER_H + KEYS_H + 2
        # At low zoom several frames share one thumbnail's width: draw every `every`-th frame's.
        every = max(1, int(math.ceil(self.thumb_w / fw)))
        tw = min(self.thumb_w, fw * every)
        for i in range((first // every) * every, last + 1, every):
            pix = self.thumbnail(i)
            p.drawPixmap(QRectF(self.frame_x(i), top, tw - (1 if fw >= 6 else 0), self.thumb_h), pix,
                         QRectF(0, 0, min(pix.width(), tw), pix.height()))
            self.last_paint["pixmaps"] += 1
        self._ruler(p, first, last, fw)
        self._range(p, top)
        self._keys(p)
        x = self.frame_x(st.playhead)
        p.setPen(QPen(PLAYHEAD, 2))
        p.drawLine(QPointF(x, 0), QPointF(x, h))
        if fw >= 4:
            p.drawLine(QPointF(x + fw, RULER_H), QPointF(x + fw, h))
        p.setBrush(PLAYHEAD)
        p.drawPolygon(QPolygonF([QPointF(x - 5, 0), QPointF(x + 5, 0), QPointF(x, 8)]))
        if self.hasFocus():
            p.setPen(QPen(QColor(90, 140, 255), 1))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(0, 0, w - 1, h - 1)
        p.end()

    def _ruler(self, p: QPainter, first: int, last: int, fw: float) -> None:
        fps = max(1.0, float(self.state.fps))
        # Label every k frames, k a round number that leaves >= 60 px between labels.
        k = 1
        for k in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
            if k * fw >= 60:
                break
        p.setFont(QFont(p.font().family(), 7))
        p.setPen(QColor(160, 160, 170))
        for i in range((first // k) * k, last + 1, k):
            x = self.frame_x(i)
            p.drawLine(QPointF(x, RULER_H - 5), QPointF(x, RULER_H))
            p.drawText(QPointF(x + 2, RULER_H - 5), f"{i + 1}" + (f" · {i / fps:.1f}s" if k * fw >= 90 else ""))

    def _range(self, p: QPainter, top: float) -> None:
        st = self.state
        if not st.has_range():
            return
        lo, hi = st.range()
        x0, x1 = self.frame_x(lo), self.frame_x(hi + 1)
        p.fillRect(QRectF(-1, top, max(0.0, x0 + 1), self.thumb_h), RANGE_SHADE)
        p.fillRect(QRectF(x1, top, max(0.0, self.width() - x1 + 1), self.thumb_h), RANGE_SHADE)
        p.setPen(QPen(RANGE_EDGE, 2))
        p.drawLine(QPointF(x0, RULER_H), QPointF(x0, self.height()))
        p.drawLine(QPointF(x1, RULER_H), QPointF(x1, self.height()))
        p.fillRect(QRectF(x0, RULER_H, x1 - x0, 3), RANGE_EDGE)

    def _keys(self, p: QPainter) -> None:
        st = self.state
        y = RULER_H + KEYS_H / 2 + 1
        p.setPen(QPen(QColor(20, 20, 20), 1))
        p.setBrush(KEY_COLOUR)
        for k in st.keys:
            x = self.frame_x(k.frame) + min(self.frame_w, 12) / 2
            if -8 <= x <= self.width() + 8:
                p.drawPolygon(QPolygonF([QPointF(x, y - 5), QPointF(x + 5, y), QPointF(x, y + 5), QPointF(x - 5, y)]))
        p.setBrush(IMAGE_KEY_COLOUR)
        if st.first_image is not None:
            p.drawRect(QRectF(self.frame_x(0) + 1, y - 4, 8, 8))
        if st.last_image is not None:
            p.drawRect(QRectF(self.frame_x(max(st.count, st.num_frames) - 1) + 1, y - 4, 8, 8))

    # -- input -----------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self.state.count:
            return super().mousePressEvent(event)
        self.setFocus()
        i = self.frame_at(event.position().x())
        self._drag_from = i
        if not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.scrubbed.emit(i)

    def mouseMoveEvent(self, event) -> None:
        if self._drag_from is None or not event.buttons() & Qt.MouseButton.LeftButton:
            i = self.frame_at(event.position().x()) if self.state.count else -1
            if i >= 0:
                self.setToolTip(f"Frame {i + 1} · {self.state.prompt_at(i)[:60]}")
            return
        i = self.frame_at(event.position().x())
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.range_selected.emit(min(self._drag_from, i), max(self._drag_from, i))
        else:
            self.scrubbed.emit(i)

    def mouseReleaseEvent(self, event) -> None:
        self._drag_from = None

    def wheelEvent(self, event) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if not delta:
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom * 1.25 ** (delta / 120.0), event.position().x())
        else:
            self.set_offset(self.offset - delta / 120.0 * self.frame_w * 3)
        event.accept()

    def keyPressEvent(self, event) -> None:
        key, st = event.key(), self.state
        if key == Qt.Key.Key_I:
            st.set_in()
        elif key == Qt.Key.Key_O:
            st.set_out()
        elif key == Qt.Key.Key_Space:
            self.play_toggled.emit()
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.scrubbed.emit(max(0, st.playhead + (1 if key == Qt.Key.Key_Right else -1)))
        elif key == Qt.Key.Key_Home:
            self.scrubbed.emit(0)
        elif key == Qt.Key.Key_End:
            self.scrubbed.emit(max(0, st.count - 1))
        elif key == Qt.Key.Key_Escape and st.has_range():
            st.clear_range()
        else:
            return super().keyPressEvent(event)
        event.accept()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.offset = min(self.offset, self.max_offset())
        self.view_changed.emit()


def render_offscreen(widget: QWidget) -> QImage:
    """Paint `widget` into an image (what a screen refresh does), for tests and the benchmark."""
    img = QImage(widget.size(), QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(0)
    widget.render(img)
    return img
