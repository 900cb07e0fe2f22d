"""The label workspace's Region tab: type a word, see where it is (a patch-similarity heatmap over the
canvas), threshold it into a mask and send the mask to paint as an inpainting mask."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSlider, QVBoxLayout, QWidget)

from studio.core.label_requests import REGION_METHODS, RegionRequest, region_overlay

REGION_KEY = "label.region"


class LabelRegionWidget(QWidget):
    def __init__(self, session, window, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("label.region_panel")
        self.session = session
        self.window_ = window
        st = session.label
        lay = QVBoxLayout(self)
        intro = QLabel("Where in the image is a word? Each patch token of the vision tower is projected "
                       "into the joint space and compared with the word's text embedding.", self)
        intro.setWordWrap(True)
        lay.addWidget(intro)
        row = QHBoxLayout()
        self.word_edit = QLineEdit(self)
        self.word_edit.setObjectName("label.region_word")
        self.word_edit.setPlaceholderText("A word or label, e.g. red circle")
        self.run_button = QPushButton("Show where", self)
        self.run_button.setObjectName("label.run_region")
        row.addWidget(self.word_edit, 1)
        row.addWidget(self.run_button)
        lay.addLayout(row)

        form = QFormLayout()
        self.method_combo = QComboBox(self)
        self.method_combo.setObjectName("label.region_method")
        for key, text in REGION_METHODS.items():
            self.method_combo.addItem(text, key)
        self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(st.region_method)))
        self.method_combo.setToolTip("The value path follows objects far better in CLIPs trained on their "
                                     "pooled output; “as they are” is the plain projection of the tokens")
        form.addRow("Map from", self.method_combo)
        self.threshold = QSlider(Qt.Orientation.Horizontal, self)
        self.threshold.setObjectName("label.mask_threshold")
        self.threshold.setRange(0, 100)
        self.threshold.setValue(int(round(st.mask_threshold * 100)))
        self.threshold.setToolTip("Patches at or above this share of the map's range form the mask")
        self.threshold_value = QLabel(f"{st.mask_threshold:.2f}", self)
        trow = QHBoxLayout()
        trow.addWidget(self.threshold, 1)
        trow.addWidget(self.threshold_value)
        form.addRow("Mask threshold", trow)
        lay.addLayout(form)
        self.overlay_check = QCheckBox("Show the map on the canvas", self)
        self.overlay_check.setObjectName("label.show_overlay")
        self.overlay_check.setChecked(st.show_overlay)
        lay.addWidget(self.overlay_check)
        self.paint_button = QPushButton("Send mask to paint", self)
        self.paint_button.setObjectName("label.send_to_paint")
        self.paint_button.setEnabled(False)
        lay.addWidget(self.paint_button)
        self.info = QLabel("", self)
        self.info.setObjectName("label.region_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        lay.addStretch(1)

        self.word_edit.setText(st.region_word)
        self.word_edit.textChanged.connect(lambda t: setattr(st, "region_word", t))
        self.word_edit.returnPressed.connect(self.run)
        self.run_button.clicked.connect(self.run)
        self.threshold.valueChanged.connect(lambda v: setattr(st, "mask_threshold", v / 100.0))
        self.method_combo.currentIndexChanged.connect(self._method_changed)
        self.overlay_check.toggled.connect(lambda on: setattr(st, "show_overlay", on))
        self.paint_button.clicked.connect(self.send_to_paint)
        st.changed.connect(self._on_state)
        session.app.changed.connect(self._on_app)

    # -- actions --------------------------------------------------------------------------
    def run(self, word: str | None = None) -> None:
        s, st = self.session, self.session.label
        if word:
            st.region_word = word
        if s.app.image is None:
            s.app.report_error("Open an image first (File > Open, drag and drop, or paste).")
            return
        if not st.region_word.strip():
            s.app.report_error("Type a word or label to find in the image.")
            return
        if not st.model_id:
            s.app.report_error("There is no CLIP model to run: add one in Models > Manager.")
            return
        req = RegionRequest(image=s.app.image, model_id=st.model_id, label=st.region_word,
                            templates=st.template_list(), method=st.region_method)
        st.update(region_busy=True, region_status="Running…")
        s.runtime.submit(req, key=REGION_KEY, title="Word to region", on_result=self._on_result,
                         on_error=self._on_error,
                         on_cancelled=lambda: st.update(region_busy=False, region_status="Cancelled"))

    def _method_changed(self, index: int) -> None:
        st = self.session.label
        st.region_method = self.method_combo.itemData(index)
        if st.region is not None and not st.region_busy:
            self.run()  # show the same word with the other method

    def _on_result(self, result) -> None:
        st = self.session.label
        img = self.session.app.image
        if img is None or img.size != result.image_size:
            st.update(region_busy=False, region_status="The image changed; run again.")
            return
        st.update(region=result, region_busy=False, region_status="")

    def _on_error(self, err) -> None:
        self.session.label.update(region_busy=False, region_status="Failed")
        self.session.app.report_error(err.user_message, getattr(err, "detail", ""))

    def send_to_paint(self) -> None:
        s = self.session
        mask = s.label.mask()
        if mask is None:
            s.app.report_error("Show where a word is first: the mask comes from its map.")
            return
        share = float((mask > 0).mean())
        if share == 0.0:
            s.app.report_error("The mask is empty: lower the mask threshold.")
            return
        s.app.mask = mask
        s.app.message = f"Mask of “{s.label.region.label}” sent to paint ({share * 100:.0f}% of the image)"
        s.app.set_workspace("paint")

    # -- state → widgets ------------------------------------------------------------------
    def refresh_overlay(self) -> None:
        s, st = self.session, self.session.label
        canvas = getattr(self.window_, "canvas", None)
        if canvas is None:
            return
        if s.app.workspace != "label":
            return  # other workspaces own the overlay while they are shown
        if st.region is None or not st.show_overlay or s.app.image is None:
            canvas.set_overlay(None)
            return
        canvas.set_overlay(region_overlay(st.region, st.mask_threshold), 0.6)

    def _on_state(self, name: str, value) -> None:
        st = self.session.label
        if name == "region":
            self.paint_button.setEnabled(value is not None)
            self._show_info()
            self.refresh_overlay()
        elif name == "mask_threshold":
            self.threshold_value.setText(f"{value:.2f}")
            if self.threshold.value() != int(round(value * 100)):
                self.threshold.setValue(int(round(value * 100)))
            self._show_info()
            self.refresh_overlay()
        elif name == "show_overlay":
            self.refresh_overlay()
        elif name == "region_busy":
            self.run_button.setEnabled(not value)
        elif name == "region_status":
            if value:
                self.info.setText(value)
            else:
                self._show_info()
        elif name == "region_word" and self.word_edit.text() != value:
            self.word_edit.setText(value)
        elif name == "model_id" and st.region is None:
            self.refresh_overlay()

    def _on_app(self, name: str, value) -> None:
        if name == "image":
            self.session.label.region = None  # the map belonged to the old image
        elif name == "workspace":
            canvas = getattr(self.window_, "canvas", None)
            if value == "label":
                self.refresh_overlay()
            elif canvas is not None and self.session.label.region is not None:
                canvas.set_overlay(None)

    def _show_info(self) -> None:
        st = self.session.label
        r = st.region
        if r is None:
            self.info.setText("")
            return
        mask = st.mask()
        share = float((mask > 0).mean()) if mask is not None else 0.0
        gh, gw = r.heatmap.shape
        how = "value path" if r.method == "value" else "tokens"
        self.info.setText(f"“{r.label}” ({how}): {gw}×{gh} patches, cosine {r.heatmap.min():+.3f} … "
                          f"{r.heatmap.max():+.3f} (whole image {r.global_cosine:+.3f}); "
                          f"mask covers {share * 100:.0f}% ({r.seconds:.2f} s)")
