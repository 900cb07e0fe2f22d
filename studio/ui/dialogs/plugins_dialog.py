"""Plugins > Manage Plugins…: every plugin found, whether it is on, what it adds and why it failed.

Unticking a plugin adds its id to the `plugins.disabled` setting (saved at once); like ticking it
again, that takes effect at the next start, because a plugin's panels, cards and engines are wired
in when the studio starts. The dialog says so.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView,
                               QLabel, QPlainTextEdit, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout)

COLUMNS = ("On", "Name", "Id", "Version", "From", "Status")


class PluginsDialog(QDialog):
    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.plugins = session.plugins
        self.setObjectName("plugins.dialog")
        self.setWindowTitle("Plugins")
        self.resize(860, 520)
        self._records = self.plugins.records() if self.plugins is not None else []
        self._start_disabled = set(session.settings.get("plugins.disabled"))

        lay = QVBoxLayout(self)
        note = QLabel("Plugins add model cards, preprocessors, panels and menu commands. Tick or untick "
                      "one to enable or disable it: <b>changes take effect at the next start</b> of the "
                      f"studio. Your plugins go in <code>{session.paths.home / 'plugins'}</code> "
                      "(docs/plugins.md explains how to write one).", self)
        note.setObjectName("plugins.note")
        note.setWordWrap(True)
        lay.addWidget(note)

        self.table = QTableWidget(len(self._records), len(COLUMNS), self)
        self.table.setObjectName("plugins.table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setObjectName("plugins.table_header")
        self.table.verticalHeader().setObjectName("plugins.table_rows")
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self._fill()
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_details(row))
        lay.addWidget(self.table, 2)

        self.details = QPlainTextEdit(self)
        self.details.setObjectName("plugins.details")
        self.details.setReadOnly(True)
        lay.addWidget(self.details, 1)

        self.restart = QLabel("", self)
        self.restart.setObjectName("plugins.restart")
        self.restart.setWordWrap(True)
        self.restart.setStyleSheet("color: #c80;")
        self.restart.hide()
        lay.addWidget(self.restart)

        row = QHBoxLayout()
        self.open_folder = QPushButton("Open Plugins Folder", self)
        self.open_folder.setObjectName("plugins.open_folder")
        self.open_folder.clicked.connect(self._open_folder)
        row.addWidget(self.open_folder)
        row.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.setObjectName("plugins.buttons")
        buttons.button(QDialogButtonBox.StandardButton.Close).setObjectName("plugins.close")
        buttons.rejected.connect(self.reject)
        row.addWidget(buttons)
        lay.addLayout(row)
        if self._records:
            self.table.setCurrentCell(0, 1)
        else:
            self.details.setPlainText("No plugins were found.")

    # -- table --------------------------------------------------------------------------------
    def _fill(self) -> None:
        self.table.blockSignals(True)
        for row, rec in enumerate(self._records):
            on = QTableWidgetItem("")
            if "@" not in rec.id:  # a duplicate id cannot be switched on or off by itself
                on.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                            | Qt.ItemFlag.ItemIsUserCheckable)
                on.setCheckState(Qt.CheckState.Unchecked if rec.id in self._start_disabled
                                 else Qt.CheckState.Checked)
            on.setToolTip("Enabled at the next start when ticked")
            self.table.setItem(row, 0, on)
            for col, text in enumerate((rec.name, rec.id, rec.version, rec.origin, ""), start=1):
                item = QTableWidgetItem(text)
                item.setToolTip(rec.location if col == 4 else text)
                self.table.setItem(row, col, item)
            self._status(row)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()

    def _status(self, row: int) -> None:
        rec = self._records[row]
        text = rec.status_text()
        want_off = self._ticked(row) is False
        if "@" not in rec.id and want_off != (rec.id in self._start_disabled):
            text += " — disabled at the next start" if want_off else " — enabled at the next start"
        item = self.table.item(row, 5)
        item.setText(text)
        item.setToolTip(rec.error or text)
        if rec.state == "failed":
            item.setForeground(Qt.GlobalColor.red)

    def _ticked(self, row: int) -> bool | None:
        item = self.table.item(row, 0)
        if not item.flags() & Qt.ItemFlag.ItemIsUserCheckable:
            return None
        return item.checkState() == Qt.CheckState.Checked

    def set_enabled(self, plugin_id: str, enabled: bool) -> None:
        """What ticking or unticking the plugin's box does."""
        for row, rec in enumerate(self._records):
            if rec.id == plugin_id:
                self.table.item(row, 0).setCheckState(Qt.CheckState.Checked if enabled
                                                      else Qt.CheckState.Unchecked)
                return
        raise KeyError(plugin_id)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0:
            return
        row = item.row()
        rec = self._records[row]
        st = self.session.settings
        disabled = [p for p in st.get("plugins.disabled") if p != rec.id]
        if not self._ticked(row):
            disabled.append(rec.id)
        st.set("plugins.disabled", sorted(disabled))
        try:
            st.save()
        except OSError as exc:
            self.session.app.report_error(f"Could not save the settings: {exc}", str(exc))
        self._status(row)
        changed = [r.name for i, r in enumerate(self._records)
                   if "@" not in r.id and (self._ticked(i) is False) != (r.id in self._start_disabled)]
        self.restart.setText("Restart the studio to apply your changes (" + ", ".join(changed) + ")."
                             if changed else "")
        self.restart.setVisible(bool(changed))
        self._show_details(row)

    def _show_details(self, row: int) -> None:
        if not 0 <= row < len(self._records):
            return
        rec = self._records[row]
        m = rec.manifest
        lines = [f"{rec.name} {rec.version}".strip(), f"Id: {rec.id}", f"From: {rec.origin} — {rec.location}",
                 f"Status: {rec.status_text()}"]
        if m is not None:
            if m.author:
                lines.append(f"Author: {m.author}")
            if m.description:
                lines.append(f"\n{m.description}")
            lines.append(f"\nAdds: {m.summary()}")
        if rec.warnings:
            lines.append("\nWarnings:\n" + "\n".join(f"- {w}" for w in rec.warnings))
        if rec.error:
            lines.append(f"\nError: {rec.error}")
            if rec.detail and rec.detail != rec.error:
                lines.append(f"\nDetails:\n{rec.detail}")
        self.details.setPlainText("\n".join(lines))

    def _open_folder(self) -> None:
        folder = self.session.paths.home / "plugins"
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
