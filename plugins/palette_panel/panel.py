"""The Palette dock: swatches of the current image's dominant colours with hex codes and copy.

The palette is computed by this plugin's engine on the CPU pool (host.submit), so a large image
never stalls the window; a newer image or colour count replaces the pending job (key "palette").
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from studio.plugins import api

from .palette import PaletteRequest, hex_code


class PaletteStrip(QWidget):
    """One bar, each colour as wide as its share of the image."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("palette.strip")
        self.setMinimumHeight(28)
        self.colours: list = []

    def set_colours(self, colours) -> None:
        self.colours = list(colours)
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        x, w = 0.0, float(self.width())
        for rgb, share in self.colours:
            p.fillRect(int(x), 0, int(round(x + share * w)) - int(x), self.height(), QColor(*rgb))
            x += share * w
        p.end()


class PalettePanel(QWidget):
    def __init__(self, host: api.Host, parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self.setObjectName("palette.panel")
        self.colours: list = []
        self.count = QSpinBox(self)
        self.count.setObjectName("palette.count")
        self.count.setRange(2, 16)
        self.count.setValue(6)
        self.count.setToolTip("How many colours to find")
        self.count.valueChanged.connect(lambda _v: self.refresh())
        self.strip = PaletteStrip(self)
        self.swatches = QListWidget(self)
        self.swatches.setObjectName("palette.swatches")
        # A grid of chips, like a painter's palette, rather than a long list.
        self.swatches.setViewMode(QListWidget.ViewMode.IconMode)
        self.swatches.setMovement(QListWidget.Movement.Static)
        self.swatches.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.swatches.setWrapping(True)
        self.swatches.setIconSize(QSize(56, 32))
        self.swatches.setGridSize(QSize(76, 68))
        self.swatches.setMinimumHeight(142)
        self.swatches.setToolTip("Click a colour to copy its hex code")
        self.swatches.itemClicked.connect(self._copy_one)
        self.copy = QPushButton("Copy hex codes", self)
        self.copy.setObjectName("palette.copy")
        self.copy.clicked.connect(self.copy_all)
        self.info = QLabel("Open an image to see its palette.", self)
        self.info.setObjectName("palette.info")
        self.info.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(QLabel("Colours", self))
        row.addWidget(self.count)
        row.addStretch(1)
        row.addWidget(self.copy)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.strip)
        lay.addWidget(self.swatches, 1)
        lay.addWidget(self.info)

        stop = host.on_image(lambda _img: self.refresh())
        self.destroyed.connect(lambda *_: stop())
        self.refresh()

    def refresh(self) -> None:
        image = self.host.image
        if image is None:
            self._show([], "Open an image to see its palette.")
            return
        self.info.setText("Finding colours…")
        self.host.submit(PaletteRequest(image, self.count.value()), key="palette", title="Palette",
                         on_result=self._on_result)

    def _on_result(self, result) -> None:
        w, h = result.size
        self._show(result.colours, f"{len(result.colours)} colours of the {w}×{h} image. "
                                   "Click one to copy its code.")

    def _show(self, colours, text: str) -> None:
        self.colours = list(colours)
        self.strip.set_colours(self.colours)
        self.swatches.clear()
        for rgb, share in self.colours:
            pix = QPixmap(56, 32)
            pix.fill(QColor(*rgb))
            item = QListWidgetItem(QIcon(pix), f"{hex_code(rgb)}\n{share * 100:.1f} %")
            item.setToolTip(f"{hex_code(rgb)}: {share * 100:.1f} % of the image (click to copy)")
            item.setData(Qt.ItemDataRole.UserRole, hex_code(rgb))
            self.swatches.addItem(item)
        self.copy.setEnabled(bool(self.colours))
        self.info.setText(text)

    def hex_codes(self) -> list[str]:
        return [hex_code(rgb) for rgb, _ in self.colours]

    def copy_all(self) -> None:
        self.host.copy_text("\n".join(self.hex_codes()))
        self.host.message(f"Copied {len(self.colours)} hex codes")

    def _copy_one(self, item: QListWidgetItem) -> None:
        code = item.data(Qt.ItemDataRole.UserRole)
        self.host.copy_text(code)
        self.host.message(f"Copied {code}")
