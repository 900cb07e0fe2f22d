"""The inspect workspace's Features tab: what each layer sees.

A layer (combo or layer tree, with output shapes), its channel grid (each channel normalised on
its own, coloured), a channel shown large over the image (through the preprocessing geometry),
the most active channels, the layer's activation histogram, and the receptive field of a clicked
location (its box drawn on the canvas). Choosing a channel redraws from the cached maps; choosing
a layer runs the model once on the GPU lane (latest wins).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QSpinBox, QTabWidget, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from studio.core.colormap import COLORMAPS, mosaic_rgb
from studio.ui.panels.inspect_jobs import spatial_layers
from studio.ui.widgets.inspect_export import ExportBar, ExportItem
from studio.ui.widgets.inspect_overlay import CanvasView, image_composite
from studio.ui.widgets.inspect_plots import ChannelGrid, HistogramWidget

RF_COLOUR = QColor(255, 60, 200)


def _shape_text(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return f"{shape[0]} × {shape[1]}×{shape[2]}"
    if len(shape) == 2:
        return f"{shape[0]} tokens × {shape[1]}"
    return " × ".join(str(s) for s in shape) or "scalar"


class FeaturesTab(QWidget):
    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.setObjectName("inspect.features_tab")
        self.panel = panel
        self.session = panel.session
        st = self.session.inspect
        lay = QVBoxLayout(self)

        form = QFormLayout()
        self.layer_combo = QComboBox(self)
        self.layer_combo.setObjectName("inspect.layer")
        self.layer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_combo.setMinimumContentsLength(12)
        self.layer_combo.setEnabled(False)
        self.layer_combo.setToolTip("Run the model once to list its layers.")
        self.cmap_combo = QComboBox(self)
        self.cmap_combo.setObjectName("inspect.colormap")
        self.cmap_combo.addItems(COLORMAPS)
        self.run_button = QPushButton("Show feature maps", self)
        self.run_button.setObjectName("inspect.run_features")
        self.run_button.setToolTip("Run the model on the image (F5)")
        self.run_button.setShortcut("F5")
        crow = QHBoxLayout()
        crow.addWidget(self.cmap_combo)
        crow.addWidget(self.run_button, 1)
        form.addRow("Layer", self.layer_combo)
        form.addRow("Colormap", crow)
        lay.addLayout(form)
        self.info = QLabel("", self)
        self.info.setObjectName("inspect.feature_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)

        self.sections = QTabWidget(self)
        self.sections.setObjectName("inspect.feature_sections")
        self.sections.setDocumentMode(True)
        self.sections.addTab(self._build_channels(), "Channels")
        self.sections.addTab(self._build_tree(), "Tree")
        self.sections.addTab(self._build_stats(), "Most active")
        self.sections.addTab(self._build_rf(), "Receptive field")
        lay.addWidget(self.sections, 1)

        self.cmap_combo.setCurrentText(st.colormap)
        self.cmap_combo.currentTextChanged.connect(lambda name: setattr(st, "colormap", name))
        self.layer_combo.currentIndexChanged.connect(self._layer_changed)
        self.run_button.clicked.connect(self.panel.jobs.run_features)
        self.view.tile_clicked.connect(self._tile_clicked)
        self.channel_spin.valueChanged.connect(self._spin_changed)
        self.tree.itemClicked.connect(self._tree_clicked)
        self.top_list.itemClicked.connect(lambda item: self.choose_channel(item.data(Qt.ItemDataRole.UserRole)))
        self.rf_check.toggled.connect(lambda on: setattr(st, "rf_mode", on))

    # -- construction ---------------------------------------------------------------------------
    def _build_channels(self) -> QWidget:
        page = QWidget(self)
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)
        self.view = ChannelGrid("inspect.feature_view", page)
        lay.addWidget(self.view, 1)
        row = QHBoxLayout()
        self.channel_spin = QSpinBox(page)
        self.channel_spin.setObjectName("inspect.channel")
        self.channel_spin.setRange(-1, 0)
        self.channel_spin.setSpecialValueText("none")
        self.channel_spin.setToolTip("The channel shown large over the image (or click it in the grid)")
        row.addWidget(QLabel("Channel", page))
        row.addWidget(self.channel_spin)
        self.channel_info = QLabel("Click a channel to see it over the image.", page)
        self.channel_info.setObjectName("inspect.channel_info")
        self.channel_info.setWordWrap(True)
        row.addWidget(self.channel_info, 1)
        lay.addLayout(row)
        self.export = ExportBar("channel", self.export_item, self.session, page)
        lay.addWidget(self.export)
        return page

    def _build_tree(self) -> QWidget:
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("inspect.layer_tree")
        self.tree.setHeaderLabels(["Layer", "Type", "Output"])
        self.tree.setToolTip("Every module that runs on an image, with its output shape; click one to show it")
        return self.tree

    def _build_stats(self) -> QWidget:
        page = QWidget(self)
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)
        self.top_list = QListWidget(page)
        self.top_list.setObjectName("inspect.top_channels")
        self.top_list.setToolTip("Channels with the highest mean activation on this image; click to show one")
        lay.addWidget(self.top_list, 1)
        self.histogram = HistogramWidget("inspect.histogram", page)
        lay.addWidget(self.histogram, 1)
        return page

    def _build_rf(self) -> QWidget:
        page = QWidget(self)
        lay = QVBoxLayout(page)
        self.rf_check = QCheckBox("Click the image to trace a receptive field", page)
        self.rf_check.setObjectName("inspect.rf_mode")
        self.rf_check.setToolTip("The input pixels whose change moves the clicked location of this layer "
                                 "(gradient of its channels' sum; Luo et al. 2016)")
        lay.addWidget(self.rf_check)
        self.rf_info = QLabel("", page)
        self.rf_info.setObjectName("inspect.rf_info")
        self.rf_info.setWordWrap(True)
        lay.addWidget(self.rf_info)
        lay.addStretch(1)
        return page

    # -- actions --------------------------------------------------------------------------------
    _syncing = False
    _items: dict = {}

    def _layer_changed(self, index: int) -> None:
        if index < 0 or self._syncing:
            return
        name = self.layer_combo.itemText(index)
        st = self.session.inspect
        if name and name != st.layer:
            st.layer = name
            if st.feature_maps is not None:
                self.panel.jobs.run_features()

    def choose_layer(self, name: str) -> None:
        """Show `name`'s channels (the layer tree and the top-k list call this)."""
        st = self.session.inspect
        if name != st.layer:
            st.layer = name
        if self.session.app.image is not None:
            self.panel.jobs.run_features()

    def _tree_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        name = item.data(0, Qt.ItemDataRole.UserRole)
        if name and item.data(1, Qt.ItemDataRole.UserRole):
            self.choose_layer(name)

    def _tile_clicked(self, index: int) -> None:
        chans = self.session.inspect.grid_channels
        if chans is not None and index < len(chans):
            self.choose_channel(int(chans[index]))

    def _spin_changed(self, value: int) -> None:
        if not self._syncing:
            self.choose_channel(None if value < 0 else value)

    def choose_channel(self, channel: Optional[int]) -> None:
        self.session.inspect.channel = channel

    def click_image(self, x: int, y: int) -> None:
        """A canvas click on this tab: the receptive field of that location, when asked for."""
        st = self.session.inspect
        if not st.rf_mode:
            return
        layer, grid, geo = self._layer_grid()
        if grid is None:
            self.session.app.report_error("Show a layer's feature maps first, then click the image.")
            return
        ix, iy = geo.original_to_input(x + 0.5, y + 0.5)
        iw, ih = geo.input_size
        if not (0 <= ix < iw and 0 <= iy < ih):
            self.session.app.message = "That point is outside the part of the image the model sees."
            return
        rows, cols = grid
        self.panel.jobs.receptive_field(layer, int(iy / ih * rows), int(ix / iw * cols))

    def _layer_grid(self):
        """(layer, (rows, cols) of its maps, geometry of the model's own preprocessing)."""
        st = self.session.inspect
        s = st.stats
        if s is not None and s.layer == st.layer and len(s.top_maps):
            return s.layer, tuple(s.top_maps.shape[1:]), s.geometry
        fm = st.feature_maps
        if fm is not None and st.grid_geometry is not None:
            return fm.layer, tuple(fm.maps.shape[1:]), st.grid_geometry
        return st.layer, None, None

    # -- the canvas -------------------------------------------------------------------------------
    def canvas_view(self) -> Optional[CanvasView]:
        st = self.session.inspect
        if st.rf_mode and st.rf is not None and st.rf.geometry is not None:
            return CanvasView(st.rf.erf, st.rf.geometry, True, "magma", f"receptive-field-{st.rf.layer}")
        found = st.channel_map()
        if found is None:
            return None
        values, geo = found
        return CanvasView(values, geo, False, st.colormap, f"channel{st.channel}-{st.layer}")

    def canvas_marks(self) -> dict:
        st = self.session.inspect
        rf = st.rf
        if st.rf_mode and rf is not None and rf.geometry is not None and rf.box[2] > rf.box[0]:
            box = rf.geometry.input_box_to_original(rf.box)
            return {"geometry": rf.geometry, "label": "model input",
                    "boxes": ((box, RF_COLOUR, f"receptive field of {rf.layer} [{rf.row}, {rf.col}]"),)}
        view = self.canvas_view()
        if view is not None and view.geometry is not None:
            return {"geometry": view.geometry, "label": "model input"}
        return {}

    def export_item(self) -> Optional[ExportItem]:
        """The chosen channel over the image; without one, the whole channel grid."""
        st = self.session.inspect
        view, image = self.canvas_view(), self.session.app.image
        if view is not None and image is not None:
            rgb = image_composite(image.rgb(), view, st.opacity)
            return ExportItem(view.name.replace(".", "_"), rgb, np.asarray(view.values, np.float32))
        fm = st.feature_maps
        if fm is None:
            return None
        return ExportItem(f"channels-{fm.layer}".replace(".", "_"), mosaic_rgb(fm.maps, st.colormap),
                          np.asarray(fm.maps, np.float32))

    # -- state → widgets ----------------------------------------------------------------------------
    def on_state(self, name: str, value) -> None:
        st = self.session.inspect
        if name == "layers":
            self._syncing = True
            self.layer_combo.clear()
            self.layer_combo.addItems(list(value))
            self.layer_combo.setEnabled(bool(value))
            self._select_layer(st.layer)
            self._syncing = False
        elif name == "layer":
            self._syncing = True
            self._select_layer(value)
            self._syncing = False
            self._mark_tree_layer()
        elif name in ("feature_maps", "colormap", "grid_channels"):
            self.render()
        elif name == "channel":
            self.render()
        elif name in ("busy", "status"):
            self.run_button.setEnabled(not st.busy)
            if st.status:
                self.info.setText(st.status)
            elif st.feature_maps is not None:
                self.render()
        elif name == "tree":
            self._fill_tree(value)
        elif name == "stats":
            self._show_stats(value)
        elif name == "rf":
            self._show_rf(value)
        elif name == "rf_mode":
            self.rf_check.setChecked(bool(value))
            self._show_rf(st.rf)
        elif name == "jobs":
            text = value.get("rf")
            if text:
                self.rf_info.setText(text)

    def _select_layer(self, name: str) -> None:
        if name and self.layer_combo.findText(name) < 0 and self.layer_combo.count():
            self.layer_combo.addItem(name)  # a layer picked in the tree that the list did not offer
        self.layer_combo.setCurrentText(name)

    def render(self) -> None:
        st = self.session.inspect
        res = st.feature_maps
        self._syncing = True
        total = st.channels_total()
        self.channel_spin.setRange(-1, max(total - 1, 0))
        self.channel_spin.setValue(-1 if st.channel is None else st.channel)
        self._syncing = False
        if res is None:
            self.view.set_maps(None, st.colormap)
            self.info.setText(st.status or "")
            self._show_channel()
            return
        chans = st.grid_channels
        selected = None
        if st.channel is not None and chans is not None:
            hits = np.nonzero(np.asarray(chans) == st.channel)[0]
            selected = int(hits[0]) if hits.size else None
        self.view.set_maps(res.maps, st.colormap, selected)
        c, h, w = res.maps.shape
        if chans is not None and len(chans) and not np.array_equal(chans, np.arange(len(chans))):
            shown = f"the {c} most active of {res.channels_total}"
        else:
            shown = f"{c} of {res.channels_total}" if c < res.channels_total else f"{c}"
        note = "" if res.trained else " — untrained weights"
        self.info.setText(f"{res.layer}: {shown} channels, {w}×{h} each, input "
                          f"{res.input_size[0]}×{res.input_size[1]} ({res.seconds:.2f} s){note}")
        self._show_channel()

    def _show_channel(self) -> None:
        st = self.session.inspect
        if st.channel is None:
            self.channel_info.setText("Click a channel to see it over the image.")
            return
        found = st.channel_map()
        if found is None:
            self.channel_info.setText(f"Channel {st.channel} is not among the maps kept for this layer "
                                      "(the grid and the most active channels).")
            return
        v = found[0]
        self.channel_info.setText(f"Channel {st.channel}: {v.shape[1]}×{v.shape[0]}, "
                                  f"min {v.min():.3g}, mean {v.mean():.3g}, max {v.max():.3g}")

    def _fill_tree(self, tree) -> None:
        self._items = {}  # clear() deletes the items: no stale ones may stay reachable
        self.tree.clear()
        if tree is None:
            return
        ok = set(spatial_layers(tree))
        items: dict[str, QTreeWidgetItem] = {}
        for name, cls, shape in tree.layers:
            parent_name = name.rsplit(".", 1)[0] if "." in name else ""
            parent = items.get(parent_name)
            item = QTreeWidgetItem([name.rsplit(".", 1)[-1], cls, _shape_text(shape)])
            item.setData(0, Qt.ItemDataRole.UserRole, name)
            item.setData(1, Qt.ItemDataRole.UserRole, name in ok)
            item.setToolTip(0, name)
            if name not in ok:
                for col in range(3):
                    item.setForeground(col, QColor(130, 130, 140))
            (parent.addChild(item) if parent is not None else self.tree.addTopLevelItem(item))
            items[name] = item
        self._items = items
        self.tree.resizeColumnToContents(0)
        self._mark_tree_layer()

    def _mark_tree_layer(self) -> None:
        item = self._items.get(self.session.inspect.layer)
        if item is not None:
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)

    def _show_stats(self, stats) -> None:
        self.top_list.clear()
        if stats is None:
            self.histogram.set_histogram(None, None)
            return
        for rank, ch in enumerate(stats.top_channels[:8]):
            item = QListWidgetItem(f"{rank + 1}. channel {int(ch)}   mean {float(stats.channel_means[ch]):.3g}")
            item.setData(Qt.ItemDataRole.UserRole, int(ch))
            self.top_list.addItem(item)
        self.histogram.set_histogram(stats.hist_counts, stats.hist_edges, stats.layer)
        self._show_channel()

    def _show_rf(self, rf) -> None:
        if rf is None:
            self.rf_info.setText("Turn this on, then click the image: the box shows which input pixels "
                                 "reach that location of the current layer." if not self.rf_check.isChecked()
                                 else "Click the image to trace the receptive field there.")
            return
        x0, y0, x1, y1 = rf.box
        rows, cols = rf.layer_grid
        text = (f"{rf.layer} [{rf.row}, {rf.col}] of its {rows}×{cols} grid: "
                f"{x1 - x0}×{y1 - y0} input pixels (x {x0}–{x1}, y {y0}–{y1} of "
                f"{rf.input_size[0]}×{rf.input_size[1]}).")
        if rf.geometry is not None and x1 > x0:
            ox0, oy0, ox1, oy1 = rf.geometry.input_box_to_original(rf.box)
            text += f" On the image: about {ox1 - ox0:.0f}×{oy1 - oy0:.0f} px."
        if x1 <= x0:
            text = f"{rf.layer} [{rf.row}, {rf.col}]: no input pixel moves this location for this image."
        self.rf_info.setText(text)
