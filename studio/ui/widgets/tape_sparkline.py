"""The consistency sparkline under the tape: one value per transition (frame t -> t+1), aligned with
the timeline's frames and following its zoom and scroll. High = the content jumps (low SSIM or CLIP
cosine, high optical-flow warping error). A click jumps to the biggest spike near the pointer.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.state.tape_state import change_score

LINE, WARP, SPIKE = QColor(120, 220, 140), QColor(255, 170, 80), QColor(255, 80, 80)


class ConsistencySparkline(QWidget):
    jump = Signal(int)  # the frame after the chosen transition

    def __init__(self, state, timeline, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("tape.sparkline")
        self.state = state
        self.timeline = timeline
        self.setFixedHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setToolTip("Frame-to-frame change: run Check to fill it; click a spike to jump there")
        timeline.view_changed.connect(self.update)
        state.changed.connect(self._on_state)

    def _on_state(self, name: str, value) -> None:
        if name in ("similarity", "warp_error", "frames", "playhead"):
            self.update()

    def scores(self) -> np.ndarray | None:
        st = self.state
        if st.similarity is None or len(st.similarity) != max(0, st.count - 1):
            return None
        return change_score(st.similarity, st.warp_error)

    def transition_x(self, t: int) -> float:
        """Where transition t sits: on the boundary between frames t and t+1."""
        return self.timeline.frame_x(t + 1)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QColor(24, 24, 28))
        score = self.scores()
        if score is None or not len(score):
            p.setPen(QColor(120, 120, 130))
            p.drawText(QRectF(6, 0, w, h), Qt.AlignmentFlag.AlignVCenter, "Consistency: not checked")
            p.end()
            return
        top = max(float(score.max()), 1e-3)
        fw = self.timeline.frame_w
        n = len(score)
        first = max(0, int(self.timeline.offset // fw) - 1)
        last = min(n - 1, int((self.timeline.offset + w) // fw) + 1)
        # Thousands of transitions in a few hundred pixels: plot the maximum per pixel column.
        step = max(1, int(1.0 / fw))
        path = QPainterPath()
        started = False
        for t in range(first, last + 1, step):
            v = float(score[t:t + step].max())
            pt = QPointF(self.transition_x(t), h - 3 - (h - 6) * v / top)
            if started:
                path.lineTo(pt)
            else:
                path.moveTo(pt)
                started = True
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(LINE, 1.5))
        p.drawPath(path)
        spikes = set(self.state.spikes(3))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(SPIKE)
        for t in spikes:
            if first <= t <= last:
                p.drawEllipse(QPointF(self.transition_x(t), h - 3 - (h - 6) * float(score[t]) / top), 3, 3)
        p.setPen(QColor(150, 150, 160))
        metric = self.state.metric.replace("clip:", "CLIP ") + (" + flow" if self.state.warp_error is not None else "")
        p.drawText(QRectF(4, 0, w - 8, 12), Qt.AlignmentFlag.AlignRight, metric)
        p.end()

    def transition_near(self, x: float, radius: float = 10.0) -> int | None:
        score = self.scores()
        if score is None or not len(score):
            return None
        fw = self.timeline.frame_w
        centre = (x + self.timeline.offset) / fw - 1
        span = max(1, int(radius / fw) + 1)
        lo, hi = max(0, int(centre) - span), min(len(score) - 1, int(centre) + span)
        if lo > hi:
            return None
        return lo + int(np.argmax(score[lo:hi + 1]))

    def mousePressEvent(self, event) -> None:
        t = self.transition_near(event.position().x())
        if t is not None and event.button() == Qt.MouseButton.LeftButton:
            self.jump.emit(t + 1)

    def mouseMoveEvent(self, event) -> None:
        t = self.transition_near(event.position().x(), 4.0)
        st = self.state
        if t is None:
            return
        sim = float(st.similarity[t])
        warp = f", flow error {float(st.warp_error[t]):.3f}" if st.warp_error is not None else ""
        self.setToolTip(f"Frames {t + 1} → {t + 2}: similarity {sim:.3f}{warp}")
