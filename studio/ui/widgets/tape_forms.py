"""The frame tape panel's tabs: Generate (model, prompt, prompt and image keyframes, size, length,
steps, seed), Edit (in/out range, range re-render, paint round trip, onion skin, in-betweening), Files
(import and export) and Check (consistency diagnostics). Each form binds its widgets to TapeState both
ways and exposes its buttons; the panel connects them to jobs.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QPushButton, QSlider,
                               QSpinBox, QVBoxLayout, QWidget)

from studio.catalog import store
from studio.core.paths import assets_dir
from studio.core.tape_requests import (ANIMATEDIFF, EXPORT_FORMATS, EXPORT_LABELS, IMAGE_KEYS, INTERPOLATORS,
                                       MAX_FRAMES, MAX_SEED, MAX_SIDE, MAX_STEPS, MIN_SIDE, SIDE_STEP, TRAVEL_LABELS,
                                       TRAVEL_MODES, VIDEO_TASKS, native_settings, pipeline_of)
from studio.state.tape_state import MAX_ONION_DEPTH

MOTION_DEFAULTS = ("starter-motion",)
BASE_DEFAULTS = ("starter-sd", "sd15")


def card_ready(card) -> bool:
    """Whether a card's files are on disk (reads the disk only, never the network)."""
    try:
        return store.status(card, assets_dir()).ready
    except Exception:  # a malformed card must not break the panel; the engine will say what is wrong
        return False


def _named(widget, name: str, tip: str = ""):
    widget.setObjectName(name)
    if tip:
        widget.setToolTip(tip)
    return widget


def spin(parent, name: str, lo: int, hi: int, tip: str = "", special: str = "", step: int = 1) -> QSpinBox:
    w = _named(QSpinBox(parent), name, tip)
    w.setRange(lo, hi)
    w.setSingleStep(step)
    w.setKeyboardTracking(False)
    if special:
        w.setSpecialValueText(special)
    return w


def dspin(parent, name: str, lo: float, hi: float, step: float, tip: str = "") -> QDoubleSpinBox:
    w = _named(QDoubleSpinBox(parent), name, tip)
    w.setRange(lo, hi)
    w.setSingleStep(step)
    w.setDecimals(2)
    w.setKeyboardTracking(False)
    return w


def button(parent, name: str, text: str, tip: str = "") -> QPushButton:
    return _named(QPushButton(text, parent), name, tip)


class _Bound(QWidget):
    """Two-way binding of simple widgets to TapeState fields."""

    def __init__(self, state, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self._binds: dict[str, tuple] = {}
        state.changed.connect(self._from_state)

    def bind(self, field: str, widget, cast=None) -> None:
        cast = cast or (lambda v: v)
        self._binds[field] = (widget, cast)
        if isinstance(widget, QSpinBox):
            widget.setValue(int(round(getattr(self.state, field))))
            widget.valueChanged.connect(lambda v: setattr(self.state, field, cast(v)))
        elif isinstance(widget, QDoubleSpinBox):
            widget.setValue(float(getattr(self.state, field)))
            widget.valueChanged.connect(lambda v: setattr(self.state, field, cast(v)))
        elif isinstance(widget, QLineEdit):
            widget.setText(getattr(self.state, field))
            widget.textChanged.connect(lambda v: setattr(self.state, field, v))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(getattr(self.state, field)))
            widget.toggled.connect(lambda v: setattr(self.state, field, bool(v)))
        elif isinstance(widget, QComboBox):
            widget.setCurrentIndex(max(0, widget.findData(getattr(self.state, field))))
            widget.currentIndexChanged.connect(lambda i: setattr(self.state, field, widget.itemData(i)))

    def _from_state(self, name: str, value) -> None:
        if name not in self._binds:
            return
        widget, _ = self._binds[name]
        widget.blockSignals(True)
        try:
            if isinstance(widget, QSpinBox):
                widget.setValue(int(round(value)))
            elif isinstance(widget, QDoubleSpinBox):
                widget.setValue(float(value))
            elif isinstance(widget, QLineEdit) and widget.text() != value:
                widget.setText(value)
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, QComboBox):
                widget.setCurrentIndex(max(0, widget.findData(value)))
        finally:
            widget.blockSignals(False)


