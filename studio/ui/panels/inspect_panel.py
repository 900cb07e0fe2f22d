"""Inspect workspace panel: pick a model (any CNN, ViT or CLIP card) and see what each layer sees,
how the image is cut into patches, where each head looks and why the model chose its class.

The panel holds the model choice, the uniform patch grid, the canvas-overlay controls and the
tabs (Features, Patches, Attention, Explain, Compare; one module each). It owns the canvas while
the inspect workspace is shown: the current tab (or the open patch inspector) names one map, which
is mapped through the preprocessing geometry onto the image, and `CanvasMarks` draws the model's
crop box, patch grid, hovered and chosen patch and receptive-field boxes. Jobs go through
`InspectJobs` (GPU lane, latest wins); redraws read `InspectState`'s caches only.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QScrollArea, QSlider, QTabWidget, QVBoxLayout, QWidget)

from studio.catalog import store
from studio.core.errors import StudioError
from studio.state.inspect_state import INSPECT_TASKS, PATCH_SIZES, TABS
from studio.ui.panels.inspect_attention import AttentionTab
from studio.ui.panels.inspect_compare import CompareTab
from studio.ui.panels.inspect_explain import ExplainTab
from studio.ui.panels.inspect_features import FeaturesTab
from studio.ui.panels.inspect_jobs import FEATURES_KEY, InspectJobs  # noqa: F401 (FEATURES_KEY: compat)
from studio.ui.panels.inspect_patches import PatchesTab, PatchInspector
from studio.ui.widgets.inspect_overlay import CanvasMarks, overlay_rgba

TAB_TITLES = {"features": "Features", "patches": "Patches", "attention": "Attention", "explain": "Explain",
              "compare": "Compare"}
FEATURE_FIELDS = {"layers", "layer", "feature_maps", "colormap", "grid_channels", "channel", "busy", "status",
                  "tree", "stats", "rf", "rf_mode"}
ATTENTION_FIELDS = {"att_layer", "att_head", "att_mode", "rollout_fusion", "rollout_discard"}
EXPLAIN_FIELDS = {"cam", "occlusion", "occ_progress", "explain_view", "cam_method", "cam_class", "cam_layer"}
CANVAS_FIELDS = (FEATURE_FIELDS | ATTENTION_FIELDS | EXPLAIN_FIELDS
                 | {"tab", "show_overlay", "opacity", "probe", "model_grid", "model_hover", "patch", "patch_layer"})


def model_ready(card, assets: Path) -> bool:
    """Whether the card's files are on disk (builtin cards always are). Reads the disk only."""
    if card.source_kind == "builtin":
        return True
    path = store.local_path(card, assets)
    if path is None or not path.exists():
        return False
    return not path.is_dir() or any(path.iterdir())


