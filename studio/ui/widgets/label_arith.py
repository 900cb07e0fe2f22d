"""The label workspace's Arithmetic tab: images A, B (and C) from the canvas, the nearest words of
A - B (+ C) in the shipped vocabulary, optional modality-gap centring, and the nearest loaded images."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from studio.core.label_requests import ArithmeticRequest
from studio.ui.convert import array_to_pixmap
from studio.ui.widgets.label_batch import name_headers

ARITH_KEY = "label.arithmetic"
SLOT_VIEW = 56


def _name(image, slot: str) -> str:
    src = Path(image.source).name if image is not None and image.source else ""
    return f"{slot.upper()}: {src}" if src else slot.upper()


class LabelArithmeticWidget(QWidget):
    def __init__(self, session, window, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("label.arithmetic_panel")
        self.session = session
        self.window_ = window
        st = session.label
        lay = QVBoxLayout(self)
        intro = QLabel("Which words does the difference between two images mean? "
                       "Set A and B from the canvas (C is optional).", self)
        intro.setWordWrap(True)
        lay.addWidget(intro)

        grid = QGridLayout()
        self.views: dict[str, QLabel] = {}
        self.set_buttons: dict[str, QPushButton] = {}
        for r, slot in enumerate(("a", "b", "c")):
            sign = {"a": "", "b": "−", "c": "+"}[slot]
            grid.addWidget(QLabel(f"{sign} {slot.upper()}", self), r, 0)
            view = QLabel("empty", self)
            view.setObjectName(f"label.slot_{slot}")
            view.setFixedSize(SLOT_VIEW, SLOT_VIEW)
            view.setAlignment(Qt.AlignmentFlag.AlignCenter)
            view.setStyleSheet("background: #202024; color: gray;")
            grid.addWidget(view, r, 1)
            btn = QPushButton("Use current image", self)
            btn.setObjectName(f"label.set_{slot}")
            btn.clicked.connect(lambda _=False, s=slot: self.set_slot(s))
            grid.addWidget(btn, r, 2)
            self.views[slot], self.set_buttons[slot] = view, btn
        self.clear_c = QPushButton("Clear C", self)
        self.clear_c.setObjectName("label.clear_c")
        self.clear_c.clicked.connect(lambda: setattr(st, "slot_c", None))
        grid.addWidget(self.clear_c, 2, 3)
        lay.addLayout(grid)

        self.centre_check = QCheckBox("Centre embeddings (remove the modality gap)", self)
        self.centre_check.setObjectName("label.centre")
        self.centre_check.setToolTip("Subtract the mean image embedding from image vectors and the mean "
                                     "word embedding from word vectors, then renormalise.")
        self.centre_check.setChecked(st.centre)
        lay.addWidget(self.centre_check)
        self.probe_edit = QLineEdit(self)
        self.probe_edit.setObjectName("label.probes")
        self.probe_edit.setPlaceholderText("Words to compare, e.g. red, blue")
        self.probe_edit.setText(st.probes)
        lay.addWidget(self.probe_edit)
        self.run_button = QPushButton("Find words for A − B (+ C)", self)
        self.run_button.setObjectName("label.run_arithmetic")
        lay.addWidget(self.run_button)
        self.status = QLabel("", self)
        self.status.setObjectName("label.arith_status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        self.words = QTableWidget(0, 2, self)
        self.words.setObjectName("label.words")
        self.words.setHorizontalHeaderLabels(["Nearest word", "Cosine"])
        self.words.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.words.verticalHeader().setVisible(False)
        self.words.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        name_headers(self.words)
        lay.addWidget(self.words, 2)
        self.neighbours = QTableWidget(0, 2, self)
        self.neighbours.setObjectName("label.neighbours")
        self.neighbours.setHorizontalHeaderLabels(["Nearest loaded image", "Cosine"])
        self.neighbours.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.neighbours.verticalHeader().setVisible(False)
        self.neighbours.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        name_headers(self.neighbours)
        lay.addWidget(self.neighbours, 1)

        self.centre_check.toggled.connect(lambda on: setattr(st, "centre", on))
        self.probe_edit.textChanged.connect(lambda t: setattr(st, "probes", t))
        self.run_button.clicked.connect(self.run)
        st.changed.connect(self._on_state)

    def set_slot(self, slot: str, image=None) -> None:
        image = image if image is not None else self.session.app.image
        if image is None:
            self.session.app.report_error("Open an image first, then use it as " + slot.upper() + ".")
            return
        setattr(self.session.label, f"slot_{slot}", image)

    def run(self) -> None:
        s, st = self.session, self.session.label
        if st.slot_a is None or st.slot_b is None:
            s.app.report_error("Set images A and B first (open an image, then “Use current image”).")
            return
        if not st.model_id:
            s.app.report_error("There is no CLIP model to run: add one in Models > Manager.")
            return
        names = (_name(st.slot_a, "a"), _name(st.slot_b, "b"), _name(st.slot_c, "c"))
        req = ArithmeticRequest(model_id=st.model_id, a=st.slot_a, b=st.slot_b, c=st.slot_c, names=names,
                                centre=st.centre, probes=st.probe_words(), pool=st.pool_items(st.model_id))
        st.update(arith_busy=True, arith_status="Running…")
        s.runtime.submit(req, key=ARITH_KEY, title="Embedding arithmetic", on_result=self._on_result,
                         on_error=self._on_error,
                         on_progress=lambda f, t: setattr(st, "arith_status", t),
                         on_cancelled=lambda: st.update(arith_busy=False, arith_status="Cancelled"))

    def _on_result(self, result) -> None:
        st = self.session.label
        st.set_arithmetic(result)
        probes = ", ".join(f"{w} {v:+.3f}" for w, v in result.probes)
        st.update(arith_busy=False, arith_status=(
            f"{result.expression}: {result.vocabulary_size} words{' (centred)' if result.centred else ''}, "
            f"{result.seconds:.2f} s" + (f"<br>Compared: {probes}" if probes else "")))

    def _on_error(self, err) -> None:
        self.session.label.update(arith_busy=False, arith_status="Failed")
        self.session.app.report_error(err.user_message, getattr(err, "detail", ""))

    # -- state → widgets ------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        if name.startswith("slot_"):
            self._show_slot(name[-1], value)
        elif name == "arith_busy":
            self.run_button.setEnabled(not value)
        elif name == "arith_status":
            self.status.setText(value)
        elif name == "centre" and self.centre_check.isChecked() != value:
            self.centre_check.setChecked(value)
        elif name == "arithmetic":
            self._fill(self.words, value.words if value else ())
            self._fill(self.neighbours, value.neighbours if value else ())

    def _show_slot(self, slot: str, image) -> None:
        view = self.views[slot]
        if image is None:
            view.clear()
            view.setText("empty")
            return
        pix = array_to_pixmap(image.rgb())
        view.setPixmap(pix.scaled(SLOT_VIEW, SLOT_VIEW, Qt.AspectRatioMode.KeepAspectRatio,
                                  Qt.TransformationMode.SmoothTransformation))
        view.setToolTip(image.source or "pasted image")

    @staticmethod
    def _fill(table: QTableWidget, rows) -> None:
        table.setRowCount(len(rows))
        for r, (text, score) in enumerate(rows):
            table.setItem(r, 0, QTableWidgetItem(text))
            table.setItem(r, 1, QTableWidgetItem(f"{score:+.3f}"))


