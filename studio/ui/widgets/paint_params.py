"""The paint panel's Generate tab: prompt, negative prompt, sampler, steps, CFG, size, seed, batch,
the mode-specific settings (strength, mask blur, only-masked area, outpaint margins) and LoRA files.

Widgets write the paint state; state changes (a recipe applied, the journal restored) update the
widgets with their signals blocked, so nothing echoes back.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit,
                               QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from studio.core.paint_requests import MAX_BATCH, MAX_SEED, MAX_SIDE, MAX_STEPS, SCHEDULERS, LoraSpec, snap

OUTPAINT_SIDES = ("left", "top", "right", "bottom")


class _CtrlEnter(QObject):
    """Ctrl+Enter in a prompt box generates instead of adding a line."""

    def __init__(self, fire, parent) -> None:
        super().__init__(parent)
        self._fire = fire

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) \
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._fire()
            return True
        return False


def _spin(parent, name: str, lo: int, hi: int, step: int = 1, tip: str = "") -> QSpinBox:
    w = QSpinBox(parent)
    w.setObjectName(name)
    w.setRange(lo, hi)
    w.setSingleStep(step)
    w.setToolTip(tip)
    return w


def _dspin(parent, name: str, lo: float, hi: float, step: float, decimals: int = 2, tip: str = "") -> QDoubleSpinBox:
    w = QDoubleSpinBox(parent)
    w.setObjectName(name)
    w.setRange(lo, hi)
    w.setSingleStep(step)
    w.setDecimals(decimals)
    w.setToolTip(tip)
    return w


class PaintParams(QWidget):
    generate_requested = Signal()

    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("paint.params")
        self.session = session
        st = session.paint
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)

        self.prompt = QPlainTextEdit(self)
        self.prompt.setObjectName("paint.prompt")
        self.prompt.setPlaceholderText("Describe the image… (Ctrl+Enter generates)")
        self.prompt.setFixedHeight(84)
        self.negative = QPlainTextEdit(self)
        self.negative.setObjectName("paint.negative")
        self.negative.setPlaceholderText("Negative prompt: what to avoid")
        self.negative.setFixedHeight(52)
        keys = _CtrlEnter(self.generate_requested.emit, self)
        self.prompt.installEventFilter(keys)
        self.negative.installEventFilter(keys)
        lay.addWidget(QLabel("Prompt", self))
        lay.addWidget(self.prompt)
        lay.addWidget(self.negative)

        form = QFormLayout()
        self.scheduler = QComboBox(self)
        self.scheduler.setObjectName("paint.scheduler")
        self.scheduler.addItems(list(SCHEDULERS))
        self.steps = _spin(self, "paint.steps", 1, MAX_STEPS, tip="Denoising steps")
        self.cfg = _dspin(self, "paint.cfg", 0.0, 30.0, 0.5, 1, "Classifier-free guidance: how closely to follow "
                          "the prompt")
        form.addRow("Sampler", self.scheduler)
        form.addRow("Steps", self.steps)
        form.addRow("CFG scale", self.cfg)
        size_row = QHBoxLayout()
        self.width_spin = _spin(self, "paint.width", 16, MAX_SIDE, 8, "Width in pixels (multiple of 8)")
        self.height_spin = _spin(self, "paint.height", 16, MAX_SIDE, 8, "Height in pixels (multiple of 8)")
        self.size_from_image = QPushButton("From image", self)
        self.size_from_image.setObjectName("paint.size_from_image")
        self.size_from_image.setToolTip("Use the current image's size (rounded to multiples of 8)")
        size_row.addWidget(self.width_spin)
        size_row.addWidget(QLabel("×", self))
        size_row.addWidget(self.height_spin)
        size_row.addWidget(self.size_from_image)
        form.addRow("Size", size_row)
        seed_row = QHBoxLayout()
        # A double spin box with no decimals: seeds go up to 2**32 - 1, beyond a QSpinBox's int32.
        self.seed = _dspin(self, "paint.seed", -1, MAX_SEED, 1, 0, "-1: a new random seed each time")
        self.seed.setSpecialValueText("Random")
        self.seed_random = QPushButton("Random", self)
        self.seed_random.setObjectName("paint.seed_random")
        self.seed_random.setToolTip("Random seed for every generation")
        self.seed_reuse = QPushButton("Last", self)
        self.seed_reuse.setObjectName("paint.seed_reuse")
        self.seed_reuse.setToolTip("Reuse the last seed")
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.seed_random)
        seed_row.addWidget(self.seed_reuse)
        form.addRow("Seed", seed_row)
        self.batch = _spin(self, "paint.batch", 1, MAX_BATCH, tip="How many images, one after the other (seed, "
                           "seed+1, ...)")
        form.addRow("Batch count", self.batch)
        lay.addLayout(form)

        # Mode-specific settings: shown for the modes they apply to.
        self.mode_box = QGroupBox("Image settings", self)
        mform = QFormLayout(self.mode_box)
        self.strength = _dspin(self, "paint.strength", 0.01, 1.0, 0.05, 2, "Denoising strength: how much to "
                               "change (1 = repaint completely)")
        self.mask_blur = _spin(self, "paint.mask_blur", 0, 64, tip="Blur of the mask's edge, in pixels")
        self.only_masked = QCheckBox("Only the masked area (at full resolution)", self)
        self.only_masked.setObjectName("paint.only_masked")
        self.masked_padding = _spin(self, "paint.masked_padding", 0, 256, 4, "Context around the masked area")
        self.outpaint = {}
        out_row = QHBoxLayout()
        for side in OUTPAINT_SIDES:
            spin = _spin(self, f"paint.outpaint_{side}", 0, 1024, 8, f"Pixels added on the {side}")
            self.outpaint[side] = spin
            out_row.addWidget(QLabel(side[0].upper(), self))
            out_row.addWidget(spin)
        self._mode_rows = {
            "strength": ("Denoising", self.strength), "mask_blur": ("Mask blur", self.mask_blur),
            "only_masked": ("", self.only_masked), "masked_padding": ("Padding", self.masked_padding)}
        for label, w in self._mode_rows.values():
            mform.addRow(label, w) if label else mform.addRow(w)
        self.outpaint_label = QLabel("Extend", self)
        mform.addRow(self.outpaint_label, out_row)
        self._mode_form = mform
        lay.addWidget(self.mode_box)

        loras = QGroupBox("LoRA", self)
        ll = QVBoxLayout(loras)
        self.lora_table = QTableWidget(0, 2, loras)
        self.lora_table.setObjectName("paint.loras")
        self.lora_table.setHorizontalHeaderLabels(["File", "Weight"])
        self.lora_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.lora_table.verticalHeader().setVisible(False)
        self.lora_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.lora_table.setFixedHeight(80)
        row = QHBoxLayout()
        self.lora_add = QPushButton("Add…", loras)
        self.lora_add.setObjectName("paint.lora_add")
        self.lora_remove = QPushButton("Remove", loras)
        self.lora_remove.setObjectName("paint.lora_remove")
        row.addWidget(self.lora_add)
        row.addWidget(self.lora_remove)
        row.addStretch(1)
        ll.addWidget(self.lora_table)
        ll.addLayout(row)
        lay.addWidget(loras)
        lay.addStretch(1)

        self._syncing = False
        self.sync_from_state()
        self.prompt.textChanged.connect(lambda: self._set("prompt", self.prompt.toPlainText()))
        self.negative.textChanged.connect(lambda: self._set("negative_prompt", self.negative.toPlainText()))
        self.scheduler.currentTextChanged.connect(lambda v: self._set("scheduler", v))
        self.steps.valueChanged.connect(lambda v: self._set("steps", v))
        self.cfg.valueChanged.connect(lambda v: self._set("cfg_scale", float(v)))
        self.width_spin.valueChanged.connect(lambda v: self._set("width", v))
        self.height_spin.valueChanged.connect(lambda v: self._set("height", v))
        self.seed.valueChanged.connect(lambda v: self._set("seed", int(v)))
        self.batch.valueChanged.connect(lambda v: self._set("batch_count", v))
        self.strength.valueChanged.connect(lambda v: self._set("strength", float(v)))
        self.mask_blur.valueChanged.connect(lambda v: self._set("mask_blur", v))
        self.only_masked.toggled.connect(lambda v: self._set("only_masked", bool(v)))
        self.masked_padding.valueChanged.connect(lambda v: self._set("masked_padding", v))
        for spin in self.outpaint.values():
            spin.valueChanged.connect(self._outpaint_changed)
        self.size_from_image.clicked.connect(self.use_image_size)
        self.seed_random.clicked.connect(lambda: self.seed.setValue(-1))
        self.seed_reuse.clicked.connect(self.reuse_seed)
        self.lora_add.clicked.connect(self.add_lora_dialog)
        self.lora_remove.clicked.connect(self.remove_lora)
        self.lora_table.itemChanged.connect(self._lora_edited)
        st.changed.connect(self._on_state)

    # -- widgets -> state ------------------------------------------------------------------
    def _set(self, name: str, value) -> None:
        if not self._syncing:
            setattr(self.session.paint, name, value)

    def _outpaint_changed(self) -> None:
        self._set("outpaint", tuple(self.outpaint[s].value() for s in OUTPAINT_SIDES))

    def use_image_size(self) -> None:
        img = self.session.app.image
        if img is None:
            self.session.app.report_error("There is no image to take the size from.")
            return
        self.width_spin.setValue(min(MAX_SIDE, snap(img.width)))
        self.height_spin.setValue(min(MAX_SIDE, snap(img.height)))

    def reuse_seed(self) -> None:
        last = self.session.paint.last_seed
        if last is None:
            self.session.app.message = "No image has been generated yet: there is no last seed."
            return
        self.seed.setValue(int(last))

    def add_lora_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a LoRA", str(Path.home()), "LoRA (*.safetensors)")
        if path:
            self.add_lora(path)

    def add_lora(self, path: str, weight: float = 1.0) -> None:
        st = self.session.paint
        if any(lo.path == path for lo in st.loras):
            return
        st.loras = (*st.loras, LoraSpec(str(path), float(weight)))

    def remove_lora(self) -> None:
        rows = {i.row() for i in self.lora_table.selectedIndexes()}
        if not rows and self.lora_table.rowCount():
            rows = {self.lora_table.rowCount() - 1}
        st = self.session.paint
        st.loras = tuple(lo for i, lo in enumerate(st.loras) if i not in rows)

    def _lora_edited(self, item: QTableWidgetItem) -> None:
        if self._syncing or item.column() != 1:
            return
        st = self.session.paint
        loras = list(st.loras)
        try:
            weight = float(item.text())
        except ValueError:
            self.session.app.report_error(f"“{item.text()}” is not a number: LoRA weights are like 0.8.")
            self._fill_loras()
            return
        loras[item.row()] = LoraSpec(loras[item.row()].path, weight)
        st.loras = tuple(loras)

    # -- state -> widgets ------------------------------------------------------------------
    def sync_from_state(self) -> None:
        st = self.session.paint
        self._syncing = True
        try:
            if self.prompt.toPlainText() != st.prompt:
                self.prompt.setPlainText(st.prompt)
            if self.negative.toPlainText() != st.negative_prompt:
                self.negative.setPlainText(st.negative_prompt)
            self.scheduler.setCurrentText(st.scheduler)
            self.steps.setValue(st.steps)
            self.cfg.setValue(st.cfg_scale)
            self.width_spin.setValue(st.width)
            self.height_spin.setValue(st.height)
            self.seed.setValue(st.seed)
            self.batch.setValue(st.batch_count)
            self.strength.setValue(st.strength)
            self.mask_blur.setValue(st.mask_blur)
            self.only_masked.setChecked(st.only_masked)
            self.masked_padding.setValue(st.masked_padding)
            for side, v in zip(OUTPAINT_SIDES, st.outpaint):
                self.outpaint[side].setValue(v)
            self._fill_loras()
        finally:
            self._syncing = False
        self._show_mode(st.mode)

    def _fill_loras(self) -> None:
        was, self._syncing = self._syncing, True
        loras = self.session.paint.loras
        self.lora_table.setRowCount(len(loras))
        for i, lo in enumerate(loras):
            name = QTableWidgetItem(Path(lo.path).name)
            name.setToolTip(lo.path)
            name.setFlags(name.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.lora_table.setItem(i, 0, name)
            self.lora_table.setItem(i, 1, QTableWidgetItem(f"{lo.weight:g}"))
        self._syncing = was

    def _show_mode(self, mode: str) -> None:
        show = {"strength": mode in ("img2img", "inpaint"), "mask_blur": mode in ("inpaint", "outpaint"),
                "only_masked": mode == "inpaint", "masked_padding": mode == "inpaint"}
        for key, (_, w) in self._mode_rows.items():
            self._mode_form.setRowVisible(w, show[key])
        self._mode_form.setRowVisible(self.outpaint_label, mode == "outpaint")
        self.mode_box.setVisible(mode != "txt2img")
        sized = mode != "outpaint"
        self.width_spin.setEnabled(sized)
        self.height_spin.setEnabled(sized)

    def _on_state(self, name: str, value) -> None:
        if name == "mode":
            self._show_mode(value)
        elif name == "loras":
            self._fill_loras()
        elif name in ("prompt", "negative_prompt", "scheduler", "steps", "cfg_scale", "width", "height", "seed",
                      "batch_count", "strength", "mask_blur", "only_masked", "masked_padding", "outpaint"):
            if not self._syncing:
                self.sync_from_state()
