"""Inspect workspace panel: patch-grid overlay and CNN feature maps."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from studio.core.colormap import COLORMAPS, mosaic_rgb
from studio.core.requests import FeatureMapRequest
from studio.state.inspect_state import PATCH_SIZES
from studio.ui.convert import array_to_pixmap

FEATURES_KEY = "inspect.features"


class InspectPanel(QWidget):
    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("inspect.panel")
        self.session = session
        st = session.inspect
        lay = QVBoxLayout(self)

        # Model
        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("inspect.model")
        for card in session.catalog.cards("cnn"):
            self.model_combo.addItem(card.name, card.id)
        idx = self.model_combo.findData(st.model_id)
        self.model_combo.setCurrentIndex(max(idx, 0))
        self.model_note = QLabel(self)
        self.model_note.setObjectName("inspect.model_note")
        self.model_note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        lay.addLayout(form)
        lay.addWidget(self.model_note)

        # Patch grid
        patches = QGroupBox("Patch grid", self)
        pform = QFormLayout(patches)
        self.patch_check = QCheckBox("Show patches", patches)
        self.patch_check.setObjectName("inspect.patch_grid")
        self.patch_combo = QComboBox(patches)
        self.patch_combo.setObjectName("inspect.patch_size")
        for p in PATCH_SIZES:
            self.patch_combo.addItem(f"{p} px", p)
        self.patch_info = QLabel("Hover the image to see a patch.", patches)
        self.patch_info.setObjectName("inspect.patch_info")
        self.patch_info.setWordWrap(True)
        pform.addRow(self.patch_check)
        pform.addRow("Patch size", self.patch_combo)
        pform.addRow(self.patch_info)
        lay.addWidget(patches)

        # Feature maps
        feats = QGroupBox("Feature maps", self)
        fl = QVBoxLayout(feats)
        fform = QFormLayout()
        self.layer_combo = QComboBox(feats)
        self.layer_combo.setObjectName("inspect.layer")
        self.layer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_combo.setMinimumContentsLength(12)
        self.layer_combo.setEnabled(False)
        self.layer_combo.setToolTip("Run the model once to list its layers.")
        self.cmap_combo = QComboBox(feats)
        self.cmap_combo.setObjectName("inspect.colormap")
        self.cmap_combo.addItems(COLORMAPS)
        fform.addRow("Layer", self.layer_combo)
        fform.addRow("Colormap", self.cmap_combo)
        fl.addLayout(fform)
        self.run_button = QPushButton("Show feature maps", feats)
        self.run_button.setObjectName("inspect.run_features")
        self.run_button.setToolTip("Run the model on the image (F5)")
        self.run_button.setShortcut("F5")
        fl.addWidget(self.run_button)
        self.feature_info = QLabel("", feats)
        self.feature_info.setObjectName("inspect.feature_info")
        self.feature_info.setWordWrap(True)
        fl.addWidget(self.feature_info)
        self.feature_view = QLabel(feats)
        self.feature_view.setObjectName("inspect.feature_view")
        self.feature_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.feature_view.setMinimumSize(240, 240)
        self.feature_view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.feature_view.setStyleSheet("background: #202024;")
        fl.addWidget(self.feature_view, 1)
        lay.addWidget(feats, 1)

        # Initial values from state (which the app filled from settings).
        self.patch_check.setChecked(st.show_patches)
        self.patch_combo.setCurrentIndex(PATCH_SIZES.index(st.patch_size))
        self.cmap_combo.setCurrentText(st.colormap)
        self._update_model_note()

        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.patch_check.toggled.connect(lambda on: setattr(st, "show_patches", on))
        self.patch_combo.currentIndexChanged.connect(
            lambda i: st.set_patch_size(self.patch_combo.itemData(i)))
        self.cmap_combo.currentTextChanged.connect(lambda name: setattr(st, "colormap", name))
        self.layer_combo.currentIndexChanged.connect(self._layer_changed)
        self.run_button.clicked.connect(self.run_features)
        st.changed.connect(self._on_state)

    # -- actions --------------------------------------------------------------------------
    def run_features(self) -> None:
        s = self.session
        image = s.app.image
        if image is None:
            s.app.report_error("Open an image first (File > Open, drag and drop, or paste).")
            return
        st = s.inspect
        req = FeatureMapRequest(image=image, model_id=st.model_id, layer=st.layer)
        # Latest wins: the run this replaces reports "cancelled" during submit(); only the
        # current run may touch busy/status, or the panel would look idle while it works.
        self._run_id += 1
        run_id = self._run_id

        def current(fn):
            return lambda *args: fn(*args) if run_id == self._run_id else None

        st.busy = True
        st.status = "Running…"
        s.runtime.submit(
            req, key=FEATURES_KEY, title="Feature maps", on_result=current(self._on_result),
            on_error=current(self._on_error), on_cancelled=current(self._on_cancelled),
        )

    def _on_result(self, result) -> None:
        st = self.session.inspect
        st.update(busy=False, layers=result.layers, layer=result.layer, feature_maps=result,
                  status="")
        self.session.app.clear_error()

    def _on_error(self, err) -> None:
        self.session.inspect.update(busy=False, status="Failed")
        self.session.app.report_error(err.user_message, err.detail)

    def _on_cancelled(self) -> None:
        self.session.inspect.update(busy=False, status="Cancelled")

    def _model_changed(self, index: int) -> None:
        st = self.session.inspect
        st.update(model_id=self.model_combo.itemData(index), layers=(), layer="", feature_maps=None)
        self._update_model_note()

    def _layer_changed(self, index: int) -> None:
        if index < 0 or self._syncing:
            return
        name = self.layer_combo.itemText(index)
        st = self.session.inspect
        if name and name != st.layer:
            st.layer = name
            if st.feature_maps is not None:
                self.run_features()

    _syncing = False
    _run_id = 0

    def _update_model_note(self) -> None:
        try:
            card = self.session.catalog.get(self.session.inspect.model_id)
        except Exception:
            self.model_note.setText("")
            return
        if card.trained:
            self.model_note.setText(card.description)
            self.model_note.setStyleSheet("")
        else:
            self.model_note.setText("⚠ Untrained: random weights. The maps show how a network "
                                    "transforms the image, not features it has learned.")
            self.model_note.setStyleSheet("color: #e0a020;")

    # -- state → widgets ------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        st = self.session.inspect
        if name == "layers":
            self._syncing = True
            self.layer_combo.clear()
            self.layer_combo.addItems(list(value))
            self.layer_combo.setEnabled(bool(value))
            self.layer_combo.setCurrentText(st.layer)
            self._syncing = False
        elif name == "layer":
            self._syncing = True
            self.layer_combo.setCurrentText(value)
            self._syncing = False
        elif name in ("feature_maps", "colormap"):
            self._render()
        elif name == "hover_patch":
            self._show_patch(value)
        elif name == "show_patches":
            self.patch_check.setChecked(bool(value))
        elif name == "patch_size":
            self.patch_combo.setCurrentIndex(PATCH_SIZES.index(value))
        elif name in ("busy", "status"):
            self.run_button.setEnabled(not st.busy)
            if st.status:
                self.feature_info.setText(st.status)
            elif st.feature_maps is not None:
                self._render()

    def _show_patch(self, patch) -> None:
        img = self.session.app.image
        if patch is None or img is None:
            self.patch_info.setText("Hover the image to see a patch.")
            return
        r, c, i = patch
        p = self.session.inspect.patch_size
        rows, cols = -(-img.height // p), -(-img.width // p)
        self.patch_info.setText(f"Patch row {r}, column {c}, index {i} "
                                f"(grid {rows}×{cols} = {rows * cols} patches of {p}×{p} px)")

    def _render(self) -> None:
        res = self.session.inspect.feature_maps
        if res is None:
            self.feature_view.clear()
            self.feature_info.setText("")
            return
        rgb = mosaic_rgb(res.maps, self.session.inspect.colormap)
        pix = array_to_pixmap(rgb)
        target = self.feature_view.size()
        self.feature_view.setPixmap(pix.scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.FastTransformation))
        c, h, w = res.maps.shape
        shown = f"{c} of {res.channels_total}" if c < res.channels_total else f"{c}"
        note = "" if res.trained else " — untrained weights"
        self.feature_info.setText(f"{res.layer}: {shown} channels, {w}×{h} each, input "
                                  f"{res.input_size[0]}×{res.input_size[1]} ({res.seconds:.2f} s){note}")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.session.inspect.feature_maps is not None:
            self._render()
