"""Panels for workspaces whose engines are not installed yet: they say so plainly."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

PLANNED = {
    "label": "CLIP zero-shot labelling, embedding arithmetic and word-to-region maps.",
    "chat": "Chat with a vision-language model about the loaded image.",
    "paint": "Prompt-to-image, img2img, inpainting and ControlNet depth, pose and edges.",
    "tape": "The frame tape: generate, edit and export short videos on a timeline.",
}


class PlaceholderPanel(QWidget):
    def __init__(self, workspace: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(f"{workspace}.panel")
        lay = QVBoxLayout(self)
        title = QLabel(f"<b>{workspace.capitalize()}</b>", self)
        text = QLabel(
            f"{PLANNED.get(workspace, '')}<br><br><i>Not available in this version: "
            f"its engine is not installed yet.</i>", self)
        text.setObjectName(f"{workspace}.unavailable")
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(title)
        lay.addWidget(text)
        lay.addStretch(1)
