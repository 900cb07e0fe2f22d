"""Label workspace panel: CLIP zero-shot labelling (labels typed, loaded or from presets; prompt templates;
softmax / cosine / sigmoid scores; "none of these"), plus the Folder, Arithmetic and Region tabs.

Typing labels re-ranks the current image after a short pause; scoring controls re-rank without a model
call (the state keeps the cosines). Every interactive widget has a `label.*` objectName.
"""
from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QPlainTextEdit,
                               QPushButton, QScrollArea, QSlider, QTabWidget, QVBoxLayout, QWidget)

from studio.core.errors import StudioError
from studio.core.label_requests import (PRESETS, SCORINGS, TEMPLATE_SETS, LabelRequest, check_labels,
                                        load_labels_file, preset_labels)
from studio.ui.widgets.label_arith import LabelArithmeticWidget
from studio.ui.widgets.label_bars import LabelBars
from studio.ui.widgets.label_batch import LabelBatchWidget
from studio.ui.widgets.label_region import LabelRegionWidget

LABEL_KEY = "label.zero_shot"
AUTO_RUN_MS = 400
DEFAULT_LABELS = "red circle\nblue square\ngreen triangle\nyellow star\nperson"


def _t_from_slider(v: int) -> float:
    return 10 ** ((v - 50) / 50.0)  # 0..100 -> 0.1..10, 50 -> 1.0


def _slider_from_t(t: float) -> int:
    return int(round(50 + 50 * math.log10(max(0.1, min(10.0, t)))))


