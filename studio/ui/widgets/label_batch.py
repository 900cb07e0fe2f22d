"""The label workspace's Folder tab: label a whole folder (progress, cancel, sortable table with
thumbnails, CSV/JSON export, unreadable files listed) and zero-shot accuracy on class folders."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget,
                               QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from studio.core.errors import BadInputError, StudioError
from studio.core.label_requests import AccuracyRequest, LabelBatchRequest, write_batch
from studio.ui.convert import array_to_pixmap

BATCH_KEY = "label.batch"
THUMB = 48


def name_headers(table: QTableWidget) -> None:
    """Header views are item views too: testers find them as `<table>_header` and `<table>_rows`."""
    table.horizontalHeader().setObjectName(f"{table.objectName()}_header")
    table.verticalHeader().setObjectName(f"{table.objectName()}_rows")


class _Num(QTableWidgetItem):
    """Sorts by number, not by text."""

    def __lt__(self, other) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, float) and isinstance(b, float):
            return a < b
        return super().__lt__(other)


class LabelBatchWidget(QWidget):
    def __init__(self, session, window, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("label.batch_panel")
        self.session = session
        self.window_ = window
        self._job = None
        st = session.label
        lay = QVBoxLayout(self)

        row = QHBoxLayout()
        self.folder_edit = QLineEdit(self)
        self.folder_edit.setObjectName("label.folder")
        self.folder_edit.setPlaceholderText("Folder of images")
        self.browse_button = QPushButton("Browse…", self)
        self.browse_button.setObjectName("label.browse_folder")
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.browse_button)
        lay.addLayout(row)
        hint = QLabel("Uses the labels, templates and scoring of the Labels tab.", self)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray;")
        lay.addWidget(hint)

        row = QHBoxLayout()
        self.run_button = QPushButton("Label folder", self)
        self.run_button.setObjectName("label.run_folder")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("label.cancel_folder")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button, 1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("label.progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        lay.addWidget(self.progress)
        self.status = QLabel("", self)
        self.status.setObjectName("label.batch_status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        self.table = QTableWidget(0, 3, self)
        self.table.setObjectName("label.table")
        self.table.setHorizontalHeaderLabels(["Image", "Label", "Score"])
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 4)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSortingEnabled(True)
        self.table.setToolTip("Double-click a row to open the image")
        name_headers(self.table)
        lay.addWidget(self.table, 1)
        self.errors = QListWidget(self)
        self.errors.setObjectName("label.errors")
        self.errors.setMaximumHeight(80)
        self.errors.setVisible(False)
        lay.addWidget(self.errors)

        row = QHBoxLayout()
        self.csv_button = QPushButton("Export CSV…", self)
        self.csv_button.setObjectName("label.export_csv")
        self.json_button = QPushButton("Export JSON…", self)
        self.json_button.setObjectName("label.export_json")
        for b in (self.csv_button, self.json_button):
            b.setEnabled(False)
            row.addWidget(b)
        lay.addLayout(row)

        row = QHBoxLayout()
        self.accuracy_button = QPushButton("Zero-shot accuracy", self)
        self.accuracy_button.setObjectName("label.accuracy")
        self.accuracy_button.setToolTip("The folder holds one folder per class, named after the class "
                                        "(red_circle/, blue_square/ …)")
        row.addWidget(self.accuracy_button)
        lay.addLayout(row)
        self.accuracy_label = QLabel("", self)
        self.accuracy_label.setObjectName("label.accuracy_result")
        self.accuracy_label.setWordWrap(True)
        self.accuracy_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.accuracy_label)

        self.folder_edit.setText(st.folder)
        self.folder_edit.textChanged.connect(lambda t: setattr(st, "folder", t.strip()))
        self.folder_edit.returnPressed.connect(self.run)
        self.browse_button.clicked.connect(self.browse)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.csv_button.clicked.connect(lambda: self.export_dialog("csv"))
        self.json_button.clicked.connect(lambda: self.export_dialog("json"))
        self.accuracy_button.clicked.connect(self.run_accuracy)
        self.table.cellDoubleClicked.connect(self._open_row)
        st.changed.connect(self._on_state)

    # -- actions --------------------------------------------------------------------------
    def browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images", self.session.label.folder
                                                  or str(Path.home()))
        if folder:
            self.folder_edit.setText(folder)

    def _report(self, err) -> None:
        self.session.app.report_error(err.user_message, getattr(err, "detail", ""))

    def run(self) -> None:
        st = self.session.label
        try:
            if not st.folder:
                raise BadInputError("Choose a folder of images first.")
            if not st.model_id:
                raise BadInputError("There is no CLIP model to run: add one in Models > Manager.")
            req = LabelBatchRequest(folder=st.folder, model_id=st.model_id, labels=st.labels(),
                                    templates=st.template_list(), thumbnail=THUMB)
        except StudioError as err:
            self._report(err)
            return
        st.update(batch_busy=True, batch_progress=0.0, batch_status="Starting…")
        self._job = self.session.runtime.submit(
            req, key=BATCH_KEY, title="Label folder", on_result=self._on_result, on_error=self._on_error,
            on_progress=self._on_progress, on_cancelled=lambda: self._finished("Cancelled"))

    def run_accuracy(self) -> None:
        st = self.session.label
        if not st.folder or not st.model_id:
            self._report(BadInputError("Choose a folder of class folders and a CLIP model first."))
            return
        req = AccuracyRequest(folder=st.folder, model_id=st.model_id, templates=st.template_list())
        st.update(batch_busy=True, batch_progress=0.0, batch_status="Measuring accuracy…")
        self._job = self.session.runtime.submit(
            req, key=BATCH_KEY, title="Zero-shot accuracy", on_result=self._on_accuracy,
            on_error=self._on_error, on_progress=self._on_progress,
            on_cancelled=lambda: self._finished("Cancelled"))

    def cancel(self) -> None:
        if self._job is not None:
            self.session.runtime.cancel(self._job)

    def export(self, path: str | Path) -> Path:
        """Write the table (CSV or JSON by suffix) under the current scoring; raises BadInputError."""
        st = self.session.label
        if st.batch is None:
            raise BadInputError("Label a folder first: there is no table to export.")
        return write_batch(st.batch, path, st.scoring, st.temperature, st.threshold)

    def export_dialog(self, kind: str) -> None:
        start = str(Path(self.session.label.folder or Path.home()) / f"labels.{kind}")
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", start,
                                              f"{kind.upper()} (*.{kind})")
        if not path:
            return
        if not path.lower().endswith(f".{kind}"):
            path += f".{kind}"
        try:
            self.export(path)
            self.session.app.message = f"Table written to {path}"
        except StudioError as err:
            self._report(err)

    # -- results --------------------------------------------------------------------------
    def _on_progress(self, fraction: float, text: str) -> None:
        self.session.label.update(batch_progress=fraction, batch_status=text)

    def _finished(self, text: str) -> None:
        self._job = None
        self.session.label.update(batch_busy=False, batch_status=text)

    def _on_error(self, err) -> None:
        self._finished("Failed")
        self._report(err)

    def _on_result(self, result) -> None:
        self.session.label.set_batch(result)
        bad = f", {len(result.errors)} unreadable" if result.errors else ""
        n = len(result.items)
        self._finished(f"{n} image{'s' if n != 1 else ''} labelled in {result.seconds:.1f} s{bad}")

    def _on_accuracy(self, result) -> None:
        self.session.label.accuracy = result
        self._finished(f"Accuracy measured on {result.total} images")

    def _open_row(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is not None and hasattr(self.window_, "open_path"):
            self.window_.open_path(item.data(Qt.ItemDataRole.UserRole + 1))

    # -- state → widgets ------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        st = self.session.label
        if name in ("batch_busy", "model_id"):
            self.run_button.setEnabled(not st.batch_busy)
            self.accuracy_button.setEnabled(not st.batch_busy)
            self.cancel_button.setEnabled(st.batch_busy)
        if name == "batch_progress":
            self.progress.setValue(int(value * 1000))
        elif name == "batch_status":
            self.status.setText(value)
        elif name == "folder" and self.folder_edit.text().strip() != value:
            self.folder_edit.setText(value)
        elif name in ("batch", "scoring", "temperature", "threshold", "result"):
            self._fill_table()
        elif name == "accuracy":
            self._show_accuracy(value)

    def _fill_table(self) -> None:
        st = self.session.label
        b = st.batch
        self.csv_button.setEnabled(b is not None)
        self.json_button.setEnabled(b is not None)
        self.table.setSortingEnabled(False)
        rows = st.batch_rows()
        self.table.setRowCount(len(rows))
        for r, ((name, label, score), item) in enumerate(zip(rows, b.items if b else ())):
            cell = QTableWidgetItem(QIcon(array_to_pixmap(item.thumbnail)), name)
            cell.setData(Qt.ItemDataRole.UserRole + 1, item.path)
            cell.setToolTip(item.path)
            self.table.setItem(r, 0, cell)
            self.table.setItem(r, 1, QTableWidgetItem(label))
            num = _Num(f"{score:.3f}")
            num.setData(Qt.ItemDataRole.UserRole, float(score))
            self.table.setItem(r, 2, num)
        self.table.setSortingEnabled(True)
        self.errors.clear()
        errs = b.errors if b is not None else ()
        for path, msg in errs:
            self.errors.addItem(f"{Path(path).name}: {msg}")
        self.errors.setVisible(bool(errs))

    def _show_accuracy(self, res) -> None:
        if res is None:
            self.accuracy_label.setText("")
            return
        worst = sorted(res.per_class, key=lambda t: (t[2] / t[1] if t[1] else 0.0))[:3]
        lines = [f"<b>{res.accuracy * 100:.1f}%</b> zero-shot accuracy ({res.correct}/{res.total}, "
                 f"{len(res.classes)} classes, {res.seconds:.1f} s)"]
        if worst:
            lines.append("Hardest: " + ", ".join(f"{n} {ok}/{k}" for n, k, ok in worst))
        if res.errors:
            lines.append(f"{len(res.errors)} unreadable files skipped")
        self.accuracy_label.setText("<br>".join(lines))
