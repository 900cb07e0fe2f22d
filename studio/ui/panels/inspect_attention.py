"""The inspect workspace's Attention tab: where each head looks.

One ViT probe run keeps every layer's and head's attention; the tab then steps through them from
that cache: CLS-to-patch attention of one layer and head (or their mean) over the image, attention
rollout through the layers up to the chosen one (head fusion mean/max/min, discard ratio), and
the mean attention distance of every head as a scatter plot (click a dot to show that head).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from studio.state.inspect_state import HEAD_FUSIONS
from studio.ui.panels.inspect_explain import pct
from studio.ui.widgets.inspect_export import ExportBar, ExportItem
from studio.ui.widgets.inspect_overlay import CanvasView, heat_rgb, image_composite
from studio.ui.widgets.inspect_plots import DistancePlot, HeatmapLabel

MODES = (("cls", "CLS → patches (one layer)"), ("rollout", "Attention rollout (layers 1 … n)"))


class AttentionTab(QWidget):
    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.setObjectName("inspect.attention_tab")
        self.panel = panel
        self.session = panel.session
        st = self.session.inspect
        lay = QVBoxLayout(self)
        self.run_button = QPushButton("Run attention probe", self)
        self.run_button.setObjectName("inspect.run_probe")
        self.run_button.setToolTip("Run the vision transformer once; layers and heads then switch instantly")
        lay.addWidget(self.run_button)
        self.info = QLabel("", self)
        self.info.setObjectName("inspect.probe_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)

        form = QFormLayout()
        self.mode_combo = QComboBox(self)
        self.mode_combo.setObjectName("inspect.attention_mode")
        for key, text in MODES:
            self.mode_combo.addItem(text, key)
        form.addRow("Show", self.mode_combo)
        row = QHBoxLayout()
        self.layer_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.layer_slider.setObjectName("inspect.attention_layer")
        self.layer_slider.setRange(0, 0)
        self.layer_slider.setPageStep(1)
        self.layer_label = QLabel("", self)
        self.layer_label.setObjectName("inspect.attention_layer_label")
        self.layer_label.setMinimumWidth(48)
        row.addWidget(self.layer_slider, 1)
        row.addWidget(self.layer_label)
        form.addRow("Layer", row)
        self.head_combo = QComboBox(self)
        self.head_combo.setObjectName("inspect.attention_head")
        self.head_combo.addItem("Mean of heads", -1)
        form.addRow("Head", self.head_combo)
        self.fusion_combo = QComboBox(self)
        self.fusion_combo.setObjectName("inspect.rollout_fusion")
        for f in HEAD_FUSIONS:
            self.fusion_combo.addItem(f"{f} over heads", f)
        form.addRow("Head fusion", self.fusion_combo)
        drow = QHBoxLayout()
        self.discard_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.discard_slider.setObjectName("inspect.rollout_discard")
        self.discard_slider.setRange(0, 95)
        self.discard_slider.setSingleStep(5)
        self.discard_slider.setToolTip("Share of the weakest attentions dropped in every row before the "
                                       "layers are multiplied (Abnar & Zuidema; 0.9 is common)")
        self.discard_label = QLabel("0 %", self)
        self.discard_label.setMinimumWidth(40)
        drow.addWidget(self.discard_slider, 1)
        drow.addWidget(self.discard_label)
        form.addRow("Discard", drow)
        lay.addLayout(form)

        self.view = HeatmapLabel("inspect.attention_view", self, 140)
        self.view.setToolTip("The map on the patch grid; click a patch to inspect it")
        lay.addWidget(self.view, 2)
        self.plot = DistancePlot("inspect.distance_plot", self)
        lay.addWidget(self.plot, 1)
        self.export = ExportBar("attention", self.export_item, self.session, self)
        lay.addWidget(self.export)

        self.run_button.clicked.connect(lambda: self.panel.jobs.probe())
        self.mode_combo.currentIndexChanged.connect(
            lambda i: st.set_attention(mode=self.mode_combo.itemData(i)))
        self.layer_slider.valueChanged.connect(lambda v: st.set_attention(layer=int(v)))
        self.head_combo.currentIndexChanged.connect(self._head_changed)
        self.fusion_combo.currentIndexChanged.connect(
            lambda i: st.set_attention(fusion=self.fusion_combo.itemData(i)))
        self.discard_slider.valueChanged.connect(lambda v: st.set_attention(discard=v / 100.0))
        self.plot.picked.connect(lambda layer, head: st.set_attention(layer=layer, head=head, mode="cls"))
        self.view.cell_clicked.connect(self._cell)
        self.refresh()

    def _head_changed(self, index: int) -> None:
        if index >= 0:
            data = self.head_combo.itemData(index)
            self.session.inspect.set_attention(head=None if data is None or data < 0 else int(data))

    def _cell(self, row: int, col: int) -> None:
        p = self.session.inspect.probe
        if p is not None:
            self.panel.open_patch((row, col, row * p.grid[1] + col))

    # -- the canvas ---------------------------------------------------------------------------
    def describe(self) -> str:
        st = self.session.inspect
        p = st.probe
        if st.att_mode == "rollout":
            return (f"rollout of layers 1–{st.att_layer + 1}, {st.rollout_fusion} over heads, "
                    f"discard {st.rollout_discard * 100:.0f} %")
        head = "mean of heads" if st.att_head is None else f"head {st.att_head + 1} of {p.num_heads}"
        who = "CLS" if p.prefix_tokens else "mean patch (no CLS token)"
        return f"{who} → patches, layer {st.att_layer + 1} of {len(p.layer_names)}, {head}"

    def name(self) -> str:
        st = self.session.inspect
        if st.att_mode == "rollout":
            return f"rollout-layers1-{st.att_layer + 1}-{st.rollout_fusion}-discard{st.rollout_discard:.2f}"
        head = "mean" if st.att_head is None else f"head{st.att_head + 1}"
        return f"attention-layer{st.att_layer + 1}-{head}"

    def canvas_view(self) -> Optional[CanvasView]:
        st = self.session.inspect
        m = st.attention_map()
        if m is None:
            return None
        return CanvasView(m, st.probe.geometry, False, st.colormap, self.name())

    def export_item(self) -> Optional[ExportItem]:
        view, image = self.canvas_view(), self.session.app.image
        if view is None or image is None:
            return None
        return ExportItem(view.name, image_composite(image.rgb(), view, self.session.inspect.opacity),
                          np.asarray(view.values, np.float32))

    # -- state → widgets ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Everything: after a new probe, model or job state."""
        st = self.session.inspect
        p = st.probe
        vit = self.panel.is_vit()
        self.run_button.setEnabled(vit and not st.running("probe"))
        for w in (self.mode_combo, self.layer_slider, self.head_combo, self.fusion_combo, self.discard_slider):
            w.setEnabled(p is not None)
        if st.running("probe"):
            self.info.setText(st.jobs["probe"])
        elif p is None:
            self.info.setText("Open an image: the attention appears here." if vit else
                              "This model is not a vision transformer: it has no attention heads. Pick a "
                              "ViT or CLIP model, or use Grad-CAM and occlusion in Explain.")
        else:
            top = f"; predicts {p.top5[0].label} ({pct(p.top5[0].probability)})" if p.top5 else ""
            note = "" if p.trained else " Untrained weights: the patterns are not learned."
            self.info.setText(f"{p.model_name}: {len(p.layer_names)} layers × {p.num_heads} heads, "
                              f"{p.grid[0]}×{p.grid[1]} patches ({p.seconds:.2f} s){top}.{note}")
        self._sync_controls()
        self.redraw()

    def _sync_controls(self) -> None:
        st = self.session.inspect
        p = st.probe
        widgets = (self.mode_combo, self.layer_slider, self.head_combo, self.fusion_combo, self.discard_slider)
        for w in widgets:
            w.blockSignals(True)
        self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(st.att_mode)))
        n = len(p.layer_names) if p is not None else 1
        self.layer_slider.setRange(0, n - 1)
        self.layer_slider.setValue(st.att_layer)
        heads = p.num_heads if p is not None else 0
        if self.head_combo.count() != heads + 1:
            self.head_combo.clear()
            self.head_combo.addItem("Mean of heads", -1)
            for h in range(heads):
                self.head_combo.addItem(f"Head {h + 1}", h)
        self.head_combo.setCurrentIndex(0 if st.att_head is None else st.att_head + 1)
        self.fusion_combo.setCurrentIndex(max(0, self.fusion_combo.findData(st.rollout_fusion)))
        self.discard_slider.setValue(int(round(st.rollout_discard * 100)))
        for w in widgets:
            w.blockSignals(False)
        rollout = st.att_mode == "rollout"
        self.head_combo.setEnabled(p is not None and not rollout)
        self.fusion_combo.setEnabled(p is not None and rollout)
        self.discard_slider.setEnabled(p is not None and rollout)
        self.discard_label.setText(f"{st.rollout_discard * 100:.0f} %")
        name = p.layer_names[st.att_layer] if p is not None else ""
        self.layer_label.setText(f"{st.att_layer + 1} of {n}" if p is not None else "")
        self.layer_slider.setToolTip(name)

    def redraw(self) -> None:
        """The preview and the plot, from the cache (cheap)."""
        st = self.session.inspect
        p = st.probe
        if p is None:
            self.view.set_rgb(None)
            self.plot.set_distances(None, 0, None, 1.0)
            return
        self._sync_controls()
        m = st.attention_map()
        sel = st.patch[:2] if st.patch is not None else None
        self.view.set_rgb(heat_rgb(m, st.colormap), sel)
        self.view.setToolTip(f"{self.describe()}; max {m.max():.3f}. Click a patch to inspect it.")
        d = st.attention_distances()
        diag = float(np.hypot(p.grid[0] * p.patch_size[0], p.grid[1] * p.patch_size[1]))
        self.plot.set_distances(d, st.att_layer, None if st.att_mode == "rollout" else st.att_head,
                                max(float(d.max()) * 1.1, diag / 2))