class InspectPanel(QWidget):
    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("inspect.panel")
        self.session = session
        self.window_ = parent
        self.jobs = InspectJobs(session)
        self.inspector: PatchInspector | None = None
        self._overlay_values = None  # the map now on the canvas (held so its identity stays valid)
        self._overlay_key = None
        st = session.inspect
        lay = QVBoxLayout(self)

        # Model
        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("inspect.model")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(16)
        self._fill_models()
        self.model_note = QLabel(self)
        self.model_note.setObjectName("inspect.model_note")
        self.model_note.setWordWrap(True)
        self.scene_button = QPushButton("Scene", self)
        self.scene_button.setObjectName("inspect.new_scene")
        self.scene_button.setToolTip("Open a new Shapes-world scene (the world the starter models learned), "
                                     "with its caption as the ground truth")
        mrow = QHBoxLayout()
        mrow.addWidget(self.model_combo, 1)
        mrow.addWidget(self.scene_button)
        form = QFormLayout()
        form.addRow("Model", mrow)
        lay.addLayout(form)
        lay.addWidget(self.model_note)

        # Uniform patch grid (any model): how a ViT with that patch size would cut the image
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
        row = QHBoxLayout()
        row.addWidget(self.patch_check)
        row.addWidget(self.patch_combo)
        pform.addRow(row)
        pform.addRow(self.patch_info)
        lay.addWidget(patches)

        # Canvas overlay
        orow = QHBoxLayout()
        self.overlay_check = QCheckBox("Map on the image", self)
        self.overlay_check.setObjectName("inspect.show_overlay")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity_slider.setObjectName("inspect.opacity")
        self.opacity_slider.setRange(10, 100)
        self.opacity_slider.setToolTip("Opacity of the map over the image")
        orow.addWidget(self.overlay_check)
        orow.addWidget(QLabel("Opacity", self))
        orow.addWidget(self.opacity_slider, 1)
        lay.addLayout(orow)

        # Tabs
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("inspect.tabs")
        self.tabs.setUsesScrollButtons(True)
        self.features = FeaturesTab(self)
        self.patches = PatchesTab(self)
        self.attention = AttentionTab(self)
        self.explain = ExplainTab(self)
        self.compare = CompareTab(self)
        self._tabs = {"features": self.features, "patches": self.patches, "attention": self.attention,
                      "explain": self.explain, "compare": self.compare}
        for key in TABS:
            # Scrolled, so the dock (and with it the window) can be shorter than a tab's content.
            scroll = QScrollArea(self.tabs)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setWidget(self._tabs[key])
            self.tabs.addTab(scroll, TAB_TITLES[key])
        lay.addWidget(self.tabs, 1)

        # Names the first version of the panel had (tests, the screenshot tool and the driver use them).
        self.layer_combo = self.features.layer_combo
        self.cmap_combo = self.features.cmap_combo
        self.run_button = self.features.run_button
        self.feature_info = self.features.info
        self.feature_view = self.features.view

        self.marks = CanvasMarks()
        canvas = self.canvas()
        if canvas is not None:
            canvas.scene().addItem(self.marks)
            canvas.hovered.connect(self._on_canvas_hover)
            canvas.clicked.connect(self._on_canvas_click)

        # Initial values from state (which the app filled from settings).
        self.patch_check.setChecked(st.show_patches)
        self.patch_combo.setCurrentIndex(PATCH_SIZES.index(st.patch_size))
        self.overlay_check.setChecked(st.show_overlay)
        self.opacity_slider.setValue(int(round(st.opacity * 100)))
        self.tabs.setCurrentIndex(TABS.index(st.tab))
        self._update_model_note()

        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.scene_button.clicked.connect(self.new_scene)
        self.patch_check.toggled.connect(lambda on: setattr(st, "show_patches", on))
        self.patch_combo.currentIndexChanged.connect(
            lambda i: st.set_patch_size(self.patch_combo.itemData(i)))
        self.overlay_check.toggled.connect(lambda on: setattr(st, "show_overlay", on))
        self.opacity_slider.valueChanged.connect(lambda v: setattr(st, "opacity", v / 100.0))
        self.tabs.currentChanged.connect(lambda i: st.set_tab(TABS[i]))
        st.changed.connect(self._on_state)
        session.app.changed.connect(self._on_app)
        session.models.changed.connect(self._on_models)

    # -- models -----------------------------------------------------------------------------------
    def canvas(self):
        return getattr(self.window_, "canvas", None)

    def inspect_cards(self):
        cards = [c for c in self.session.catalog.cards() if c.task in INSPECT_TASKS]
        return sorted(cards, key=lambda c: INSPECT_TASKS.index(c.task))

    def _assets(self) -> Path:
        from studio.core.paths import assets_dir

        return Path(getattr(self.session.runtime.models, "assets", None) or assets_dir())

    def card_label(self, card) -> str:
        flags = []
        if not model_ready(card, self._assets()):
            flags.append("not installed")
        if not card.trained and "untrained" not in card.name.lower():
            flags.append("untrained")
        kind = {"cnn": "CNN", "vit": "ViT", "clip": "CLIP"}[card.task]
        return f"{card.name} [{kind}]" + (f" — {', '.join(flags)}" if flags else "")

    def _fill_models(self) -> None:
        st = self.session.inspect
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for card in self.inspect_cards():
            self.model_combo.addItem(self.card_label(card), card.id)
        idx = self.model_combo.findData(st.model_id)
        self.model_combo.setCurrentIndex(max(idx, 0))
        self.model_combo.blockSignals(False)
        if idx < 0 and self.model_combo.count():
            st.set_model(self.model_combo.itemData(0))

    def card(self):
        try:
            return self.session.catalog.get(self.session.inspect.model_id)
        except StudioError:
            return None

    def is_vit(self) -> bool:
        card = self.card()
        return card is not None and card.task in ("vit", "clip")

    def _model_changed(self, index: int) -> None:
        model_id = self.model_combo.itemData(index)
        if model_id:
            self.jobs.forget_model()
            self.session.inspect.set_model(model_id)
        self._update_model_note()
        self._refresh_tabs()
        self._maybe_probe()

    def _update_model_note(self) -> None:
        card = self.card()
        if card is None:
            self.model_note.setText("")
            return
        if not model_ready(card, self._assets()):
            self.model_note.setText(f"⚠ Not installed: {card.name} is not on this computer. Download it in "
                                    "Models > Manager" + (" (or build the starter models with "
                                                          "`python -m studio.starter train`)."
                                                          if card.source_kind == "bundled" else "."))
            self.model_note.setStyleSheet("color: #e0a020;")
        elif card.trained:
            self.model_note.setText(card.description)
            self.model_note.setStyleSheet("")
        else:
            self.model_note.setText("⚠ Untrained: random weights. The maps show how a network "
                                    "transforms the image, not features it has learned.")
            self.model_note.setStyleSheet("color: #e0a020;")

    def _on_models(self, name: str, _value) -> None:
        if name == "disk":  # the models dialog found new files: update the labels
            for i in range(self.model_combo.count()):
                model_id = self.model_combo.itemData(i)
                if model_id in self.session.catalog:
                    self.model_combo.setItemText(i, self.card_label(self.session.catalog.get(model_id)))
            self._update_model_note()

    # -- actions ------------------------------------------------------------------------------------
    def run_features(self) -> None:
        self.jobs.run_features()

    def new_scene(self) -> None:
        """Show the next Shapes-world test scene (deterministic: the same sequence every session)."""
        from studio.core.image import StudioImage
        from studio.starter.world import SPLITS, make_scene

        self._scene += 1
        seed = SPLITS["test"] + self._scene
        scene = make_scene(seed)
        self.session.app.clear_error()
        self.session.app.image = StudioImage(scene.image, f"shapes-world:{seed}", {"caption": scene.caption})
        self.session.app.message = f"Shapes world scene {self._scene}: {scene.caption}"

    _scene = 0

    def current_tab(self):
        return self._tabs[self.session.inspect.tab]

    def open_patch(self, patch) -> None:
        """Open the patch inspector on (row, col, index) of the probe's grid."""
        st = self.session.inspect
        if st.probe is None or patch is None:
            return
        if self.inspector is None:
            self.inspector = PatchInspector(self)
        st.patch = tuple(int(v) for v in patch)
        self.inspector.refresh()
        self.inspector.show()
        self.inspector.raise_()
        self.refresh_canvas()

    def _maybe_probe(self) -> None:
        s, st = self.session, self.session.inspect
        card = self.card()
        if (s.app.workspace == "inspect" and st.tab in ("patches", "attention") and s.app.image is not None
                and card is not None and self.is_vit() and model_ready(card, self._assets())):
            self.jobs.probe(auto=True)

    # -- the canvas ---------------------------------------------------------------------------------
    def _on_canvas_hover(self, x: int, y: int, rgb) -> None:
        st = self.session.inspect
        if self.session.app.workspace != "inspect" or st.probe is None:
            return
        if st.tab in ("patches", "attention") or (self.inspector is not None and self.inspector.isVisible()):
            st.model_hover = None if rgb is None else st.model_patch_at(x + 0.5, y + 0.5)

    def _on_canvas_click(self, x: int, y: int) -> None:
        s, st = self.session, self.session.inspect
        if s.app.workspace != "inspect":
            return
        if st.tab == "features":
            self.features.click_image(x, y)
        elif st.tab in ("patches", "attention") and st.probe is not None:
            patch = st.model_patch_at(x + 0.5, y + 0.5)
            if patch is None:
                s.app.message = "That point is outside the crop the model sees."
            else:
                self.open_patch(patch)

    def refresh_canvas(self) -> None:
        """Put the current view's map and marks on the canvas (or take ours off)."""
        canvas, s, st = self.canvas(), self.session, self.session.inspect
        if canvas is None:
            return
        image = s.app.image
        if s.app.workspace != "inspect" or image is None:
            self.marks.clear()
            self._overlay_values = self._overlay_key = None
            return
        inspecting = self.inspector is not None and self.inspector.showing_on_canvas()
        view = self.inspector.canvas_view() if inspecting else self.current_tab().canvas_view()
        if not st.show_overlay:
            view = None
        if view is None:
            if self._overlay_key is not None or canvas.has_overlay():
                canvas.set_overlay(None)
            self._overlay_values = self._overlay_key = None
        else:
            key = (view.geometry, view.colormap, view.smooth, st.opacity, image)
            if view.values is not self._overlay_values or key != self._overlay_key or not canvas.has_overlay():
                canvas.set_overlay(overlay_rgba(view, image.size), st.opacity, smooth=True)
                self._overlay_values, self._overlay_key = view.values, key
        self.marks.set_marks(**self._marks(inspecting))

    def _marks(self, inspecting: bool) -> dict:
        st = self.session.inspect
        p = st.probe
        if p is not None and (inspecting or st.tab in ("patches", "attention")):
            w, h = p.geometry.input_size
            marks = {"geometry": p.geometry, "label": f"model input {w}×{h}"}
            if st.model_grid:
                marks.update(patch_size=tuple(p.patch_size), grid=tuple(p.grid),
                             hover=st.model_hover[:2] if st.model_hover else None)
            if inspecting or (self.inspector is not None and self.inspector.isVisible()):
                marks["selected"] = st.patch[:2] if st.patch else None
            return marks
        if st.tab == "features":
            return self.features.canvas_marks()
        if st.tab == "explain":
            view = self.explain.canvas_view()
            if view is not None:
                w, h = view.geometry.input_size
                return {"geometry": view.geometry, "label": f"model input {w}×{h}"}
        return {}

    # -- state → widgets ----------------------------------------------------------------------------
    def _refresh_tabs(self) -> None:
        self.patches.refresh()
        self.attention.refresh()
        self.explain.refresh()
        if self.inspector is not None:
            self.inspector.refresh()

    def _on_state(self, name: str, value) -> None:
        if name in FEATURE_FIELDS:
            self.features.on_state(name, value)
        if name == "hover_patch":
            self._show_patch(value)
        elif name == "show_patches":
            self.patch_check.setChecked(bool(value))
        elif name == "patch_size":
            self.patch_combo.setCurrentIndex(PATCH_SIZES.index(value))
        elif name == "tab":
            if self.tabs.currentIndex() != TABS.index(value):
                self.tabs.setCurrentIndex(TABS.index(value))
            self._maybe_probe()
        elif name == "probe":
            self._refresh_tabs()
        elif name == "model_id":  # also when set from outside the combo (a script, a test)
            i = self.model_combo.findData(value)
            if i >= 0 and i != self.model_combo.currentIndex():
                self.model_combo.blockSignals(True)
                self.model_combo.setCurrentIndex(i)
                self.model_combo.blockSignals(False)
                self._update_model_note()
                self._refresh_tabs()
        elif name in ATTENTION_FIELDS:
            self.attention.redraw()
        elif name == "model_hover":
            self.patches.show_hover(value)
        elif name in ("patch", "patch_layer"):
            if self.inspector is not None:
                self.inspector.refresh()
            self.attention.redraw()
        elif name == "occ_progress":
            self.explain.progress.setValue(int(value * 1000))
        elif name in EXPLAIN_FIELDS:
            self.explain.refresh()
        elif name in ("compare", "compare_models", "compare_methods"):
            self.compare.refresh()
        elif name == "jobs":
            self.features.on_state(name, value)
            self.patches.refresh()
            self.attention.refresh()
            self.explain.refresh()
            self.compare.refresh()
        elif name == "show_overlay":
            self.overlay_check.setChecked(bool(value))
        elif name == "opacity":
            self.opacity_slider.setValue(int(round(value * 100)))
        if name in ("colormap", "opacity"):
            self.attention.redraw()
            self.explain.redraw()
            self.compare.refresh()
        if name == "layers":
            self.explain.refresh()
        if name in CANVAS_FIELDS:
            self.refresh_canvas()

    def _on_app(self, name: str, value) -> None:
        if name == "image":
            self.jobs.forget_image()
            self.session.inspect.image_changed()
            self._overlay_values = self._overlay_key = None
            if self.inspector is not None:
                self.inspector.hide()
            self._refresh_tabs()
            self.compare.refresh()
            self._maybe_probe()
        elif name == "workspace":
            if value == "inspect":
                # After the other workspaces' listeners: one of them may clear the canvas overlay.
                QTimer.singleShot(0, self, self._shown)
            else:
                self.marks.clear()
                self._overlay_values = self._overlay_key = None
                if self.inspector is not None:
                    self.inspector.hide()

    def _shown(self) -> None:
        if self.session.app.workspace == "inspect":
            self.refresh_canvas()
            self._maybe_probe()

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
