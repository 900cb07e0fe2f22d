"""A ranked bar chart of label scores, painted with QPainter (no plotting library).

Rows are (label, score); the top row is highlighted, and when the verdict is "none of these" a dashed
threshold line shows how far the best score fell short. Clicking a bar emits `label_clicked(label)`.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

ROW_H = 20
MAX_ROWS = 25


class LabelBars(QWidget):
    label_clicked = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("label.results")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.setMouseTracking(True)
        self._rows: list[tuple[str, float]] = []
        self._more = 0
        self._mode = "softmax"
        self._threshold = 0.0
        self._none = False
        self._hover = -1
        self._empty = "Open an image and type labels, one per line."

    # -- data -----------------------------------------------------------------------------
    def set_rows(self, ranked, mode: str, threshold: float = 0.0, none: bool = False) -> None:
        ranked = list(ranked)
        self._rows = ranked[:MAX_ROWS]
        self._more = max(0, len(ranked) - MAX_ROWS)
        self._mode, self._threshold, self._none = mode, float(threshold), bool(none)
        self.updateGeometry()
        self.update()

    def set_empty_text(self, text: str) -> None:
        self._empty = text
        self.update()

    def rows(self) -> list[tuple[str, float]]:
        return list(self._rows)

    # -- geometry -------------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        n = len(self._rows) + (1 if self._more else 0) + (1 if self._none else 0)
        return QSize(280, max(3, n) * ROW_H + 8)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def _row_at(self, y: float) -> int:
        i = int((y - 4 - (ROW_H if self._none else 0)) // ROW_H)
        return i if 0 <= i < len(self._rows) else -1

    def mouseMoveEvent(self, event) -> None:
        i = self._row_at(event.position().y())
        if i != self._hover:
            self._hover = i
            self.setCursor(Qt.CursorShape.PointingHandCursor if i >= 0 else Qt.CursorShape.ArrowCursor)
            self.update()

    def leaveEvent(self, event) -> None:
        self._hover = -1
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        i = self._row_at(event.position().y())
        if i >= 0 and event.button() == Qt.MouseButton.LeftButton:
            self.label_clicked.emit(self._rows[i][0])

    # -- painting -------------------------------------------------------------------------
    def _fraction(self, score: float, top: float) -> float:
        if self._mode == "cosine":
            # Cosines of real CLIP sit near 0.2-0.35: scale to the best one so differences show.
            return max(0.0, score) / top if top > 1e-9 else 0.0
        return max(0.0, min(1.0, score))

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fm = QFontMetrics(self.font())
        w = self.width()
        if not self._rows:
            p.setPen(pal.color(pal.ColorRole.PlaceholderText))
            p.drawText(self.rect().adjusted(6, 6, -6, -6),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                       self._empty)
            p.end()
            return
        label_w = min(max(fm.horizontalAdvance(lab) for lab, _ in self._rows) + 12, int(w * 0.45))
        value_w = fm.horizontalAdvance("0.0000") + 10
        bar_x, bar_w = label_w, max(20, w - label_w - value_w - 4)
        y = 4
        if self._none:
            p.setPen(QColor(224, 160, 32))
            p.drawText(QRectF(4, y, w - 8, ROW_H), Qt.AlignmentFlag.AlignVCenter,
                       f"None of these: the best score is under {self._threshold:.2f}")
            y += ROW_H
        top = max((s for _, s in self._rows), default=0.0)
        for i, (label, score) in enumerate(self._rows):
            r = QRectF(0, y, w, ROW_H)
            if i == self._hover:
                p.fillRect(r, pal.color(pal.ColorRole.AlternateBase))
            p.setPen(pal.color(pal.ColorRole.Text))
            text = fm.elidedText(label, Qt.TextElideMode.ElideRight, label_w - 8)
            p.drawText(QRectF(4, y, label_w - 8, ROW_H), Qt.AlignmentFlag.AlignVCenter, text)
            frac = self._fraction(score, top)
            colour = QColor(64, 156, 255) if i == 0 and not self._none else QColor(120, 150, 190)
            p.fillRect(QRectF(bar_x, y + 4, max(1.0, bar_w * frac), ROW_H - 8), colour)
            p.drawText(QRectF(bar_x + bar_w + 4, y, value_w, ROW_H), Qt.AlignmentFlag.AlignVCenter,
                       f"{score:.4f}" if self._mode == "cosine" else f"{score:.3f}")
            y += ROW_H
        if self._threshold > 0 and self._mode != "cosine":
            pen = QPen(QColor(224, 160, 32), 1, Qt.PenStyle.DashLine)
            p.setPen(pen)
            x = bar_x + bar_w * min(1.0, self._threshold)
            p.drawLine(int(x), 4, int(x), y)
        if self._more:
            p.setPen(pal.color(pal.ColorRole.PlaceholderText))
            p.drawText(QRectF(4, y, w - 8, ROW_H), Qt.AlignmentFlag.AlignVCenter,
                       f"… and {self._more} more labels")
        p.end()