class GenerateForm(_Bound):
    def __init__(self, state, catalog, parent=None) -> None:
        super().__init__(state, parent)
        self.setObjectName("tape.generate_tab")
        self.catalog = catalog
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.model = _named(QComboBox(self), "tape.model", "Motion adapters (run on an image model) and video models")
        self.base = _named(QComboBox(self), "tape.base_model", "The Stable Diffusion 1.5 model a motion adapter animates")
        for w in (self.model, self.base):
            w.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            w.setMinimumContentsLength(14)
        self._fill_models()
        self.note = _named(QLabel(self), "tape.model_note")
        self.note.setWordWrap(True)
        self.prompt = _named(QLineEdit(self), "tape.prompt", "What happens in the clip (the prompt of frame 1)")
        self.prompt.setPlaceholderText("a red circle moving right")
        self.negative = _named(QLineEdit(self), "tape.negative_prompt", "What to avoid")
        self.negative.setPlaceholderText("blurry, low quality")
        form.addRow("Model", self.model)
        form.addRow("Animates", self.base)
        form.addRow(self.note)
        form.addRow("Prompt", self.prompt)
        form.addRow("Negative", self.negative)
        lay.addLayout(form)

        grid = QGridLayout()
        self.frames = spin(self, "tape.frames", 2, MAX_FRAMES, "Frames in the clip")
        self.fps = spin(self, "tape.fps", 1, 120, "Playback speed (frames per second)")
        self.width_ = spin(self, "tape.width", MIN_SIDE, MAX_SIDE, "Width in pixels (multiple of 8)", step=SIDE_STEP)
        self.height_ = spin(self, "tape.height", MIN_SIDE, MAX_SIDE, "Height in pixels (multiple of 8)", step=SIDE_STEP)
        self.steps = spin(self, "tape.steps", 1, MAX_STEPS, "Denoising steps")
        self.cfg = dspin(self, "tape.cfg", 0.0, 30.0, 0.5, "Classifier-free guidance scale")
        self.seed = spin(self, "tape.seed", -1, min(MAX_SEED, 2**31 - 1), "Seed (-1: random each time)", "Random")
        self.window_spin = spin(self, "tape.window", 0, 256, "Frames the model sees at once; longer clips run in "
                           "overlapping windows (0: the model's length, smaller if memory is short)", "Auto")
        for i, (label, w) in enumerate((("Frames", self.frames), ("FPS", self.fps), ("Width", self.width_),
                                        ("Height", self.height_), ("Steps", self.steps), ("CFG", self.cfg),
                                        ("Seed", self.seed), ("Window", self.window_spin))):
            w.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
            grid.addWidget(QLabel(label, self), i // 2, (i % 2) * 2)
            grid.addWidget(w, i // 2, (i % 2) * 2 + 1)
        lay.addLayout(grid)

        keys = QGroupBox("Prompt keyframes (prompt travel)", self)
        kl = QGridLayout(keys)
        self.travel = _named(QComboBox(keys), "tape.travel", "How the prompt changes between keys")
        for m in TRAVEL_MODES:
            self.travel.addItem(TRAVEL_LABELS[m], m)
        self.key_prompt = _named(QLineEdit(keys), "tape.key_prompt", "The prompt from the playhead's frame on")
        self.key_prompt.setPlaceholderText("prompt from the playhead on…")
        self.key_seed = spin(keys, "tape.key_seed", -1, min(MAX_SEED, 2**31 - 1),
                             "Seed of the segment starting at this key (-1: the clip's seed)", "Clip seed")
        self.key_seed.setValue(-1)
        self.add_key = button(keys, "tape.add_key", "Add key", "Add a prompt key at the playhead")
        self.remove_key = button(keys, "tape.remove_key", "Remove", "Remove the selected key")
        self.keys = _named(QListWidget(keys), "tape.keys", "Prompt keys: frame, prompt, seed")
        self.keys.setMaximumHeight(70)
        kl.addWidget(self.travel, 0, 0, 1, 3)
        kl.addWidget(self.key_prompt, 1, 0, 1, 3)
        kl.addWidget(self.key_seed, 2, 0)
        kl.addWidget(self.add_key, 2, 1)
        kl.addWidget(self.remove_key, 2, 2)
        kl.addWidget(self.keys, 3, 0, 1, 3)
        lay.addWidget(keys)

        images = QGroupBox("Image keyframes", self)
        il = QGridLayout(images)
        self.first_image = button(images, "tape.first_image", "First ← canvas", "Use the canvas image as the first frame")
        self.last_image = button(images, "tape.last_image", "Last ← canvas", "Use the canvas image as the last frame")
        self.clear_images = button(images, "tape.clear_images", "Clear", "Forget the image keyframes")
        self.image_strength = dspin(images, "tape.image_strength", 0.05, 1.0, 0.05,
                                    "How far the clip may move away from the image keyframes (AnimateDiff)")
        self.image_info = _named(QLabel("None", images), "tape.image_keys_info")
        il.addWidget(self.first_image, 0, 0)
        il.addWidget(self.last_image, 0, 1)
        il.addWidget(self.clear_images, 0, 2)
        il.addWidget(QLabel("Strength", images), 1, 0)
        il.addWidget(self.image_strength, 1, 1)
        il.addWidget(self.image_info, 1, 2)
        lay.addWidget(images)

        row = QHBoxLayout()
        self.generate = button(self, "tape.generate", "Generate", "Render the clip (Ctrl+Return)")
        self.generate.setShortcut("Ctrl+Return")
        self.cancel = button(self, "tape.cancel", "Cancel", "Stop the render (within one step)")
        self.cancel.setEnabled(False)
        row.addWidget(self.generate, 2)
        row.addWidget(self.cancel, 1)
        lay.addLayout(row)
        lay.addStretch(1)

        for field, w, cast in (("prompt", self.prompt, None), ("negative_prompt", self.negative, None),
                               ("num_frames", self.frames, int), ("fps", self.fps, float),
                               ("width", self.width_, int), ("height", self.height_, int), ("steps", self.steps, int),
                               ("cfg_scale", self.cfg, float), ("seed", self.seed, int), ("window", self.window_spin, int),
                               ("travel", self.travel, None), ("image_strength", self.image_strength, float)):
            self.bind(field, w, cast)
        self.model.currentIndexChanged.connect(self._model_chosen)
        self.base.currentIndexChanged.connect(lambda i: setattr(state, "base_id", self.base.itemData(i) or ""))
        state.changed.connect(self._on_state)
        self._choose_defaults()
        self._refresh_keys()

    # -- models ----------------------------------------------------------------------------
    def _fill_models(self) -> None:
        self.model.clear()
        for task in VIDEO_TASKS:
            for card in self.catalog.cards(task):
                ready = card_ready(card)
                self.model.addItem(card.name + ("" if ready else " (not downloaded)"), card.id)
        if not self.model.count():
            self.model.addItem("(no video model in the catalog)", "")
            self.model.setEnabled(False)
        self.base.clear()
        for card in self.catalog.cards("diffusion"):
            self.base.addItem(card.name + ("" if card_ready(card) else " (not downloaded)"), card.id)

    def _choose_defaults(self) -> None:
        st = self.state
        ids = [self.model.itemData(i) for i in range(self.model.count())]
        if st.model_id not in ids:
            ids = [c for c in ids if c]
            ready = [c for c in ids if card_ready(self.catalog.get(c))]
            named = [c for c in MOTION_DEFAULTS if c in ready]
            motion = [c for c in ready if self.catalog.get(c).task == "motion"]
            st.model_id = (named or motion or ready or ids or [""])[0]
        self.model.setCurrentIndex(max(0, self.model.findData(st.model_id)))
        self._model_chosen(self.model.currentIndex(), initial=True)

    def _default_base(self, card) -> str:
        ids = [self.base.itemData(i) for i in range(self.base.count())]
        wanted = str(card.options.get("base", "")) if card is not None else ""
        for cand in (wanted, *BASE_DEFAULTS):
            if cand and cand in ids:
                return cand
        ready = [c for c in ids if card_ready(self.catalog.get(c))]
        return (ready or ids or [""])[0]

    def _model_chosen(self, index: int, initial: bool = False) -> None:
        st = self.state
        model_id = self.model.itemData(index) or ""
        card = self.catalog.get(model_id) if model_id in self.catalog else None
        st.model_id = model_id
        motion = card is not None and pipeline_of(card) == ANIMATEDIFF
        self.base.setEnabled(motion)
        # An adapter whose card names its image model (options.base) was trained on that UNet: switch
        # to it; otherwise keep the user's base when it still exists.
        if motion and (initial or st.base_id not in self.catalog or not st.base_id or card.options.get("base")):
            st.base_id = self._default_base(card)
        if motion:
            self.base.setCurrentIndex(max(0, self.base.findData(st.base_id)))
        if card is not None:
            # A new model starts at its native size, length and speed.
            native = native_settings(card)
            st.update(width=native["width"], height=native["height"], num_frames=native["frames"],
                      steps=native["steps"], fps=float(native["fps"]))
        self._update_note(card)

    def _update_note(self, card) -> None:
        if card is None:
            self.note.setText("")
            return
        cls = pipeline_of(card)
        keys = IMAGE_KEYS.get(cls, ())
        kind = "motion adapter (AnimateDiff)" if cls == ANIMATEDIFF else cls.replace("Pipeline", "")
        ready = "" if card_ready(card) else " Not downloaded: Models > Manager > Download."
        imgs = ("image keyframes: " + " and ".join(keys)) if keys else "text only"
        self.note.setText(f"{kind}; {imgs}.{ready}")
        self.first_image.setEnabled("first" in keys)
        self.last_image.setEnabled("last" in keys)
        self.image_strength.setEnabled(cls == ANIMATEDIFF)

    # -- state -----------------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        if name == "keys":
            self._refresh_keys()
        elif name in ("first_image", "last_image"):
            st = self.state
            parts = [f"{w} {img.width}×{img.height}" for w, img in (("first", st.first_image), ("last", st.last_image))
                     if img is not None]
            self.image_info.setText(", ".join(parts) or "None")
        elif name == "busy":
            self.generate.setEnabled(not value)
            self.cancel.setEnabled(bool(value))

    def _refresh_keys(self) -> None:
        self.keys.clear()
        for k in self.state.keys:
            seed = "" if k.seed is None else f" · seed {k.seed}"
            self.keys.addItem(f"{k.frame + 1}: {k.prompt}{seed}")
            self.keys.item(self.keys.count() - 1).setData(Qt.ItemDataRole.UserRole, k.frame)

    def selected_key(self) -> int | None:
        item = self.keys.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))


