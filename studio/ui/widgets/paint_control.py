"""The paint panel's Control tab: three ControlNet units (kind, model, image source, preprocessor,
weight, start/end, a preview of the control image) and the two editors that make control images by
hand: the pose editor and the depth / scribble painter."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QPushButton, QSlider, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.paint_requests import CONTROL_KINDS, PREPROCESSORS, PreprocessRequest, render_pose
from studio.state.paint_state import SOURCE_LABELS, SOURCES, UNIT_COUNT
from studio.ui.convert import array_to_pixmap
from studio.ui.widgets.paint_depth import TOOLS, DepthPainter
from studio.ui.widgets.paint_pose import PoseEditor

THUMB = 96


class UnitWidget(QWidget):
    def __init__(self, session, index: int, parent=None) -> None:
        super().__init__(parent)
        n = index + 1
        self.setObjectName(f"paint.unit{n}")
        self.session = session
        self.index = index
        p = f"paint.unit{n}"
        lay = QVBoxLayout(self)
        self.enabled = QCheckBox(f"Use control unit {n}", self)
        self.enabled.setObjectName(f"{p}.enabled")
        lay.addWidget(self.enabled)
        form = QFormLayout()
        self.kind = QComboBox(self)
        self.kind.setObjectName(f"{p}.kind")
        self.kind.addItems(list(CONTROL_KINDS))
        self.model = QComboBox(self)
        self.model.setObjectName(f"{p}.model")
        self.source = QComboBox(self)
        self.source.setObjectName(f"{p}.source")
        for s in SOURCES:
            self.source.addItem(SOURCE_LABELS[s], s)
        self.load = QPushButton("Choose image…", self)
        self.load.setObjectName(f"{p}.load")
        self.preprocessor = QComboBox(self)
        self.preprocessor.setObjectName(f"{p}.preprocessor")
        for pre in PREPROCESSORS.values():
            self.preprocessor.addItem(pre.label, pre.id)
        self.weight = QDoubleSpinBox(self)
        self.weight.setObjectName(f"{p}.weight")
        self.weight.setRange(0.0, 2.0)
        self.weight.setSingleStep(0.05)
        self.start = QDoubleSpinBox(self)
        self.start.setObjectName(f"{p}.start")
        self.end = QDoubleSpinBox(self)
        self.end.setObjectName(f"{p}.end")
        for w in (self.start, self.end):
            w.setRange(0.0, 1.0)
            w.setSingleStep(0.05)
        when = QHBoxLayout()
        when.addWidget(self.start)
        when.addWidget(QLabel("to", self))
        when.addWidget(self.end)
        form.addRow("Kind", self.kind)
        form.addRow("ControlNet", self.model)
        form.addRow("Image", self.source)
        form.addRow("", self.load)
        form.addRow("Preprocessor", self.preprocessor)
        form.addRow("Weight", self.weight)
        form.addRow("Active from", when)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.preview = QPushButton("Preview control image", self)
        self.preview.setObjectName(f"{p}.preview")
        self.thumb = QLabel(self)
        self.thumb.setObjectName(f"{p}.thumb")
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setStyleSheet("background: #202024;")
        row.addWidget(self.preview)
        row.addWidget(self.thumb)
        lay.addLayout(row)
        lay.addStretch(1)

        self._syncing = False
        self.refresh_models()
        self.sync()
        self.enabled.toggled.connect(lambda v: self._set(enabled=bool(v)))
        self.kind.currentTextChanged.connect(lambda v: self._set(kind=v))
        self.model.currentIndexChanged.connect(lambda i: self._set(model_id=self.model.itemData(i) or ""))
        self.source.currentIndexChanged.connect(lambda i: self._set(source=self.source.itemData(i)))
        self.preprocessor.currentIndexChanged.connect(lambda i: self._set(preprocessor=self.preprocessor.itemData(i)))
        self.weight.valueChanged.connect(lambda v: self._set(weight=float(v)))
        self.start.valueChanged.connect(lambda v: self._set(start=float(v)))
        self.end.valueChanged.connect(lambda v: self._set(end=float(v)))
        self.load.clicked.connect(self.choose_file)
        self.preview.clicked.connect(self.run_preview)
        session.paint.changed.connect(lambda name, v: self.sync() if name == "units" else None)

    @property
    def unit(self):
        return self.session.paint.units[self.index]

    def _set(self, **changes) -> None:
        if not self._syncing:
            self.session.paint.set_unit(self.index, **changes)

    def refresh_models(self) -> None:
        self._syncing = True
        self.model.clear()
        for card in self.session.catalog.cards("controlnet"):
            self.model.addItem(card.name, card.id)
        self._syncing = False

    def sync(self) -> None:
        u = self.unit
        self._syncing = True
        try:
            self.enabled.setChecked(u.enabled)
            self.kind.setCurrentText(u.kind)
            i = self.model.findData(u.model_id)
            if i < 0 and u.model_id:
                self.model.addItem(f"{u.model_id} (not in the catalog)", u.model_id)
                i = self.model.count() - 1
            self.model.setCurrentIndex(i)
            self.source.setCurrentIndex(max(0, self.source.findData(u.source)))
            self.preprocessor.setCurrentIndex(max(0, self.preprocessor.findData(u.preprocessor)))
            self.weight.setValue(u.weight)
            self.start.setValue(u.start)
            self.end.setValue(u.end)
            self.load.setVisible(u.source == "file")
            self.load.setText(f"{u.file_name} …" if u.file_name else "Choose image…")
            for w in (self.kind, self.model, self.source, self.preprocessor, self.weight, self.start, self.end,
                      self.load, self.preview):
                w.setEnabled(u.enabled)
        finally:
            self._syncing = False

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Control image", str(Path.home()),
                                              "Images (*.png *.jpg *.jpeg *.webp *.bmp)")
        if path:
            self.set_file(path)

    def set_file(self, path: str) -> None:
        from studio.media.imageio import load_image

        try:
            img = load_image(path)
        except BadInputError as exc:
            self.session.app.report_error(exc.user_message, exc.detail)
            return
        self._set(file_image=img, file_name=Path(path).name, source="file")

    def source_image(self) -> StudioImage | None:
        st, u = self.session.paint, self.unit
        if u.source == "image":
            return self.session.app.image
        if u.source == "file":
            return u.file_image
        w, h = st.width, st.height
        if u.source == "pose":
            return StudioImage(render_pose(st.people, w, h))
        if st.depth is not None:
            import numpy as np

            return StudioImage(np.repeat(st.depth[..., None], 3, axis=2))
        return None

    def run_preview(self) -> None:
        u = self.unit
        if u.preprocessor == "inpaint":
            self.session.app.message = "The inpaint control is made from the image and the mask when generating."
            return
        img = self.source_image()
        if img is None:
            self.session.app.report_error(f"Control unit {self.index + 1} has no image yet: choose its source.")
            return
        self.thumb.setText("…")
        self.session.runtime.submit(PreprocessRequest(img, u.preprocessor), key=f"paint.preview{self.index}",
                                    title="Control preview", on_result=self._show,
                                    on_error=lambda e: (self.thumb.setText("✗"),
                                                        self.session.app.report_error(e.user_message, e.detail)))

    def _show(self, result) -> None:
        pix = array_to_pixmap(result.image.pixels)
        self.thumb.setPixmap(pix.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                        Qt.TransformationMode.SmoothTransformation))


class ControlTab(QWidget):
    def __init__(self, session, undo, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("paint.control_tab")
        self.session = session
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.units_tabs = QTabWidget(self)
        self.units_tabs.setObjectName("paint.units")
        self.units = [UnitWidget(session, i, self) for i in range(UNIT_COUNT)]
        for i, u in enumerate(self.units):
            self.units_tabs.addTab(u, f"Unit {i + 1}")
        lay.addWidget(self.units_tabs)

        self.editors = QTabWidget(self)
        self.editors.setObjectName("paint.editors")
        pose_page = QWidget(self)
        pl = QVBoxLayout(pose_page)
        self.pose = PoseEditor(session, undo, pose_page)
        pl.addWidget(self.pose, 1)
        row = QHBoxLayout()
        self.pose_add = self._button(pose_page, row, "Add", "paint.pose_add", "Add a standing person")
        self.pose_remove = self._button(pose_page, row, "Remove", "paint.pose_remove", "Remove the selected person")
        self.pose_mirror = self._button(pose_page, row, "Mirror", "paint.pose_mirror",
                                        "Mirror the selected person left to right")
        self.pose_detect = self._button(pose_page, row, "From image", "paint.pose_detect",
                                        "Start from the people OpenPose finds in the current image")
        pl.addLayout(row)
        self.editors.addTab(pose_page, "Pose")

        depth_page = QWidget(self)
        dl = QVBoxLayout(depth_page)
        self.depth = DepthPainter(session, undo, depth_page)
        dl.addWidget(self.depth, 1)
        form = QFormLayout()
        self.depth_tool = QComboBox(depth_page)
        self.depth_tool.setObjectName("paint.depth_tool")
        self.depth_tool.addItems(list(TOOLS))
        self.depth_value = QSlider(Qt.Orientation.Horizontal, depth_page)
        self.depth_value.setObjectName("paint.depth_value")
        self.depth_value.setRange(0, 255)
        self.depth_value.setValue(self.depth.value)
        self.depth_value.setToolTip("Depth to paint: 255 = nearest (white), 0 = farthest (black)")
        self.depth_size = QSpinBox(depth_page)
        self.depth_size.setObjectName("paint.depth_size")
        self.depth_size.setRange(2, 256)
        self.depth_size.setValue(self.depth.brush)
        form.addRow("Tool", self.depth_tool)
        form.addRow("Depth", self.depth_value)
        form.addRow("Brush", self.depth_size)
        dl.addLayout(form)
        row = QHBoxLayout()
        self.depth_blur = self._button(depth_page, row, "Blur", "paint.depth_blur", "Soften the whole map")
        self.depth_clear = self._button(depth_page, row, "Clear", "paint.depth_clear", "Start again")
        self.depth_detect = self._button(depth_page, row, "From image", "paint.depth_detect",
                                         "Estimate depth from the current image (MiDaS)")
        dl.addLayout(row)
        self.editors.addTab(depth_page, "Depth / scribble")
        lay.addWidget(self.editors, 1)

        self.pose_add.clicked.connect(self.pose.add_person)
        self.pose_remove.clicked.connect(self.pose.remove_person)
        self.pose_mirror.clicked.connect(self.pose.mirror_person)
        self.pose_detect.clicked.connect(self.detect_pose)
        self.depth_tool.currentTextChanged.connect(lambda t: setattr(self.depth, "tool", t))
        self.depth_value.valueChanged.connect(lambda v: setattr(self.depth, "value", int(v)))
        self.depth_size.valueChanged.connect(lambda v: setattr(self.depth, "brush", int(v)))
        self.depth_blur.clicked.connect(self.depth.blur_map)
        self.depth_clear.clicked.connect(self.depth.clear)
        self.depth_detect.clicked.connect(self.detect_depth)

    @staticmethod
    def _button(parent, row, text: str, name: str, tip: str) -> QPushButton:
        b = QPushButton(text, parent)
        b.setObjectName(name)
        b.setToolTip(tip)
        row.addWidget(b)
        return b

    def refresh_models(self) -> None:
        for u in self.units:
            u.refresh_models()
            u.sync()

    def _image(self) -> StudioImage | None:
        img = self.session.app.image
        if img is None:
            self.session.app.report_error("Open an image first: the editor starts from what it finds in it.")
        return img

    def detect_pose(self) -> None:
        img = self._image()
        if img is None:
            return
        self.session.app.message = "Looking for people…"
        self.session.runtime.submit(
            PreprocessRequest(img, "openpose", keypoints=True), key="paint.detect_pose", title="Detect pose",
            on_result=lambda r: self.pose.set_people(r.people),
            on_error=lambda e: self.session.app.report_error(e.user_message, e.detail))

    def detect_depth(self) -> None:
        img = self._image()
        if img is None:
            return
        w, h = self.depth.map_size()

        def done(result) -> None:
            self.depth.edit(result.image.pixels[..., 0].copy(), "Detected depth")

        self.session.app.message = "Estimating depth…"
        self.session.runtime.submit(
            PreprocessRequest(img, "depth_midas", width=w, height=h), key="paint.detect_depth",
            title="Estimate depth", on_result=done,
            on_error=lambda e: self.session.app.report_error(e.user_message, e.detail))
