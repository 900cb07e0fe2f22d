"""The inspect workspace's Compare tab: two models on the same image, side by side (by default the
starter CNN's Grad-CAM beside the starter ViT's attention rollout). Each view shows the crop that
model saw with its map over it, so differences in preprocessing are visible too.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtWidgets import (QComboBox, QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget)

from studio.engines.probes import views
from studio.ui.panels.inspect_explain import pct
from studio.ui.widgets.inspect_export import ExportBar, ExportItem
from studio.ui.widgets.inspect_overlay import input_composite
from studio.ui.widgets.inspect_plots import HeatmapLabel

METHODS = (("gradcam", "Grad-CAM"), ("gradcam++", "Grad-CAM++"), ("rollout", "Attention rollout"),
           ("cls", "CLS attention (last layer)"))
SIDES = ("left", "right")


def side_map(result, method: str) -> Optional[np.ndarray]:
    """The map a comparison side shows, over its model input (grid or heatmap)."""
    if result is None or isinstance(result, Exception):
        return None
    if method in ("rollout", "cls"):
        if not hasattr(result, "attentions"):
            return None
        p = result
        if method == "rollout":
            return views.attention_rollout(p.attentions, p.prefix_tokens, p.grid, "mean", 0.0)
        return views.cls_attention(p.attentions, len(p.layer_names) - 1, None, p.prefix_tokens, p.grid)
    return getattr(result, "heatmap", None)


def side_text(result, method: str) -> str:
    if result is None:
        return ""
    if isinstance(result, Exception):  # the job failed: say why under its view
        return "Failed: " + getattr(result, "user_message", str(result))
    trained = "" if getattr(result, "trained", True) else " (untrained)"
    if method in ("rollout", "cls"):
        top = f": {result.top5[0].label} {pct(result.top5[0].probability)}" if result.top5 else ""
        return f"{result.model_name}{trained}, {dict(METHODS)[method]}{top}"
    return (f"{result.model_name}, {dict(METHODS)[method]} of “{result.target_label}” "
            f"({pct(result.top5[0].probability)})" if result.top5 else result.model_name)


class CompareTab(QWidget):
    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.setObjectName("inspect.compare_tab")
        self.panel = panel
        self.session = panel.session
        lay = QVBoxLayout(self)
        intro = QLabel("The same image through two models: where does each look?", self)
        intro.setWordWrap(True)
        lay.addWidget(intro)
        grid = QGridLayout()
        self.model_combos, self.method_combos, self.views, self.infos = [], [], [], []
        for side, name in enumerate(SIDES):
            model = QComboBox(self)
            model.setObjectName(f"inspect.compare_{name}")
            model.setMinimumContentsLength(8)
            model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            method = QComboBox(self)
            method.setObjectName(f"inspect.compare_{name}_method")
            for key, text in METHODS:
                method.addItem(text, key)
            view = HeatmapLabel(f"inspect.compare_{name}_view", self, 130)
            info = QLabel("", self)
            info.setObjectName(f"inspect.compare_{name}_info")
            info.setWordWrap(True)
            grid.addWidget(model, 0, side)
            grid.addWidget(method, 1, side)
            grid.addWidget(view, 2, side)
            grid.addWidget(info, 3, side)
            self.model_combos.append(model)
            self.method_combos.append(method)
            self.views.append(view)
            self.infos.append(info)
            model.currentIndexChanged.connect(lambda _i, s=side: self._choice_changed(s))
            method.currentIndexChanged.connect(lambda _i, s=side: self._choice_changed(s))
        grid.setRowStretch(2, 1)
        lay.addLayout(grid, 1)
        self.run_button = QPushButton("Compare", self)
        self.run_button.setObjectName("inspect.run_compare")
        lay.addWidget(self.run_button)
        self.export = ExportBar("compare", self.export_item, self.session, self)
        lay.addWidget(self.export)
        self.run_button.clicked.connect(lambda: self.panel.jobs.compare())
        self.fill_models()

    _syncing = False

    def fill_models(self) -> None:
        st = self.session.inspect
        self._syncing = True
        for side, combo in enumerate(self.model_combos):
            combo.clear()
            for card in self.panel.inspect_cards():
                combo.addItem(self.panel.card_label(card), card.id)
            idx = combo.findData(st.compare_models[side])
            if idx < 0 and combo.count():
                idx = min(side, combo.count() - 1)
            combo.setCurrentIndex(idx)
            self.method_combos[side].setCurrentIndex(
                max(0, self.method_combos[side].findData(st.compare_methods[side])))
        self._syncing = False
        self._choice_changed(0)
        self._choice_changed(1)

    def _choice_changed(self, side: int) -> None:
        if self._syncing:
            return
        st = self.session.inspect
        models, methods = list(st.compare_models), list(st.compare_methods)
        models[side] = self.model_combos[side].currentData() or ""
        methods[side] = self.method_combos[side].currentData() or "gradcam"
        if (tuple(models), tuple(methods)) != (st.compare_models, st.compare_methods):
            pair = list(st.compare)
            pair[side] = None
            st.update(compare_models=tuple(models), compare_methods=tuple(methods), compare=tuple(pair))

    def canvas_view(self):
        return None

    def _side_rgb(self, side: int) -> Optional[np.ndarray]:
        st = self.session.inspect
        res = st.compare[side]
        m = side_map(res, st.compare_methods[side])
        if m is None:
            return None
        return input_composite(res.model_input, m, st.colormap, st.opacity, smooth=m.shape[0] > 32)

    def export_item(self) -> Optional[ExportItem]:
        rgbs = [self._side_rgb(s) for s in (0, 1)]
        if any(r is None for r in rgbs):
            return None
        from PIL import Image

        h = max(r.shape[0] for r in rgbs)
        scaled = [np.asarray(Image.fromarray(r).resize((round(r.shape[1] * h / r.shape[0]), h), Image.NEAREST))
                  for r in rgbs]
        gap = np.full((h, 8, 3), 32, np.uint8)
        image = np.concatenate([scaled[0], gap, scaled[1]], axis=1)
        st = self.session.inspect
        maps = [side_map(st.compare[s], st.compare_methods[s]) for s in (0, 1)]
        size = max(maps[0].shape[0], maps[1].shape[0]), max(maps[0].shape[1], maps[1].shape[1])
        raw = np.stack([np.asarray(Image.fromarray(m.astype(np.float32)).resize(size[::-1], Image.BILINEAR))
                        for m in maps])
        a, b = st.compare_models
        return ExportItem(f"compare-{a}-vs-{b}", image, raw.astype(np.float32))

    def refresh(self) -> None:
        st = self.session.inspect
        busy = [f"compare{s}" in st.jobs for s in (0, 1)]
        self.run_button.setEnabled(not any(busy))
        for side in (0, 1):
            res, method = st.compare[side], st.compare_methods[side]
            rgb = self._side_rgb(side)
            self.views[side].set_rgb(rgb, placeholder="Press Compare")
            if busy[side]:
                self.infos[side].setText(st.jobs[f"compare{side}"])
            elif res is not None and rgb is None and not isinstance(res, Exception):
                self.infos[side].setText("This method needs a vision transformer.")
            else:
                self.infos[side].setText(side_text(res, method))