class EditForm(_Bound):
    def __init__(self, state, catalog, parent=None) -> None:
        super().__init__(state, parent)
        self.setObjectName("tape.edit_tab")
        lay = QVBoxLayout(self)
        rng = QGroupBox("Range (I / O on the tape, or Shift+drag)", self)
        rl = QGridLayout(rng)
        self.set_in = button(rng, "tape.set_in", "In", "Start the range at the playhead (I)")
        self.set_out = button(rng, "tape.set_out", "Out", "End the range at the playhead (O)")
        self.clear_range = button(rng, "tape.clear_range", "Clear", "Select no range (Esc on the tape)")
        self.delete_range = button(rng, "tape.delete_range", "Delete frames", "Delete the frames of the range")
        self.range_info = _named(QLabel("Whole clip", rng), "tape.range_info")
        self.strength = dspin(rng, "tape.strength", 0.05, 1.0, 0.05, "How much of the range is repainted")
        self.context = spin(rng, "tape.context", 0, 64, "Frames either side the model sees as context (kept as they are)")
        self.rerender = button(rng, "tape.rerender", "Re-render range", "Video-to-video on the range with its "
                               "neighbours as context; only the selected frames change")
        rl.addWidget(self.set_in, 0, 0)
        rl.addWidget(self.set_out, 0, 1)
        rl.addWidget(self.clear_range, 0, 2)
        rl.addWidget(self.range_info, 1, 0, 1, 2)
        rl.addWidget(self.delete_range, 1, 2)
        rl.addWidget(QLabel("Strength", rng), 2, 0)
        rl.addWidget(self.strength, 2, 1)
        rl.addWidget(QLabel("Context", rng), 3, 0)
        rl.addWidget(self.context, 3, 1)
        rl.addWidget(self.rerender, 2, 2, 2, 1)
        lay.addWidget(rng)

        paint = QGroupBox("One frame in paint", self)
        pl = QHBoxLayout(paint)
        self.open_in_paint = button(paint, "tape.open_in_paint", "Open in paint", "Edit the playhead's frame in paint")
        self.take_from_canvas = button(paint, "tape.take_from_canvas", "Take frame from canvas",
                                       "Put the canvas image back into the tape (the frame sent to paint, "
                                       "else the playhead's)")
        pl.addWidget(self.open_in_paint)
        pl.addWidget(self.take_from_canvas)
        lay.addWidget(paint)

        onion = QGroupBox("Onion skin", self)
        ol = QGridLayout(onion)
        self.onion = _named(QCheckBox("Show neighbours", onion), "tape.onion",
                            "Ghost the previous (red) and next (blue) frames over the canvas")
        self.onion_depth = spin(onion, "tape.onion_depth", 1, MAX_ONION_DEPTH, "Frames ghosted either side")
        self.onion_opacity = _named(QSlider(Qt.Orientation.Horizontal, onion), "tape.onion_opacity",
                                    "Opacity of the ghosts")
        self.onion_opacity.setRange(5, 100)
        ol.addWidget(self.onion, 0, 0)
        ol.addWidget(QLabel("Depth", onion), 0, 1)
        ol.addWidget(self.onion_depth, 0, 2)
        ol.addWidget(QLabel("Opacity", onion), 1, 0)
        ol.addWidget(self.onion_opacity, 1, 1, 1, 2)
        lay.addWidget(onion)

        tween = QGroupBox("In-between", self)
        tl = QGridLayout(tween)
        self.inbetween_count = spin(tween, "tape.inbetween_count", 1, 64, "Frames to insert")
        self.inbetween_method = _named(QComboBox(tween), "tape.inbetween_method", "How the new frames are made")
        self.inbetween_method.addItem("Optical flow (Farneback)", "farneback")
        for name in ("rife", "film"):
            self.inbetween_method.addItem(name.upper(), name)
            item = self.inbetween_method.model().item(self.inbetween_method.count() - 1)
            if name not in INTERPOLATORS:
                item.setEnabled(False)
                item.setToolTip(f"{name.upper()} is not installed: add its model in Models > Manager")
        self.inbetween = button(tween, "tape.inbetween", "Insert between playhead and next",
                                "Insert frames between the playhead's frame and the next one")
        tl.addWidget(QLabel("Frames", tween), 0, 0)
        tl.addWidget(self.inbetween_count, 0, 1)
        tl.addWidget(self.inbetween_method, 0, 2)
        tl.addWidget(self.inbetween, 1, 0, 1, 3)
        lay.addWidget(tween)
        lay.addStretch(1)

        self.bind("strength", self.strength, float)
        self.bind("context", self.context, int)
        self.bind("onion", self.onion)
        self.bind("onion_depth", self.onion_depth, int)
        self.bind("inbetween_count", self.inbetween_count, int)
        self.onion_opacity.setValue(int(round(state.onion_opacity * 100)))
        self.onion_opacity.valueChanged.connect(lambda v: setattr(state, "onion_opacity", v / 100.0))
        state.changed.connect(self._on_state)

    def _on_state(self, name: str, value) -> None:
        if name in ("in_point", "out_point", "frames"):
            st = self.state
            if st.has_range() and st.count:
                lo, hi = st.range()
                self.range_info.setText(f"Frames {lo + 1}–{hi + 1} ({hi - lo + 1})")
            else:
                self.range_info.setText("Whole clip")
        elif name == "onion_opacity":
            self.onion_opacity.blockSignals(True)
            self.onion_opacity.setValue(int(round(value * 100)))
            self.onion_opacity.blockSignals(False)


