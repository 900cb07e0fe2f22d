"""Models > Manager: the catalog as a table (what is known, loaded, and how it loads)."""
from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem,
                               QVBoxLayout)


class ModelsDialog(QDialog):
    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("models.dialog")
        self.setWindowTitle("Model manager")
        self.resize(820, 420)
        cards = session.catalog.cards()
        table = QTableWidget(len(cards), 5, self)
        table.setObjectName("models.table")
        table.setHorizontalHeaderLabels(["Name", "Task", "Library", "Source", "Loaded"])
        loaded = set(session.models.loaded)
        for r, c in enumerate(cards):
            for k, text in enumerate((c.name, c.task, c.library, c.source,
                                      "yes" if c.id in loaded else "")):
                table.setItem(r, k, QTableWidgetItem(text))
        table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.setObjectName("models.buttons")
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(buttons)
