"""A non-modal error banner above the canvas: one sentence, Details… for the technical text."""
from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton


class ErrorBanner(QFrame):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("error.banner")
        self.setStyleSheet(
            "#error\\.banner { background: #5a1f1f; border: 1px solid #a33; border-radius: 4px; }"
            "#error\\.banner QLabel { color: #fff; }"
        )
        self._detail = ""
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel(self)
        self.label.setObjectName("error.message")
        self.label.setWordWrap(True)
        self.details_button = QPushButton("Details…", self)
        self.details_button.setObjectName("error.details")
        self.details_button.clicked.connect(self.show_details)
        self.dismiss_button = QPushButton("Dismiss", self)
        self.dismiss_button.setObjectName("error.dismiss")
        self.dismiss_button.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.details_button)
        lay.addWidget(self.dismiss_button)
        self.hide()

    def show_error(self, message: str, detail: str = "") -> None:
        self.label.setText(message)
        self._detail = detail
        self.details_button.setVisible(bool(detail))
        self.show()

    def show_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Error details", self.label.text(),
                          QMessageBox.StandardButton.Close, self)
        box.setObjectName("error.details_dialog")
        box.setDetailedText(self._detail)
        box.open()