class FilesForm(QWidget):
    def __init__(self, state, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("tape.files_tab")
        self.state = state
        lay = QVBoxLayout(self)
        imp = QGroupBox("Import", self)
        il = QHBoxLayout(imp)
        self.import_file = button(imp, "tape.import", "Video or images…", "Import an MP4, WebM, GIF or image files")
        self.import_folder = button(imp, "tape.import_folder", "Image folder…", "Import every image of a folder, in order")
        il.addWidget(self.import_file)
        il.addWidget(self.import_folder)
        lay.addWidget(imp)
        exp = QGroupBox("Export", self)
        el = QFormLayout(exp)
        self.export_format = _named(QComboBox(exp), "tape.export_format", "File format")
        for f in EXPORT_FORMATS:
            self.export_format.addItem(EXPORT_LABELS[f], f)
        self.export_fps = dspin(exp, "tape.export_fps", 1.0, 120.0, 1.0, "Frames per second of the file")
        self.export_fps.setValue(state.fps)
        self.export = button(exp, "tape.export", "Export…", "Write the clip, with its recipe in a .json beside it")
        self.export_info = _named(QLabel("", exp), "tape.export_info")
        self.export_info.setWordWrap(True)
        el.addRow("Format", self.export_format)
        el.addRow("FPS", self.export_fps)
        el.addRow(self.export)
        el.addRow(self.export_info)
        lay.addWidget(exp)
        lay.addStretch(1)
        state.changed.connect(lambda name, value: self.export_fps.setValue(float(value)) if name == "fps" else None)


class CheckForm(QWidget):
    def __init__(self, state, catalog, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("tape.check_tab")
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.metric_combo = _named(QComboBox(self), "tape.check_metric",
                             "Similarity of consecutive frames: pixels (SSIM), or a CLIP model's image embeddings")
        self.metric_combo.addItem("Pixels (SSIM)", "ssim")
        for card in catalog.cards("clip"):
            if card_ready(card):
                self.metric_combo.addItem(f"CLIP: {card.name}", f"clip:{card.id}")
        self.check = button(self, "tape.check", "Check consistency",
                            "Frame-to-frame similarity and optical-flow warping error: the sparkline under the tape")
        self.info = _named(QLabel("The sparkline under the tape shows where the clip jumps; click a spike to go "
                                  "there.", self), "tape.check_info")
        self.info.setWordWrap(True)
        form.addRow("Metric", self.metric_combo)
        lay.addLayout(form)
        lay.addWidget(self.check)
        lay.addWidget(self.info)
        lay.addStretch(1)
