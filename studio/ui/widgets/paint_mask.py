"""The inpainting mask: a brush on the main canvas (an event filter on its viewport, so canvas.py stays
untouched) and the Mask tab (paint/erase, size, hardness, feather, invert, clear, mask from a word).

While the mask tool is on, left-drag paints (right-drag erases) and the canvas stops panning; the
wheel still zooms. The stroke is drawn into a working copy and shown as a red overlay; on release it
becomes the state's mask as one undoable step.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QGraphicsView, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSlider, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from studio.state.paint_state import blur, invert, stroke
from studio.ui.widgets.paint_undo import MaskEdit

MASK_RGB = (255, 48, 48)
OVERLAY_OPACITY = 0.5


def mask_overlay(mask: np.ndarray) -> np.ndarray:
    rgba = np.zeros(mask.shape + (4,), np.uint8)
    rgba[..., :3] = MASK_RGB
    rgba[..., 3] = mask
    return rgba


class MaskPainter(QObject):
    """Paints the state's mask with the mouse on `canvas` (the main window's ImageCanvas)."""

    def __init__(self, session, canvas, undo, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.canvas = canvas
        self.undo = undo
        self._work: np.ndarray | None = None
        self._before = None
        self._last: tuple[float, float] | None = None
        self._erasing = False
        self._overlay_shown = False
        canvas.viewport().installEventFilter(self)

    # -- on/off ----------------------------------------------------------------------------
    def active(self) -> bool:
        s = self.session
        return bool(s.paint.mask_tool and s.app.workspace == "paint" and s.app.image is not None)

    def update_mode(self) -> None:
        painting = self.active()
        self.canvas.setDragMode(QGraphicsView.DragMode.NoDrag if painting
                                else QGraphicsView.DragMode.ScrollHandDrag)
        self.canvas.viewport().setCursor(Qt.CursorShape.CrossCursor if painting else Qt.CursorShape.OpenHandCursor)
        self.show_overlay()

    def show_overlay(self, mask: np.ndarray | None = None) -> None:
        s = self.session
        img = s.app.image
        mask = mask if mask is not None else s.paint.mask
        visible = s.app.workspace == "paint" and img is not None and mask is not None \
            and mask.shape == (img.height, img.width)
        if visible:
            self.canvas.set_overlay(mask_overlay(mask), OVERLAY_OPACITY, smooth=False)
            self._overlay_shown = True
        elif self._overlay_shown:
            self.canvas.set_overlay(None)
            self._overlay_shown = False

    # -- painting --------------------------------------------------------------------------
    def _image_point(self, event) -> tuple[float, float]:
        p = self.canvas.mapToScene(event.position().toPoint())
        return float(p.x()), float(p.y())

    def _dab(self, p0, p1) -> None:
        st = self.session.paint
        radius = max(1.0, st.brush_size / 2.0)
        if self._erasing:
            stroke(self._work, p0, p1, radius, st.brush_hardness, 0, "min")
        else:
            stroke(self._work, p0, p1, radius, st.brush_hardness, 255, "max")
        self.show_overlay(self._work)

    def eventFilter(self, obj, event) -> bool:
        et = event.type()
        if et not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease):
            return False
        if not self.active():
            return False
        if et == QEvent.Type.MouseButtonPress and event.button() in (Qt.MouseButton.LeftButton,
                                                                      Qt.MouseButton.RightButton):
            img = self.session.app.image
            mask = self.session.paint.mask
            self._before = mask.copy() if mask is not None and mask.shape == (img.height, img.width) else None
            self._work = self._before.copy() if self._before is not None else np.zeros((img.height, img.width),
                                                                                          np.uint8)
            self._erasing = event.button() == Qt.MouseButton.RightButton or self.session.paint.erase
            self._last = self._image_point(event)
            self._dab(self._last, self._last)
            return True
        if et == QEvent.Type.MouseMove and self._work is not None:
            p = self._image_point(event)
            self._dab(self._last, p)
            self._last = p
            return True
        if et == QEvent.Type.MouseButtonRelease and self._work is not None:
            self.finish_stroke()
            return True
        return False

    def finish_stroke(self) -> None:
        work, before = self._work, self._before
        self._work = self._before = self._last = None
        if work is None:
            return
        after = work if work.any() else None
        text = "Erase mask" if self._erasing else "Mask stroke"
        self.session.paint.mask = after
        self.undo.push(MaskEdit(self.session.paint, before, after, text))

    def set_mask(self, mask: np.ndarray | None, text: str) -> None:
        """Replace the whole mask as one undoable step (invert, clear, feather, from a word)."""
        st = self.session.paint
        before = st.mask
        st.mask = mask
        self.undo.push(MaskEdit(st, before, mask, text))


class MaskTab(QWidget):
    def __init__(self, session, painter: MaskPainter, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("paint.mask_tab")
        self.session = session
        self.painter = painter
        st = session.paint
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.tool = QToolButton(self)
        self.tool.setObjectName("paint.mask_tool")
        self.tool.setText("Paint mask")
        self.tool.setCheckable(True)
        self.tool.setToolTip("Paint the area to repaint on the canvas (left drag; right drag erases)")
        self.erase = QCheckBox("Erase", self)
        self.erase.setObjectName("paint.mask_erase")
        row.addWidget(self.tool)
        row.addWidget(self.erase)
        row.addStretch(1)
        lay.addLayout(row)
        form = QFormLayout()
        self.size = QSpinBox(self)
        self.size.setObjectName("paint.brush_size")
        self.size.setRange(1, 512)
        self.size.setSuffix(" px")
        self.hardness = QSlider(Qt.Orientation.Horizontal, self)
        self.hardness.setObjectName("paint.brush_hardness")
        self.hardness.setRange(0, 100)
        self.hardness.setToolTip("Hardness: 100 = a sharp edge, 0 = soft all the way")
        feather_row = QHBoxLayout()
        self.feather = QSpinBox(self)
        self.feather.setObjectName("paint.feather")
        self.feather.setRange(1, 64)
        self.feather.setValue(4)
        self.feather.setSuffix(" px")
        self.feather_apply = QPushButton("Feather", self)
        self.feather_apply.setObjectName("paint.feather_apply")
        self.feather_apply.setToolTip("Soften the whole mask's edge by this many pixels")
        feather_row.addWidget(self.feather)
        feather_row.addWidget(self.feather_apply)
        form.addRow("Brush size", self.size)
        form.addRow("Hardness", self.hardness)
        form.addRow("Edge", feather_row)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.invert = QPushButton("Invert", self)
        self.invert.setObjectName("paint.mask_invert")
        self.clear = QPushButton("Clear", self)
        self.clear.setObjectName("paint.mask_clear")
        row.addWidget(self.invert)
        row.addWidget(self.clear)
        lay.addLayout(row)
        row = QHBoxLayout()
        self.word = QLineEdit(self)
        self.word.setObjectName("paint.mask_word")
        self.word.setPlaceholderText("a word, e.g. “sky”")
        self.from_word = QPushButton("Mask from word", self)
        self.from_word.setObjectName("paint.mask_from_word")
        row.addWidget(self.word, 1)
        row.addWidget(self.from_word)
        lay.addLayout(row)
        self.info = QLabel("", self)
        self.info.setObjectName("paint.mask_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        lay.addStretch(1)

        self.size.setValue(st.brush_size)
        self.hardness.setValue(int(round(st.brush_hardness * 100)))
        self.tool.toggled.connect(lambda on: setattr(st, "mask_tool", bool(on)))
        self.erase.toggled.connect(lambda on: setattr(st, "erase", bool(on)))
        self.size.valueChanged.connect(lambda v: setattr(st, "brush_size", int(v)))
        self.hardness.valueChanged.connect(lambda v: setattr(st, "brush_hardness", v / 100.0))
        self.feather_apply.clicked.connect(self.apply_feather)
        self.invert.clicked.connect(self.invert_mask)
        self.clear.clicked.connect(lambda: self.painter.set_mask(None, "Clear mask"))
        self.word.returnPressed.connect(self.from_word.click)
        st.changed.connect(self._on_state)
        self._update_info()

    def _current(self) -> np.ndarray | None:
        img, mask = self.session.app.image, self.session.paint.mask
        if img is None:
            self.session.app.report_error("Open or generate an image first: the mask covers an image.")
            return None
        if mask is None or mask.shape != (img.height, img.width):
            return np.zeros((img.height, img.width), np.uint8)
        return mask

    def invert_mask(self) -> None:
        mask = self._current()
        if mask is not None:
            self.painter.set_mask(invert(mask), "Invert mask")

    def apply_feather(self) -> None:
        mask = self._current()
        if mask is not None and mask.any():
            self.painter.set_mask(blur(mask, self.feather.value()), "Feather mask")

    def _on_state(self, name: str, value) -> None:
        if name == "mask_tool":
            self.tool.setChecked(bool(value))
            self.painter.update_mode()
        elif name == "erase":
            self.erase.setChecked(bool(value))
        elif name == "brush_size":
            self.size.setValue(int(value))
        elif name == "mask":
            self.painter.show_overlay()
            self._update_info()

    def _update_info(self) -> None:
        mask = self.session.paint.mask
        if mask is None or not mask.any():
            self.info.setText("No mask. Turn on “Paint mask” and paint over the part to repaint, then choose "
                              "the Inpaint mode.")
        else:
            self.info.setText(f"Mask: {(mask > 127).mean() * 100:.0f}% of the image.")


def canvas_point(canvas, x: float, y: float):
    """Viewport coordinates of image pixel (x, y) (for tests and scripted strokes)."""
    return canvas.mapFromScene(QPointF(x, y))
