"""The inspect workspace's Patches tab and the patch inspector: how a vision transformer cuts the
image into patches.

The tab states the model's real input resolution and patch size and how preprocessing resized and
cropped (or padded) the image; the canvas shows the crop box and the patch grid in original-image
pixels, the patch index follows the cursor, and a click opens the patch inspector
(`inspect.patch_inspector`): the patch's pixels, its token vector as a barcode at a chosen layer,
its positional-embedding similarity to every position, and its cosine similarity to every patch
at that layer. Everything is read from the cached ViT probe: no model call.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QSlider, QVBoxLayout, QWidget)

from studio.ui.widgets.inspect_export import ExportBar, ExportItem
from studio.ui.widgets.inspect_overlay import CanvasView, heat_rgb, image_composite
from studio.ui.widgets.inspect_plots import BarcodeWidget, HeatmapLabel

COSINE = (-1.0, 1.0)  # similarity maps use a fixed scale: blue -1, grey 0, red +1
NOT_A_VIT = ("This model is not a vision transformer: it has no patches. Pick a ViT or CLIP model "
             "(the uniform grid above shows how a ViT with that patch size would cut the image).")


def geometry_text(probe) -> str:
    """One paragraph: what the model sees and how the image got there."""
    g, spec = probe.geometry, probe.spec
    (W, H), (iw, ih), (rw, rh) = g.original_size, g.input_size, g.resized_size
    rows, cols = probe.grid
    ph, pw = probe.patch_size
    how = {"shortest": "shorter edge", "longest": "longer edge", "squash": "both edges"}[g.resize_mode]
    parts = [f"{probe.model_name} sees {iw}×{ih} px. The {W}×{H} image was resized ({how}) to {rw}×{rh}"]
    ox, oy = g.crop_offset
    if (rw, rh) == (iw, ih):
        parts.append(", which is the input as is.")
    elif ox >= 0 and oy >= 0:
        x0, y0, x1, y1 = g.crop_box
        parts.append(f", then centre-cropped to {iw}×{ih}: the dashed box, x {x0:.0f}–{x1:.0f}, "
                     f"y {y0:.0f}–{y1:.0f} of the image; the dimmed rest is never seen.")
    else:
        parts.append(f", then padded to {iw}×{ih} with the mean colour.")
    extra = probe.prefix_tokens
    names = ", ".join(probe.token_labels[:extra]) if extra else "no extra tokens"
    parts.append(f" {rows}×{cols} = {rows * cols} patches of {pw}×{ph} px, plus {extra} "
                 f"({names}): {rows * cols + extra} tokens. Preprocessing from {spec.source or 'the model'}.")
    return "".join(parts)


def gridded_input(probe, min_side: int = 256) -> tuple[np.ndarray, int]:
    """The model input enlarged by an integer factor with the patch grid drawn on it."""
    mi = np.asarray(probe.model_input)
    k = max(1, min_side // max(mi.shape[:2]))
    big = np.repeat(np.repeat(mi, k, 0), k, 1).copy()
    ph, pw = probe.patch_size
    # Lines lighten what is under them (0.3 * v + 178 stays within 0..255).
    for r in range(1, probe.grid[0]):
        big[r * ph * k, :] = big[r * ph * k, :] // 3 + 170
    for c in range(1, probe.grid[1]):
        big[:, c * pw * k] = big[:, c * pw * k] // 3 + 170
    return big, k


class PatchesTab(QWidget):
    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.setObjectName("inspect.patches_tab")
        self.panel = panel
        self.session = panel.session
        st = self.session.inspect
        lay = QVBoxLayout(self)
        self.run_button = QPushButton("Cut into patches (run the model)", self)
        self.run_button.setObjectName("inspect.run_patches")
        lay.addWidget(self.run_button)
        self.info = QLabel("", self)
        self.info.setObjectName("inspect.geometry_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        self.grid_check = QCheckBox("Show the model's crop and patches on the image", self)
        self.grid_check.setObjectName("inspect.model_grid")
        self.grid_check.setChecked(st.model_grid)
        lay.addWidget(self.grid_check)
        self.hover_info = QLabel("", self)
        self.hover_info.setObjectName("inspect.model_patch_info")
        self.hover_info.setWordWrap(True)
        lay.addWidget(self.hover_info)
        self.input_view = HeatmapLabel("inspect.model_input_view", self, 180)
        self.input_view.setToolTip("The image as the model sees it, cut into its patches: click a patch")
        lay.addWidget(self.input_view, 1)
        self.open_button = QPushButton("Inspect patch…", self)
        self.open_button.setObjectName("inspect.open_patch")
        lay.addWidget(self.open_button)
        self._scale = 1

        self.run_button.clicked.connect(lambda: self.panel.jobs.probe())
        self.grid_check.toggled.connect(lambda on: setattr(st, "model_grid", on))
        self.input_view.cell_clicked.connect(self._input_clicked)
        self.open_button.clicked.connect(self._open_clicked)
        self.refresh()

    def _input_clicked(self, row: int, col: int) -> None:
        p = self.session.inspect.probe
        if p is not None:
            ph, pw = p.patch_size
            r, c = row // (ph * self._scale), col // (pw * self._scale)
            self.panel.open_patch((r, c, r * p.grid[1] + c))

    def _open_clicked(self) -> None:
        st = self.session.inspect
        p = st.probe
        if p is None:
            self.session.app.report_error("Run the model first: the patch inspector reads its tokens.")
            return
        patch = st.model_hover or st.patch
        if patch is None:
            r, c = p.grid[0] // 2, p.grid[1] // 2
            patch = (r, c, r * p.grid[1] + c)
        self.panel.open_patch(patch)

    def refresh(self) -> None:
        st = self.session.inspect
        p = st.probe
        vit = self.panel.is_vit()
        self.run_button.setEnabled(vit and not st.running("probe"))
        self.open_button.setEnabled(p is not None)
        if st.running("probe"):
            self.info.setText(st.jobs["probe"])
        elif p is not None:
            self.info.setText(geometry_text(p))
        else:
            self.info.setText("Open an image: the model's patches appear here." if vit else NOT_A_VIT)
        if p is None:
            self.input_view.set_rgb(None)
            self.hover_info.setText("")
            return
        big, self._scale = gridded_input(p)
        self.input_view.set_rgb(big)
        self.show_hover(st.model_hover)

    def show_hover(self, patch) -> None:
        p = self.session.inspect.probe
        if p is None:
            return
        if patch is None:
            self.hover_info.setText("Hover the image to see a patch's index; click it to inspect it.")
            return
        r, c, i = patch
        self.hover_info.setText(f"Patch row {r}, column {c}: patch {i} of {p.grid[0] * p.grid[1]}, "
                                f"token {p.prefix_tokens + i} ({p.token_labels[p.prefix_tokens + i]})")

    def canvas_view(self) -> Optional[CanvasView]:
        p = self.session.inspect.probe
        if p is None:
            return None
        # No map: only dim what the crop leaves out.
        return CanvasView(np.zeros(p.grid, np.float32), p.geometry, False, "", "model-crop")


class PatchInspector(QDialog):
    """One patch of the cached ViT probe: pixels, token barcode, and two similarity maps."""

    def __init__(self, panel) -> None:
        super().__init__(panel.window_)
        self.setObjectName("inspect.patch_inspector")
        self.setWindowTitle("Patch inspector")
        self.setModal(False)
        self.panel = panel
        self.session = panel.session
        st = self.session.inspect
        lay = QVBoxLayout(self)
        self.title = QLabel("", self)
        self.title.setObjectName("inspect.patch_title")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)

        top = QHBoxLayout()
        self.pixels = HeatmapLabel("inspect.patch_pixels", self, 96)
        self.pixels.setToolTip("The patch's pixels, as the model saw them")
        top.addWidget(self.pixels)
        right = QVBoxLayout()
        row = QHBoxLayout()
        self.layer_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.layer_slider.setObjectName("inspect.patch_layer")
        self.layer_slider.setToolTip("The layer whose token vector and similarities are shown")
        self.layer_label = QLabel("", self)
        row.addWidget(QLabel("Layer", self))
        row.addWidget(self.layer_slider, 1)
        row.addWidget(self.layer_label)
        right.addLayout(row)
        self.barcode = BarcodeWidget("inspect.patch_barcode", self)
        self.barcode.setToolTip("The patch's token vector after this layer: blue negative, red positive")
        right.addWidget(self.barcode)
        right.addStretch(1)
        top.addLayout(right, 1)
        lay.addLayout(top)

        maps = QGridLayout()
        self.token_sim = HeatmapLabel("inspect.patch_token_sim", self, 150)
        self.token_sim.setToolTip("Cosine similarity of this patch's token to every patch's token at this "
                                  "layer; click a patch to inspect it")
        self.pos_sim = HeatmapLabel("inspect.patch_pos_sim", self, 150)
        self.pos_sim.setToolTip("Cosine similarity of this position's learned positional embedding to "
                                "every other position's")
        self.token_caption = QLabel("Token similarity at this layer", self)
        self.pos_caption = QLabel("Positional-embedding similarity", self)
        maps.addWidget(self.token_caption, 0, 0)
        maps.addWidget(self.pos_caption, 0, 1)
        maps.addWidget(self.token_sim, 1, 0)
        maps.addWidget(self.pos_sim, 1, 1)
        lay.addLayout(maps, 1)
        self.on_canvas = QCheckBox("Show the token similarity on the image", self)
        self.on_canvas.setObjectName("inspect.patch_on_canvas")
        self.on_canvas.setChecked(True)
        lay.addWidget(self.on_canvas)
        self.export = ExportBar("patch", self.export_item, self.session, self)
        lay.addWidget(self.export)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.setObjectName("inspect.patch_buttons")
        buttons.rejected.connect(self.close)
        lay.addWidget(buttons)
        self.resize(460, 560)

        self.layer_slider.valueChanged.connect(lambda v: setattr(st, "patch_layer", int(v)))
        self.token_sim.cell_clicked.connect(self._cell)
        self.pos_sim.cell_clicked.connect(self._cell)
        self.on_canvas.toggled.connect(lambda _on: self.panel.refresh_canvas())

    def _cell(self, row: int, col: int) -> None:
        p = self.session.inspect.probe
        if p is not None:
            self.session.inspect.patch = (row, col, row * p.grid[1] + col)

    def showing_on_canvas(self) -> bool:
        return self.isVisible() and self.on_canvas.isChecked() and self.session.inspect.patch is not None

    def canvas_view(self) -> Optional[CanvasView]:
        st = self.session.inspect
        sim = st.patch_similarity()
        if sim is None:
            return None
        r, c, _ = st.patch
        return CanvasView(sim, st.probe.geometry, False, "coolwarm",
                          f"patch-r{r}c{c}-similarity-layer{st.patch_layer + 1}", COSINE)

    def export_item(self) -> Optional[ExportItem]:
        view, image = self.canvas_view(), self.session.app.image
        if view is None or image is None:
            return None
        return ExportItem(view.name, image_composite(image.rgb(), view, self.session.inspect.opacity),
                          np.asarray(view.values, np.float32))

    def closeEvent(self, event) -> None:
        super().closeEvent(event)
        self.panel.refresh_canvas()

    def refresh(self) -> None:
        st = self.session.inspect
        p, patch = st.probe, st.patch
        if p is None or patch is None:
            self.title.setText("No patch: run the model and click a patch.")
            for view in (self.pixels, self.token_sim, self.pos_sim):
                view.set_rgb(None)
            self.barcode.set_vector(None)
            return
        r, c, i = patch
        n = len(p.layer_names)
        self.layer_slider.blockSignals(True)
        self.layer_slider.setRange(0, n - 1)
        self.layer_slider.setValue(st.patch_layer)
        self.layer_slider.blockSignals(False)
        self.layer_label.setText(f"{st.patch_layer + 1} of {n}")
        token = p.prefix_tokens + i
        self.title.setText(f"Patch row {r}, column {c}: patch {i} of {p.grid[0] * p.grid[1]}, "
                           f"token {token} — {p.model_name}, layer {st.patch_layer + 1} "
                           f"({p.layer_names[st.patch_layer]})")
        self.pixels.set_rgb(st.patch_pixels())
        self.barcode.set_vector(st.patch_token())
        sim = st.patch_similarity()
        self.token_sim.set_rgb(heat_rgb(sim, "coolwarm", COSINE), (r, c))
        self.token_caption.setText(f"Token similarity at layer {st.patch_layer + 1}: "
                                   f"{sim.min():+.2f} … {sim.max():+.2f}")
        pos = st.position_similarity()
        if pos is None:
            self.pos_sim.set_rgb(None, placeholder="This model has no learned\npositional embedding")
        else:
            self.pos_sim.set_rgb(heat_rgb(pos, "coolwarm", COSINE), (r, c))
