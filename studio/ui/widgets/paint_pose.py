"""The pose editor: OpenPose 18-point skeletons drawn exactly as the ControlNet will see them (the
state's render_pose, in the standard OpenPose colours), with handles to drag every keypoint. Click a
person to select it; add, remove and mirror people from the buttons. Every drag is one undo step."""
from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.core.paint_requests import KEYPOINT_NAMES, mirror_person, render_pose, standing_person
from studio.ui.convert import array_to_qimage
from studio.ui.widgets.paint_undo import PoseEdit

HANDLE = 5.0  # handle radius, widget pixels
GRAB = 10.0  # how close a press must be to grab a keypoint


class PoseEditor(QWidget):
    selection_changed = Signal(int)

    def __init__(self, session, undo, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("paint.pose_editor")
        self.session = session
        self.undo = undo
        self.selected = 0 if session.paint.people else -1
        self._drag: tuple[int, int] | None = None
        self._before = None
        self._cache = None
        self.setMinimumSize(180, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setToolTip("Drag the joints; click a person to select it")
        session.paint.changed.connect(self._on_state)

    def sizeHint(self) -> QSize:
        return QSize(260, 260)

    # -- geometry --------------------------------------------------------------------------
    def aspect(self) -> tuple[int, int]:
        st = self.session.paint
        img = self.session.app.image
        if st.mode != "txt2img" and img is not None:
            return img.width, img.height
        return max(8, st.width), max(8, st.height)

    def frame(self) -> QRectF:
        """Where the control image is drawn inside the widget (kept to the output's aspect ratio)."""
        w, h = self.aspect()
        scale = min((self.width() - 8) / w, (self.height() - 8) / h)
        fw, fh = w * scale, h * scale
        return QRectF((self.width() - fw) / 2, (self.height() - fh) / 2, fw, fh)

    def to_widget(self, p) -> QPointF:
        f = self.frame()
        return QPointF(f.left() + p[0] * f.width(), f.top() + p[1] * f.height())

    def to_norm(self, pos: QPointF) -> tuple[float, float]:
        f = self.frame()
        x = (pos.x() - f.left()) / max(f.width(), 1.0)
        y = (pos.y() - f.top()) / max(f.height(), 1.0)
        return min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)

    def hit(self, pos: QPointF) -> tuple[int, int] | None:
        """(person, keypoint) under `pos`, the selected person first."""
        people = self.session.paint.people
        order = ([self.selected] if 0 <= self.selected < len(people) else []) + \
            [i for i in range(len(people)) if i != self.selected]
        best, best_d = None, GRAB
        for pi in order:
            for ki, p in enumerate(people[pi]):
                if p is None:
                    continue
                q = self.to_widget(p)
                d = math.hypot(q.x() - pos.x(), q.y() - pos.y())
                if d < best_d:
                    best, best_d = (pi, ki), d
        return best

    # -- editing ---------------------------------------------------------------------------
    def _edit(self, people: tuple, text: str) -> None:
        st = self.session.paint
        before = st.people
        st.people = people
        self.undo.push(PoseEdit(st, before, people, text))

    def add_person(self) -> None:
        people = self.session.paint.people
        n = len(people)
        cx = 0.5 if n == 0 else 0.2 + (0.6 * ((n * 0.37) % 1.0))
        self._edit((*people, standing_person(cx, 0.9)), "Add person")
        self.select(len(self.session.paint.people) - 1)

    def remove_person(self) -> None:
        people = self.session.paint.people
        if not 0 <= self.selected < len(people):
            self.session.app.message = "Select a person first: click on them."
            return
        self._edit(tuple(p for i, p in enumerate(people) if i != self.selected), "Remove person")
        self.select(min(self.selected, len(self.session.paint.people) - 1))

    def mirror_person(self) -> None:
        people = list(self.session.paint.people)
        if not 0 <= self.selected < len(people):
            self.session.app.message = "Select a person first: click on them."
            return
        people[self.selected] = mirror_person(people[self.selected])
        self._edit(tuple(people), "Mirror person")

    def set_people(self, people: tuple, text: str = "Detected pose") -> None:
        self._edit(tuple(people), text)
        self.select(0 if people else -1)

    def select(self, index: int) -> None:
        self.selected = index
        self.selection_changed.emit(index)
        self.update()

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.position()
        hit = self.hit(pos)
        if hit is not None:
            self._drag = hit
            self._before = self.session.paint.people
            self.select(hit[0])
        else:
            self.select(self._nearest_person(pos))

    def _nearest_person(self, pos: QPointF) -> int:
        best, best_d = -1, 60.0
        for pi, person in enumerate(self.session.paint.people):
            for p in person:
                if p is not None:
                    q = self.to_widget(p)
                    d = math.hypot(q.x() - pos.x(), q.y() - pos.y())
                    if d < best_d:
                        best, best_d = pi, d
        return best

    def mouseMoveEvent(self, event) -> None:
        if self._drag is None:
            hit = self.hit(event.position())
            self.setCursor(Qt.CursorShape.SizeAllCursor if hit else Qt.CursorShape.ArrowCursor)
            if hit:
                self.setToolTip(KEYPOINT_NAMES[hit[1]])
            return
        pi, ki = self._drag
        people = [list(p) for p in self.session.paint.people]
        people[pi][ki] = self.to_norm(event.position())
        self.session.paint.people = tuple(tuple(p) for p in people)

    def mouseReleaseEvent(self, event) -> None:
        if self._drag is None:
            return
        pi, ki = self._drag
        self._drag = None
        after = self.session.paint.people
        if after != self._before:
            self.undo.push(PoseEdit(self.session.paint, self._before, after, f"Move {KEYPOINT_NAMES[ki]}"))
        self._before = None

    # -- drawing ---------------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        if name in ("people", "width", "height", "mode"):
            self._cache = None
            if self.selected >= len(self.session.paint.people):
                self.selected = len(self.session.paint.people) - 1
            self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 30, 34))
        f = self.frame()
        w, h = self.aspect()
        people = self.session.paint.people
        # Render at the frame's pixel size: the same drawing the ControlNet gets, at screen scale.
        size = (max(8, int(f.width())), max(8, int(f.height())))
        if self._cache is None or self._cache[0] != size:
            self._cache = (size, array_to_qimage(render_pose(people, *size)))
        painter.drawImage(f.topLeft(), self._cache[1])
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for pi, person in enumerate(people):
            sel = pi == self.selected
            pen = QPen(QColor(255, 255, 255) if sel else QColor(150, 150, 150))
            pen.setWidthF(1.5 if sel else 1.0)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for p in person:
                if p is not None:
                    painter.drawEllipse(self.to_widget(p), HANDLE, HANDLE)
        painter.setPen(QColor(120, 120, 130))
        painter.drawRect(f)
        painter.drawText(self.rect().adjusted(4, 2, -4, -2), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft,
                         f"{len(people)} person(s), {w}×{h}")
        painter.end()
