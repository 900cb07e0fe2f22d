"""The inspect workspace's Explain tab: why the model chose its class.

Grad-CAM and Grad-CAM++ (CNNs and ViTs) for the predicted class or one of the top five, at the
default or a chosen layer; occlusion sensitivity with progress and cancel. The chosen map goes
over the image (through the preprocessing geometry) and into a preview of the crop the model saw.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from studio.ui.widgets.inspect_export import ExportBar, ExportItem
from studio.ui.widgets.inspect_overlay import CanvasView, image_composite, input_composite
from studio.ui.widgets.inspect_plots import HeatmapLabel

METHODS = (("gradcam", "Grad-CAM"), ("gradcam++", "Grad-CAM++"))
SHOW = (("cam", "Grad-CAM"), ("occlusion", "Occlusion"))


def pct(p: float) -> str:
    """A probability as a percentage with the digits that matter (0.2 %, 12 %, 99.7 %)."""
    v = 100.0 * float(p)
    return f"{v:.1f} %" if v < 10 or v > 99 else f"{v:.0f} %"


def top5_text(top5) -> str:
    return "  ".join(f"{i + 1}. {c.label} {pct(c.probability)}" for i, c in enumerate(top5))


class ExplainTab(QWidget):
    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.setObjectName("inspect.explain_tab")
        self.panel = panel
        self.session = panel.session
        st = self.session.inspect
        lay = QVBoxLayout(self)

        form = QFormLayout()
        self.class_combo = QComboBox(self)
        self.class_combo.setObjectName("inspect.cam_class")
        self.class_combo.setToolTip("The class to explain: the predicted one, or one of the top five")
        self.class_combo.addItem("Predicted class", -1)
        form.addRow("Class", self.class_combo)
        self.method_combo = QComboBox(self)
        self.method_combo.setObjectName("inspect.cam_method")
        for key, text in METHODS:
            self.method_combo.addItem(text, key)
        form.addRow("Method", self.method_combo)
        self.layer_combo = QComboBox(self)
        self.layer_combo.setObjectName("inspect.cam_layer")
        self.layer_combo.addItem("Default (last spatial stage)", "")
        form.addRow("Layer", self.layer_combo)
        lay.addLayout(form)
        self.cam_button = QPushButton("Grad-CAM", self)
        self.cam_button.setObjectName("inspect.run_cam")
        lay.addWidget(self.cam_button)
        self.cam_info = QLabel("", self)
        self.cam_info.setObjectName("inspect.cam_info")
        self.cam_info.setWordWrap(True)
        lay.addWidget(self.cam_info)

        occ = QGroupBox("Occlusion sensitivity", self)
        ol = QVBoxLayout(occ)
        row = QHBoxLayout()
        self.window_spin = QSpinBox(occ)
        self.window_spin.setObjectName("inspect.occlusion_window")
        self.window_spin.setRange(0, 512)
        self.window_spin.setSpecialValueText("auto")
        self.window_spin.setToolTip("Side of the grey square in input pixels (auto: 1/8 of the input)")
        self.stride_spin = QSpinBox(occ)
        self.stride_spin.setObjectName("inspect.occlusion_stride")
        self.stride_spin.setRange(0, 512)
        self.stride_spin.setSpecialValueText("auto")
        self.stride_spin.setToolTip("Step between squares in input pixels (auto: half the window)")
        row.addWidget(QLabel("Window", occ))
        row.addWidget(self.window_spin)
        row.addWidget(QLabel("Stride", occ))
        row.addWidget(self.stride_spin)
        ol.addLayout(row)
        brow = QHBoxLayout()
        self.occ_button = QPushButton("Occlusion", occ)
        self.occ_button.setObjectName("inspect.run_occlusion")
        self.cancel_button = QPushButton("Cancel", occ)
        self.cancel_button.setObjectName("inspect.cancel_occlusion")
        self.cancel_button.setEnabled(False)
        brow.addWidget(self.occ_button, 1)
        brow.addWidget(self.cancel_button)
        ol.addLayout(brow)
        self.progress = QProgressBar(occ)
        self.progress.setObjectName("inspect.occlusion_progress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        ol.addWidget(self.progress)
        self.occ_info = QLabel("", occ)
        self.occ_info.setObjectName("inspect.occlusion_info")
        self.occ_info.setWordWrap(True)
        ol.addWidget(self.occ_info)
        lay.addWidget(occ)

        srow = QHBoxLayout()
        srow.addWidget(QLabel("On the image", self))
        self.show_combo = QComboBox(self)
        self.show_combo.setObjectName("inspect.explain_show")
        for key, text in SHOW:
            self.show_combo.addItem(text, key)
        srow.addWidget(self.show_combo, 1)
        lay.addLayout(srow)
        self.view = HeatmapLabel("inspect.explain_view", self, 140)
        self.view.setToolTip("The crop the model saw, with the map over it")
        lay.addWidget(self.view, 1)
        self.top5 = QLabel("", self)
        self.top5.setObjectName("inspect.top5")
        self.top5.setWordWrap(True)
        lay.addWidget(self.top5)
        self.export = ExportBar("explain", self.export_item, self.session, self)
        lay.addWidget(self.export)

        self.class_combo.currentIndexChanged.connect(self._class_changed)
        self.method_combo.currentIndexChanged.connect(
            lambda i: setattr(st, "cam_method", self.method_combo.itemData(i)))
        self.layer_combo.currentIndexChanged.connect(
            lambda i: setattr(st, "cam_layer", self.layer_combo.itemData(i) or "") if i >= 0 else None)
        self.cam_button.clicked.connect(lambda: self.panel.jobs.grad_cam())
        self.occ_button.clicked.connect(
            lambda: self.panel.jobs.occlusion(self.window_spin.value(), self.stride_spin.value()))
        self.cancel_button.clicked.connect(lambda: self.panel.jobs.cancel("occlusion"))
        self.show_combo.currentIndexChanged.connect(
            lambda i: setattr(st, "explain_view", self.show_combo.itemData(i)))
        self.refresh()

    _syncing = False

    def _class_changed(self, index: int) -> None:
        if index >= 0 and not self._syncing:
            data = self.class_combo.itemData(index)
            self.session.inspect.cam_class = None if data is None or data < 0 else int(data)

    # -- the canvas ---------------------------------------------------------------------------
    def _result(self):
        st = self.session.inspect
        return st.occlusion if st.explain_view == "occlusion" else st.cam

    def canvas_view(self) -> Optional[CanvasView]:
        st = self.session.inspect
        res = self._result()
        if res is None:
            return None
        if st.explain_view == "occlusion":
            values = np.maximum(res.heatmap, 0.0)  # only drops explain the class
            name = f"occlusion-{res.target_label}"
        else:
            values = res.heatmap
            name = f"{res.method}-{res.target_label}-{res.layer}"
        return CanvasView(values, res.geometry, True, st.colormap, name.replace(" ", "_").replace(".", "_"))

    def export_item(self) -> Optional[ExportItem]:
        view, image = self.canvas_view(), self.session.app.image
        if view is None or image is None:
            return None
        res = self._result()
        raw = res.drops if self.session.inspect.explain_view == "occlusion" else res.cam
        return ExportItem(view.name, image_composite(image.rgb(), view, self.session.inspect.opacity),
                          np.asarray(raw, np.float32))

    # -- state → widgets ----------------------------------------------------------------------------
    def refresh(self) -> None:
        st = self.session.inspect
        jobs = st.jobs
        card = self.panel.card()
        # CLIP towers have no class head: say so rather than offer a run that can only fail.
        headless = card is not None and card.task == "clip"
        self.cam_button.setEnabled("cam" not in jobs and not headless)
        self.occ_button.setEnabled("occlusion" not in jobs and not headless)
        self.cancel_button.setEnabled("occlusion" in jobs)
        self.progress.setValue(int(st.occ_progress * 1000))
        self._fill_classes()
        self._fill_layers()
        self.method_combo.blockSignals(True)
        self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(st.cam_method)))
        self.method_combo.blockSignals(False)
        self.show_combo.blockSignals(True)
        self.show_combo.setCurrentIndex(max(0, self.show_combo.findData(st.explain_view)))
        self.show_combo.blockSignals(False)
        cam = st.cam
        if "cam" in jobs:
            self.cam_info.setText(jobs["cam"])
        elif cam is not None:
            method = dict(METHODS)[cam.method]
            self.cam_info.setText(f"{method} of “{cam.target_label}” (class {cam.target_class}) at "
                                  f"{cam.layer}: {cam.cam.shape[1]}×{cam.cam.shape[0]} map ({cam.seconds:.2f} s)")
        elif headless:
            self.cam_info.setText(f"{card.name} is a CLIP model: it has no class head, so there is no class "
                                  "to explain. Use the Attention tab, or Label > Region for a word.")
        else:
            self.cam_info.setText("Grad-CAM: which regions raise the class score (gradients at a layer).")
        occ = st.occlusion
        if "occlusion" in jobs:
            self.occ_info.setText(jobs["occlusion"])
        elif occ is not None:
            self.occ_info.setText(f"“{occ.target_label}”: {occ.drops.size} positions of a {occ.window} px "
                                  f"square (stride {occ.stride}); p = {occ.baseline:.3f} unoccluded, largest "
                                  f"drop {float(occ.drops.max()):+.3f} ({occ.seconds:.1f} s)")
        else:
            self.occ_info.setText("Hide one square at a time and watch the class probability drop.")
        top = st.top5()
        self.top5.setText(("Top 5: " + top5_text(top)) if top else "")
        self.redraw()

    def redraw(self) -> None:
        st = self.session.inspect
        res = self._result()
        if res is None:
            self.view.set_rgb(None)
            return
        view = self.canvas_view()
        self.view.set_rgb(input_composite(res.model_input, view.values, st.colormap, st.opacity))

    def _fill_classes(self) -> None:
        st = self.session.inspect
        top = st.top5()
        wanted = [("Predicted class", -1)] + [(f"{c.label} ({pct(c.probability)})", c.index) for c in top]
        if st.cam_class is not None and st.cam_class not in [c.index for c in top]:
            wanted.append((f"class {st.cam_class}", st.cam_class))
        have = [(self.class_combo.itemText(i), self.class_combo.itemData(i)) for i in range(self.class_combo.count())]
        self._syncing = True
        if have != wanted:
            self.class_combo.clear()
            for text, data in wanted:
                self.class_combo.addItem(text, data)
        self.class_combo.setCurrentIndex(max(0, self.class_combo.findData(-1 if st.cam_class is None else st.cam_class)))
        self._syncing = False

    def _fill_layers(self) -> None:
        st = self.session.inspect
        wanted = [""] + list(st.layers)
        have = [self.layer_combo.itemData(i) for i in range(self.layer_combo.count())]
        self.layer_combo.blockSignals(True)
        if have != wanted:
            self.layer_combo.clear()
            self.layer_combo.addItem("Default (last spatial stage)", "")
            for name in st.layers:
                self.layer_combo.addItem(name, name)
        self.layer_combo.setCurrentIndex(max(0, self.layer_combo.findData(st.cam_layer)))
        self.layer_combo.blockSignals(False)
