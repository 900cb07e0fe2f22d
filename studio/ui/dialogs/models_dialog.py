"""Models > Manager: catalog x disk x memory in one table, with load, unload, download, verify,
remove and add, device and memory budgets.

Everything heavy goes through runtime jobs via the session's ModelsController; this dialog only
draws ModelsState and forwards clicks, so it never blocks and can be closed while jobs run.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog, QFormLayout,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox, QProgressBar,
                               QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from studio.catalog.cards import TASKS
from studio.state.models_state import ModelsController

COLUMNS = ("Name", "Task", "Library", "Source", "Status", "On disk", "Memory", "License")
DEVICES = ("auto", "cpu", "cuda", "mps")


def _mb(value: float) -> str:
    return f"{value / 1024:,.1f} GB" if value >= 1024 else f"{value:,.0f} MB"


class ModelsDialog(QDialog):
    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.ctl = ModelsController.of(session)
        self.state = session.models
        self.setObjectName("models.dialog")
        self.setWindowTitle("Model manager")
        self.resize(1100, 640)
        self._rows: list[str] = []
        self._confirm: QMessageBox | None = None
        self._build()
        self.state.changed.connect(self._on_state)
        self.finished.connect(self._on_finished)
        self.ctl.watch(True)
        self._fill_table()
        self._draw_memory()
        self._draw_message()
        self.ctl.refresh()

    # -- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.addWidget(self._build_memory())
        filters = QHBoxLayout()
        self.filter = QLineEdit(self)
        self.filter.setObjectName("models.filter")
        self.filter.setPlaceholderText("Filter by name, id or library…")
        self.filter.textChanged.connect(lambda _t: self._fill_table())
        self.task_filter = QComboBox(self)
        self.task_filter.setObjectName("models.task_filter")
        self.task_filter.addItems(["all tasks", *TASKS])
        self.task_filter.currentIndexChanged.connect(lambda _i: self._fill_table())
        filters.addWidget(self.filter, 1)
        filters.addWidget(self.task_filter)
        lay.addLayout(filters)

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("models.table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col, width in ((1, 80), (2, 100), (3, 200), (4, 130), (5, 80), (6, 130), (7, 150)):
            self.table.setColumnWidth(col, width)
        self.table.itemSelectionChanged.connect(self._update_selection)
        self.table.cellDoubleClicked.connect(lambda *_: self.load_selected())
        lay.addWidget(self.table, 1)

        self.details = QLabel(self)
        self.details.setObjectName("models.details")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.details)

        consent = QHBoxLayout()
        self.allow_pickle = QCheckBox("Allow pickle files for this model", self)
        self.allow_pickle.setObjectName("models.allow_pickle")
        self.allow_pickle.setToolTip("Pickle checkpoints (.bin .ckpt .pt .pth) can run code when loaded.")
        self.allow_pickle.clicked.connect(lambda on: self._ask_consent("models.allow_pickle", on))
        self.trust_code = QCheckBox("Trust remote code for this model", self)
        self.trust_code.setObjectName("models.trust_remote_code")
        self.trust_code.setToolTip("Lets the model run Python code that ships with it (trust_remote_code).")
        self.trust_code.clicked.connect(lambda on: self._ask_consent("models.trust_remote_code", on))
        consent.addWidget(self.allow_pickle)
        consent.addWidget(self.trust_code)
        consent.addStretch(1)
        lay.addLayout(consent)

        progress = QHBoxLayout()
        self.progress = QProgressBar(self)
        self.progress.setObjectName("models.progress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.status = QLabel(self)
        self.status.setObjectName("models.status")
        self.status.setWordWrap(True)
        progress.addWidget(self.status, 1)
        progress.addWidget(self.progress)
        lay.addLayout(progress)

        buttons = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for name, text, slot, tip in (
            ("load", "Load", self.load_selected, "Load into memory now (models also load on first use)"),
            ("unload", "Unload", self.unload_selected, "Free the memory this model takes"),
            ("download", "Download", self.download_selected, "Fetch the files from Hugging Face"),
            ("cancel_download", "Cancel download", self.cancel_selected, "Stop; what arrived is kept"),
            ("verify", "Verify", self.verify_selected, "Check every file against its checksum"),
            ("remove", "Remove…", self.remove_selected, "Delete the download, or a card you added"),
            ("add", "Add model…", self.add_model, "Add a folder, a checkpoint file or a hub repo"),
            ("unload_all", "Unload all", lambda: self.ctl.unload(""), "Free all model memory"),
            ("refresh", "Refresh", self.ctl.refresh, "Look at the disk and the memory again"),
            ("close", "Close", self.reject, ""),
        ):
            b = QPushButton(text, self)
            b.setObjectName(f"models.{name}")
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False, fn=slot: fn())
            buttons.addWidget(b)
            self.buttons[name] = b
            if name == "add":
                buttons.addStretch(1)
        lay.addLayout(buttons)

    def _build_memory(self) -> QWidget:
        box = QWidget(self)
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.device_label = QLabel("Device: starting…", box)
        self.device_label.setObjectName("models.device_label")
        self.device = QComboBox(box)
        self.device.setObjectName("models.device")
        self.device.addItems(DEVICES)
        self.device.setCurrentText(self.session.settings.get("device"))
        self.device.setToolTip("auto: CUDA, then MPS, then CPU. Changing it unloads every model.")
        self.device.currentTextChanged.connect(lambda d: self.ctl.set_setting("device", d))
        row.addWidget(self.device_label, 1)
        row.addWidget(QLabel("Device:", box))
        row.addWidget(self.device)
        self.vram_budget = self._budget_box("models.vram_budget", "models.vram_budget_mb", box)
        self.ram_budget = self._budget_box("models.ram_budget", "models.ram_budget_mb", box)
        row.addWidget(QLabel("VRAM budget:", box))
        row.addWidget(self.vram_budget)
        row.addWidget(QLabel("RAM budget:", box))
        row.addWidget(self.ram_budget)
        self.offline = QCheckBox("Offline", box)
        self.offline.setObjectName("models.offline")
        self.offline.setChecked(bool(self.session.settings.get("offline")))
        self.offline.setToolTip("Offline: the studio never uses the network by itself; only the "
                                "Download button does. Off: the add dialog may also look repos up.")
        self.offline.toggled.connect(lambda on: self.ctl.set_setting("offline", bool(on)))
        row.addWidget(self.offline)
        form.addRow(row)
        self.vram_bar = self._bar("models.vram_bar", box)
        self.ram_bar = self._bar("models.ram_bar", box)
        form.addRow("GPU memory:", self.vram_bar)
        form.addRow("Main memory:", self.ram_bar)
        return box

    def _budget_box(self, name: str, key: str, parent) -> QSpinBox:
        box = QSpinBox(parent)
        box.setObjectName(name)
        box.setRange(0, 4_000_000)
        box.setSingleStep(512)
        box.setSuffix(" MB")
        box.setSpecialValueText("automatic")
        box.setValue(int(self.session.settings.get(key)))
        box.setToolTip("How much memory models may take before the least recently used are unloaded "
                       "(0: automatic).")
        box.editingFinished.connect(lambda: self.ctl.set_setting(key, int(box.value())))
        return box

    def _bar(self, name: str, parent) -> QProgressBar:
        bar = QProgressBar(parent)
        bar.setObjectName(name)
        bar.setRange(0, 1000)
        bar.setTextVisible(True)
        return bar

    # -- state -> widgets -----------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        if name in ("snapshot", "loaded", "disk", "busy", "queued", "downloads", "verify"):
            self._fill_table()
        if name == "snapshot":
            self._draw_memory()
        if name in ("message", "error", "downloads"):
            self._draw_message()

    def _on_finished(self, _result: int) -> None:
        self.state.changed.disconnect(self._on_state)
        self.ctl.watch(False)

    def _draw_memory(self) -> None:
        snap = self.state.snapshot
        if snap is None:
            return
        text = f"Device: {snap.label}" + (f" — {snap.note}" if snap.note else "")
        self.device_label.setText(text)
        for bar, used, budget, total in ((self.vram_bar, snap.vram_used_mb, snap.vram_budget_mb, snap.vram_total_mb),
                                         (self.ram_bar, snap.ram_used_mb, snap.ram_budget_mb, snap.ram_total_mb)):
            if budget <= 0:
                bar.setValue(0)
                bar.setFormat("no GPU" if bar is self.vram_bar else "")
                bar.setEnabled(False)
                continue
            bar.setEnabled(True)
            bar.setValue(int(min(1.0, used / budget) * 1000))
            bar.setFormat(f"models {_mb(used)} of {_mb(budget)} budget" + (f" ({_mb(total)} total)" if total else ""))

    def _draw_message(self) -> None:
        err = self.state.error
        dl = self.state.downloads
        if dl:
            model_id, (fraction, text) = next(iter(dl.items()))
            self.progress.setVisible(True)
            self.progress.setValue(int(fraction * 1000))
            self.progress.setFormat(f"{fraction * 100:.0f}%")
            self.status.setText(text)
            self.status.setStyleSheet("")
            return
        self.progress.setVisible(False)
        if err is not None:
            self.status.setText(err[0])
            self.status.setToolTip(err[1][-3000:] if err[1] else "")
            self.status.setStyleSheet("color: #d33;")
        else:
            self.status.setText(self.state.message)
            self.status.setToolTip("")
            self.status.setStyleSheet("")

    def _visible_cards(self):
        text = self.filter.text().strip().lower()
        task = self.task_filter.currentText()
        return [c for c in self.session.catalog.cards()
                if (task == "all tasks" or c.task == task)
                and (not text or text in f"{c.id} {c.name} {c.library} {c.source}".lower())]

    def _row_cells(self, card) -> tuple[str, ...]:
        st = self.state
        disk = st.disk.get(card.id)
        status = disk.state if disk else "…"
        if card.id in st.downloads:
            status = f"downloading {st.downloads[card.id][0] * 100:.0f}%"
        elif card.id in st.queued:
            status = "queued"
        elif card.id in st.busy:
            status = st.busy[card.id].rstrip("…").lower()
        info = st.loaded_info(card.id)
        if info is not None:
            where = "offloaded" if info.placement == "offload" else info.device
            mem = f"{_mb(info.memory_mb)} on {where}" + (" (shared)" if info.shared_with else "")
            status = f"loaded ({status})" if status in ("installed", "builtin") else status
        else:
            mem = f"~{_mb(card.memory_mb)}" if card.memory_mb else ""
        size = _mb(disk.size_bytes / 2**20) if disk and disk.size_bytes else ""
        return (card.name, card.task, card.library, card.source, status, size, mem, card.license)

    def _fill_table(self) -> None:
        selected = self.selected_id()
        cards = self._visible_cards()
        self.table.setUpdatesEnabled(False)
        self.table.setRowCount(len(cards))
        self._rows = [c.id for c in cards]
        for r, card in enumerate(cards):
            for k, text in enumerate(self._row_cells(card)):
                item = self.table.item(r, k)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, k, item)
                item.setText(text)
                if k in (3, 7):
                    item.setToolTip(text)
                if k == 0:
                    item.setData(Qt.ItemDataRole.UserRole, card.id)
                    item.setToolTip(card.description or card.id)
        self.table.setUpdatesEnabled(True)
        if selected in self._rows:
            self.table.selectRow(self._rows.index(selected))
        self._update_selection()

    # -- selection and buttons ------------------------------------------------------------
    def selected_id(self) -> str:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return ""
        item = self.table.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def select(self, model_id: str) -> None:
        """Select the row of `model_id` (clearing the filters if they hide it)."""
        if model_id not in self._rows:
            self.filter.clear()
            self.task_filter.setCurrentIndex(0)
            self._fill_table()
        if model_id in self._rows:
            self.table.selectRow(self._rows.index(model_id))

    def _update_selection(self) -> None:
        model_id = self.selected_id()
        card = self.session.catalog.get(model_id) if model_id in self.session.catalog else None
        st = self.state
        disk = st.disk.get(model_id)
        loaded = st.loaded_info(model_id) is not None
        busy = model_id in st.busy
        fetching = model_id in st.downloads or model_id in st.queued
        ready = bool(disk and disk.ready)
        b = self.buttons
        b["load"].setEnabled(bool(card) and ready and not loaded and not busy)
        b["unload"].setEnabled(loaded and not busy)
        b["download"].setEnabled(bool(card and card.is_hub) and not fetching
                                 and bool(disk) and not ready)
        b["cancel_download"].setEnabled(fetching)
        b["verify"].setEnabled(bool(card) and bool(disk and disk.path) and not busy and not fetching
                               and card.source_kind != "builtin")
        has_files = bool(card and card.is_hub and disk and disk.state in ("installed", "partial"))
        b["remove"].setEnabled(bool(card) and not busy and not fetching
                               and (has_files or card.origin == "user"))
        pickles = set(self.session.settings.get("models.allow_pickle"))
        trusted = set(self.session.settings.get("models.trust_remote_code"))
        for box, on in ((self.allow_pickle, model_id in pickles), (self.trust_code, model_id in trusted)):
            box.blockSignals(True)
            box.setChecked(on)
            box.setEnabled(bool(card))
            box.blockSignals(False)
        self.details.setText(self._details(card) if card else "Select a model.")

    def _details(self, card) -> str:
        disk = self.state.disk.get(card.id)
        parts = [f"<b>{card.name}</b> <code>{card.id}</code>"]
        if card.description:
            parts.append(card.description)
        if disk is not None:
            parts.append(disk.detail)
        if card.needs_pickle:
            parts.append("Ships pickle checkpoints only: allow pickle files to load it.")
        if card.options.get("gated"):
            parts.append("Gated on Hugging Face: accept its terms on the hub and log in "
                         "(`hf auth login` or HF_TOKEN) before downloading.")
        report = self.state.verify.get(card.id)
        if report is not None:
            parts.append(f"Last check: {report.message}")
        info = self.state.loaded_info(card.id)
        if info is not None:
            parts.append(f"Loaded on {info.device} ({info.dtype}, {info.placement}) in {info.seconds:.1f} s"
                         + (f"; shares weights with {', '.join(info.shared_with)}" if info.shared_with else ""))
        return "<br>".join(parts)

    # -- actions --------------------------------------------------------------------------
    def load_selected(self) -> None:
        if self.buttons["load"].isEnabled() and self.selected_id():
            self.ctl.load(self.selected_id())

    def unload_selected(self) -> None:
        if self.selected_id():
            self.ctl.unload(self.selected_id())

    def download_selected(self) -> None:
        if self.selected_id():
            self.ctl.download(self.selected_id())

    def cancel_selected(self) -> None:
        if self.selected_id():
            self.ctl.cancel_download(self.selected_id())

    def verify_selected(self) -> None:
        if self.selected_id():
            self.ctl.verify(self.selected_id())

    def remove_selected(self) -> None:
        model_id = self.selected_id()
        if not model_id:
            return
        card = self.session.catalog.get(model_id)
        what = []
        if card.is_hub:
            what.append(f"delete its downloaded files from the Hugging Face cache ({card.source_ref}; "
                        "other programs using that cache lose them too)")
        if card.origin == "user":
            what.append("remove its card from your model list (your own files are not touched)")
        self._ask(f"Remove {card.name}?", "This will " + " and ".join(what) + ".",
                  "models.remove_confirm", lambda: self.ctl.remove(model_id))

    def _ask_consent(self, key: str, on: bool) -> None:
        model_id = self.selected_id()
        if not model_id:
            return
        if not on:
            self.ctl.set_consent(key, model_id, False)
            return
        box = self.allow_pickle if key == "models.allow_pickle" else self.trust_code
        box.setChecked(False)  # only a confirmed warning turns it on
        name = self.session.catalog.get(model_id).name
        if key == "models.allow_pickle":
            text = (f"Pickle files can run any code on this computer when they are loaded. Allow them "
                    f"for {name} only if you trust where its files come from.")
        else:
            text = (f"{name} would run Python code that comes with the model, with your permissions. "
                    "Allow it only if you trust its authors.")
        self._ask("Allow this?", text, "models.consent_warning",
                  lambda: self.ctl.set_consent(key, model_id, True), warning=True)

    def _ask(self, title: str, text: str, name: str, on_yes, warning: bool = False) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning if warning else QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName(name)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.button(QMessageBox.StandardButton.Yes).setObjectName(f"{name}.yes")
        box.button(QMessageBox.StandardButton.No).setObjectName(f"{name}.no")

        def done(_result: int) -> None:
            if box.clickedButton() is box.button(QMessageBox.StandardButton.Yes):
                on_yes()
            self._update_selection()
            box.deleteLater()

        box.finished.connect(done)
        self._confirm = box
        box.open()

    def add_model(self) -> None:
        from studio.ui.dialogs.add_model_dialog import AddModelDialog

        dlg = AddModelDialog(self.session, self)
        dlg.added.connect(self.select)
        dlg.open()
        self.add_dialog = dlg