class LabelPanel(QWidget):
    def __init__(self, session, window=None, parent=None) -> None:
        super().__init__(parent or window)
        self.setObjectName("label.panel")
        self.session = session
        self.window_ = window
        st = session.label
        self._result_for = None  # (image, model, labels, templates) of the shown ranking
        self._ran = False  # after a first run, a new image or model re-ranks by itself
        lay = QVBoxLayout(self)

        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("label.model")
        cards = session.catalog.cards("clip")
        for card in cards:
            self.model_combo.addItem(card.name, card.id)
        if not cards:
            self.model_combo.addItem("(no CLIP model in the catalog)", "")
            self.model_combo.setEnabled(False)
        ids = [c.id for c in cards]
        if st.model_id not in ids:
            st.model_id = "starter-clip" if "starter-clip" in ids else (ids[0] if ids else "")
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(st.model_id)))
        self.model_note = QLabel(self)
        self.model_note.setObjectName("label.model_note")
        self.model_note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        lay.addLayout(form)
        lay.addWidget(self.model_note)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("label.tabs")
        self.tabs.addTab(self._build_labels_tab(), "Labels")
        self.batch = LabelBatchWidget(session, window, self)
        self.tabs.addTab(self.batch, "Folder")
        self.arithmetic = LabelArithmeticWidget(session, window, self)
        self.tabs.addTab(self.arithmetic, "Arithmetic")
        self.region = LabelRegionWidget(session, window, self)
        self.tabs.addTab(self.region, "Region")
        lay.addWidget(self.tabs, 1)

        self._timer = QTimer(self)
        self._timer.setObjectName("label.auto_run")
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTO_RUN_MS)
        self._timer.timeout.connect(lambda: self.run(auto=True))

        if not st.labels_text:
            st.labels_text = DEFAULT_LABELS
        self.labels_edit.setPlainText(st.labels_text)
        self.template_combo.setCurrentIndex(max(0, self.template_combo.findData(st.templates)))
        self.scoring_combo.setCurrentIndex(max(0, self.scoring_combo.findData(st.scoring)))
        self.temperature.setValue(_slider_from_t(st.temperature))
        self.threshold.setValue(int(round(st.threshold * 100)))
        self._update_model_note()
        self._show_values()

        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.preset_combo.activated.connect(self._preset_chosen)
        self.load_button.clicked.connect(self.load_dialog)
        self.labels_edit.textChanged.connect(self._labels_edited)
        self.template_combo.currentIndexChanged.connect(
            lambda i: self._set_and_rerun("templates", self.template_combo.itemData(i)))
        self.scoring_combo.currentIndexChanged.connect(
            lambda i: st.set_scoring(self.scoring_combo.itemData(i)))
        self.temperature.valueChanged.connect(lambda v: setattr(st, "temperature", _t_from_slider(v)))
        self.threshold.valueChanged.connect(lambda v: setattr(st, "threshold", v / 100.0))
        self.run_button.clicked.connect(lambda: self.run())
        self.bars.label_clicked.connect(self._locate)
        st.changed.connect(self._on_state)
        session.app.changed.connect(self._on_app)

    def _build_labels_tab(self) -> QWidget:
        tab = QWidget(self)
        lay = QVBoxLayout(tab)
        row = QHBoxLayout()
        self.preset_combo = QComboBox(tab)
        self.preset_combo.setObjectName("label.preset")
        self.preset_combo.addItem("Presets…", "")
        for key, (text, _file) in PRESETS.items():
            self.preset_combo.addItem(text, key)
        self.load_button = QPushButton("Load file…", tab)
        self.load_button.setObjectName("label.load_labels")
        row.addWidget(self.preset_combo, 1)
        row.addWidget(self.load_button)
        lay.addLayout(row)
        self.labels_edit = QPlainTextEdit(tab)
        self.labels_edit.setObjectName("label.labels")
        self.labels_edit.setPlaceholderText("One label per line, e.g.\nred circle\nblue square")
        self.labels_edit.setMaximumHeight(140)
        lay.addWidget(self.labels_edit)

        form = QFormLayout()
        self.template_combo = QComboBox(tab)
        self.template_combo.setObjectName("label.templates")
        for key, (text, _file) in TEMPLATE_SETS.items():
            self.template_combo.addItem(text, key)
        self.scoring_combo = QComboBox(tab)
        self.scoring_combo.setObjectName("label.scoring")
        for key, text in SCORINGS.items():
            self.scoring_combo.addItem(text, key)
        self.temperature = QSlider(Qt.Orientation.Horizontal, tab)
        self.temperature.setObjectName("label.temperature")
        self.temperature.setRange(0, 100)
        self.temperature.setToolTip("Divides the logits: above 1 flattens the scores, below 1 sharpens them")
        self.temperature_value = QLabel(tab)
        self.threshold = QSlider(Qt.Orientation.Horizontal, tab)
        self.threshold.setObjectName("label.threshold")
        self.threshold.setRange(0, 100)
        self.threshold.setToolTip("If the best score is under this, the answer is “none of these”")
        self.threshold_value = QLabel(tab)
        form.addRow("Templates", self.template_combo)
        form.addRow("Scores", self.scoring_combo)
        for text, slider, value in (("Temperature", self.temperature, self.temperature_value),
                                    ("None below", self.threshold, self.threshold_value)):
            r = QHBoxLayout()
            r.addWidget(slider, 1)
            r.addWidget(value)
            form.addRow(text, r)
        lay.addLayout(form)

        self.run_button = QPushButton("Label image", tab)
        self.run_button.setObjectName("label.run")
        self.run_button.setToolTip("Rank the labels for the current image (F5)")
        self.run_button.setShortcut("F5")
        lay.addWidget(self.run_button)
        self.status = QLabel("", tab)
        self.status.setObjectName("label.status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.bars = LabelBars(tab)
        scroll = QScrollArea(tab)
        scroll.setObjectName("label.results_scroll")
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.bars)
        lay.addWidget(scroll, 1)
        return tab

    # -- actions --------------------------------------------------------------------------
    def set_labels(self, labels) -> None:
        """Put labels (a list or newline-separated text) into the text box, as typing would."""
        text = labels if isinstance(labels, str) else "\n".join(labels)
        self.labels_edit.setPlainText(text)

    def load_labels(self, path: str | Path) -> None:
        try:
            self.set_labels(load_labels_file(path))
            self.session.app.message = f"Labels loaded from {Path(path).name}"
        except StudioError as err:
            self._report(err)

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load labels", str(Path.home()),
                                              "Label lists (*.txt *.csv);;All files (*)")
        if path:
            self.load_labels(path)

    def _preset_chosen(self, index: int) -> None:
        key = self.preset_combo.itemData(index)
        self.preset_combo.setCurrentIndex(0)
        if key:
            try:
                self.set_labels(preset_labels(key))
            except StudioError as err:
                self._report(err)

    def run(self, auto: bool = False) -> None:
        """Rank the labels for the current image. `auto` (typing, a new image) stays silent on missing input."""
        s, st = self.session, self.session.label
        self._timer.stop()
        image = s.app.image
        if image is None:
            if not auto:
                s.app.report_error("Open an image first (File > Open, drag and drop, or paste).")
            return
        if not st.model_id:
            if not auto:
                s.app.report_error("There is no CLIP model to run: add one in Models > Manager.")
            return
        try:
            labels = check_labels(st.labels())
            templates = st.template_list()
        except StudioError as err:
            if not auto:
                self._report(err)
            return
        key = (image, st.model_id, labels, templates)
        if auto and self._result_for == key:
            return
        try:
            s.runtime.submit(
                LabelRequest(image=image, model_id=st.model_id, labels=labels, templates=templates),
                key=LABEL_KEY, title="Label image", on_result=self._on_result, on_error=self._on_error,
                on_progress=lambda f, t: setattr(st, "status", t),
                on_cancelled=lambda: st.update(busy=False, status="Cancelled"))
        except RuntimeError:  # the studio is shutting down (a pending auto-run fired late)
            return
        self._result_for = key
        self._ran = True
        st.update(busy=True, status="Running…")

    def _on_result(self, result) -> None:
        st = self.session.label
        if result.model_id != st.model_id:  # the user chose another model meanwhile
            st.update(busy=False, status="")
            return
        st.set_result(result)
        note = "cached text" if result.text_cached else f"{len(result.labels) * len(result.templates)} prompts"
        st.update(busy=False, status=f"{len(result.labels)} labels, {note}, {result.seconds * 1000:.0f} ms")
        self.session.app.clear_error()

    def _on_error(self, err) -> None:
        self._result_for = None
        self.session.label.update(busy=False, status="Failed")
        self._report(err)

    def _report(self, err) -> None:
        self.session.app.report_error(err.user_message, getattr(err, "detail", ""))

    def _locate(self, label: str) -> None:
        """A click on a bar shows where that label is (the Region tab)."""
        self.tabs.setCurrentWidget(self.region)
        self.region.run(label)

    def _labels_edited(self) -> None:
        self.session.label.labels_text = self.labels_edit.toPlainText()

    def _set_and_rerun(self, name: str, value) -> None:
        setattr(self.session.label, name, value)
        self._schedule()

    def _schedule(self, typed: bool = True) -> None:
        """Re-rank after a short pause: on typing, and, once the user has run it, on a new image or model."""
        app = self.session.app
        if app.workspace == "label" and app.image is not None and (typed or self._ran):
            self._timer.start()

    def _model_changed(self, index: int) -> None:
        self.session.label.set_model(self.model_combo.itemData(index) or "")
        self._result_for = None
        self._update_model_note()
        self._schedule(typed=False)

    def _update_model_note(self) -> None:
        try:
            card = self.session.catalog.get(self.session.label.model_id)
        except StudioError:
            self.model_note.setText("Add a CLIP model in Models > Manager to label images.")
            return
        if card.trained:
            self.model_note.setText(card.description)
            self.model_note.setStyleSheet("")
        else:
            self.model_note.setText("⚠ Untrained: random weights. The scores show the mechanics, "
                                    "not what the words mean.")
            self.model_note.setStyleSheet("color: #e0a020;")

    # -- state → widgets ------------------------------------------------------------------
    def _show_values(self) -> None:
        st = self.session.label
        self.temperature_value.setText(f"{st.temperature:.2f}")
        self.threshold_value.setText(f"{st.threshold:.2f}")
        self.temperature.setEnabled(st.scoring_mode() != "cosine")

    def _on_state(self, name: str, value) -> None:
        st = self.session.label
        if name in ("ranked", "verdict", "temperature", "threshold", "scoring"):
            self.bars.set_rows(st.ranked, st.scoring_mode(), st.threshold, st.none_of_these())
        if name in ("temperature", "threshold", "scoring"):
            self._show_values()
        elif name == "labels_text":
            if self.labels_edit.toPlainText() != value:
                self.labels_edit.setPlainText(value)
            self._schedule()
        elif name == "status":
            self.status.setText(value)
        elif name == "model_id":
            i = self.model_combo.findData(value)
            if i >= 0 and i != self.model_combo.currentIndex():
                self.model_combo.setCurrentIndex(i)

    def _on_app(self, name: str, value) -> None:
        if name == "image" or (name == "workspace" and value == "label"):
            self._schedule(typed=False)
        elif name == "workspace":
            self._timer.stop()
