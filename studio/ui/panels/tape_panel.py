"""The frame tape workspace's panel: generate a clip from a prompt (or images), play and scrub it on the
timeline, fix frames (range re-render, paint round trip, in-betweening), check its consistency and
import/export it.

The panel turns clicks into frozen requests on the runtime (GPU lane: generation, re-render, CLIP
check; CPU lane: optical flow, import, export) and results into TapeState; the timeline, sparkline and
forms redraw from the state. While the tape workspace is shown it owns the canvas: the playhead's
frame (or the render's live preview) with the onion skin as the canvas overlay. The dock sits under
the canvas on a fresh layout, where a timeline has room.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QScrollArea, QScrollBar, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from studio.core.errors import BadInputError, StudioError
from studio.core.image import StudioImage
from studio.core.tape_requests import (VIDEO_SUFFIXES, ClipConsistencyRequest, ConsistencyRequest, ExportClipRequest,
                                       ImportClipRequest, InbetweenRequest, pipeline_of, validate)
from studio.media.imageio import SUPPORTED_SUFFIXES
from studio.ui.widgets.tape_canvas import TapeCanvas
from studio.ui.widgets.tape_forms import CheckForm, EditForm, FilesForm, GenerateForm
from studio.ui.widgets.tape_sparkline import ConsistencySparkline
from studio.ui.widgets.tape_timeline import TapeTimeline

GENERATE_KEY, EDIT_KEY, CHECK_KEY, FILES_KEY = "tape.generate", "tape.edit", "tape.check", "tape.files"
AUTO_CHECK_FRAMES = 300  # a fresh clip up to this long gets its consistency sparkline by itself
MEDIA_FILTER = ("Videos and images (" + " ".join(f"*{s}" for s in VIDEO_SUFFIXES + SUPPORTED_SUFFIXES)
                + ");;All files (*)")
EXPORT_FILTERS = {"mp4": "MP4 video (*.mp4)", "webm": "WebM video (*.webm)", "gif": "GIF (*.gif)"}


class TapePanel(QWidget):
    def __init__(self, session, window=None, parent=None) -> None:
        super().__init__(parent or window)
        self.setObjectName("tape.panel")
        self.session = session
        self.window_ = window
        self.state = st = session.tape
        self._fresh_layout = not session.settings.get("ui.state")
        self._placed = False
        self._check_ids: tuple = ()
        self._restored = False
        self._ssim = None
        self.job = None

        self.timeline = TapeTimeline(st, self)
        self.view = TapeCanvas(st, lambda: getattr(window, "canvas", None))
        self.scroll_bar = QScrollBar(Qt.Orientation.Horizontal, self)
        self.scroll_bar.setObjectName("tape.scroll")
        self.sparkline = ConsistencySparkline(st, self.timeline, self)
        self.gen = GenerateForm(st, session.catalog, self)
        self.edit = EditForm(st, session.catalog, self)
        self.files = FilesForm(st, self)
        self.checks = CheckForm(st, session.catalog, self)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("tape.tabs")
        self.tabs.setUsesScrollButtons(True)
        for w, title in ((self.gen, "Generate"), (self.edit, "Edit"), (self.files, "Files"), (self.checks, "Check")):
            # Scrolled, so the dock under the canvas can stay short.
            area = QScrollArea(self.tabs)
            area.setWidgetResizable(True)
            area.setFrameShape(QFrame.Shape.NoFrame)
            area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            area.setWidget(w)
            self.tabs.addTab(area, title)
        self.tabs.setMinimumWidth(360)
        self.tabs.setMaximumWidth(420)

        transport = QHBoxLayout()
        self.first_button = self._button("tape.first_frame", "|◀", "First frame (Home)", lambda: st.seek(0))
        self.prev_button = self._button("tape.prev", "◀", "Previous frame (←)", lambda: st.step(-1))
        self.play_button = self._button("tape.play", "▶ Play", "Play / pause at the clip's fps (Space)",
                                        self.toggle_play)
        self.play_button.setCheckable(True)
        self.next_button = self._button("tape.next", "▶", "Next frame (→)", lambda: st.step(1))
        self.last_button = self._button("tape.last_frame", "▶|", "Last frame (End)", lambda: st.seek(st.count - 1))
        self.loop_check = QCheckBox("Loop", self)
        self.loop_check.setObjectName("tape.loop")
        self.loop_check.setChecked(st.loop)
        self.loop_check.toggled.connect(lambda v: setattr(st, "loop", bool(v)))
        self.frame_spin = QSpinBox(self)
        self.frame_spin.setObjectName("tape.frame")
        self.frame_spin.setToolTip("The playhead's frame")
        self.frame_spin.setRange(1, 1)
        self.frame_spin.valueChanged.connect(lambda v: st.seek(v - 1))
        self.fit_button = self._button("tape.fit", "Fit", "Whole clip in view (Ctrl+wheel zooms)", self.timeline.fit)
        self.fit_button.setMaximumWidth(50)
        self.frame_info = QLabel("", self)
        self.frame_info.setObjectName("tape.frame_info")
        for w in (self.first_button, self.prev_button, self.play_button, self.next_button, self.last_button):
            w.setMaximumWidth(90 if w is self.play_button else 44)
            transport.addWidget(w)
        transport.addWidget(self.loop_check)
        transport.addWidget(QLabel("Frame", self))
        transport.addWidget(self.frame_spin)
        transport.addWidget(self.fit_button)
        transport.addWidget(self.frame_info, 1)

        status = QHBoxLayout()
        self.status_label = QLabel("", self)
        self.status_label.setObjectName("tape.status")
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setObjectName("tape.progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setVisible(False)
        status.addWidget(self.status_label, 1)
        status.addWidget(self.progress_bar)

        right = QVBoxLayout()
        right.addLayout(transport)
        right.addWidget(self.timeline)
        right.addWidget(self.scroll_bar)
        right.addWidget(self.sparkline)
        right.addLayout(status)
        right.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs)
        lay.addLayout(right, 1)

        self.play_timer = QTimer(self)
        self.play_timer.setObjectName("tape.play_timer")
        self.play_timer.timeout.connect(self._tick)

        self._wire()
        self._sync_transport()

    def sizeHint(self) -> QSize:
        return QSize(1000, 320)

    def minimumSizeHint(self) -> QSize:
        return QSize(600, 240)

    def _button(self, name: str, text: str, tip: str, slot) -> QPushButton:
        b = QPushButton(text, self)
        b.setObjectName(name)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    @property
    def canvas(self):
        return getattr(self.window_, "canvas", None)

    def _wire(self) -> None:
        st, g, e = self.state, self.gen, self.edit
        st.changed.connect(self._on_state)
        self.session.app.changed.connect(self._on_app)
        self.timeline.scrubbed.connect(self._scrub)
        self.timeline.range_selected.connect(lambda a, b: st.update(in_point=a, out_point=b))
        self.timeline.play_toggled.connect(self.toggle_play)
        self.timeline.view_changed.connect(self._sync_scroll)
        self.scroll_bar.valueChanged.connect(lambda v: self.timeline.set_offset(float(v)))
        self.sparkline.jump.connect(self._scrub)
        g.generate.clicked.connect(self.generate)
        g.cancel.clicked.connect(self.cancel)
        g.add_key.clicked.connect(self.add_key)
        g.remove_key.clicked.connect(self.remove_key)
        g.first_image.clicked.connect(lambda: self.image_key("first"))
        g.last_image.clicked.connect(lambda: self.image_key("last"))
        g.clear_images.clicked.connect(lambda: st.update(first_image=None, last_image=None))
        e.set_in.clicked.connect(lambda: st.set_in())
        e.set_out.clicked.connect(lambda: st.set_out())
        e.clear_range.clicked.connect(st.clear_range)
        e.delete_range.clicked.connect(self.delete_range)
        e.rerender.clicked.connect(self.rerender)
        e.open_in_paint.clicked.connect(self.open_in_paint)
        e.take_from_canvas.clicked.connect(self.take_from_canvas)
        e.inbetween.clicked.connect(self.inbetween)
        self.files.import_file.clicked.connect(self.import_dialog)
        self.files.import_folder.clicked.connect(self.import_folder_dialog)
        self.files.export.clicked.connect(self.export_dialog)
        self.checks.check.clicked.connect(self.check)

    # -- small helpers ---------------------------------------------------------------------
    def _report(self, err) -> None:
        if not isinstance(err, StudioError):
            err = StudioError(str(err))
        self.session.app.report_error(err.user_message, getattr(err, "detail", ""))

    def _shown(self) -> bool:
        return self.session.app.workspace == "tape"

    def _submit(self, request, key: str, title: str, on_result, busy: bool = True):
        st = self.state
        if busy:
            st.update(busy=True, progress=0.0, status=f"{title}…")

        def failed(err):
            st.update(busy=False, progress=0.0, preview=None, status="Failed")
            self._report(err)

        try:
            self.job = self.session.runtime.submit(
                request, key=key, title=title, on_result=on_result, on_error=failed,
                on_progress=lambda f, t: st.update(progress=f, status=t) if busy else None,
                on_preview=self._on_preview,
                on_cancelled=lambda: st.update(busy=False, progress=0.0, preview=None, status="Cancelled"))
        except RuntimeError:  # the studio is shutting down
            st.update(busy=False)
            return None
        return self.job

    # -- generation ------------------------------------------------------------------------
    def generate(self) -> None:
        st, s = self.state, self.session
        self.session.app.clear_error()
        uid = uuid.uuid4().hex
        out = s.paths.library / "tape" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uid[:8]}"
        try:
            req = st.build_request(uid=uid, output_dir=str(out))
            if req.model_id not in s.catalog:
                raise BadInputError("Choose a video or motion model first.")
            validate(req, pipeline_of(s.catalog.get(req.model_id)))
        except StudioError as exc:
            self._report(exc)
            return
        st.last_seed = req.seed
        self.stop()
        self._submit(req, GENERATE_KEY, req.title, self._generated)

    def _generated(self, result) -> None:
        st = self.state
        st.set_clip(result.frames, result.fps, result.recipe, result.saved_to)
        windows = f", windows of {result.window_frames}" if result.window_frames < len(result.frames) else ""
        st.update(busy=False, preview=None, progress=1.0,
                  status=f"{len(result.frames)} frames in {result.seconds:.1f} s (seed {st.last_seed}{windows})")
        self.timeline.fit()
        self.session.app.message = f"Clip ready: {len(result.frames)} frames, {result.model_name}"
        if st.count <= AUTO_CHECK_FRAMES:
            self.check(busy=False)

    def cancel(self) -> None:
        if self.job is not None:
            self.session.runtime.cancel(self.job)

    def _on_preview(self, preview) -> None:
        if self.state.busy:
            self.state.preview = preview

    # -- keyframes -------------------------------------------------------------------------
    def add_key(self) -> None:
        st, g = self.state, self.gen
        seed = g.key_seed.value()
        try:
            st.add_key(st.playhead, g.key_prompt.text() or st.prompt, None if seed < 0 else seed)
        except StudioError as exc:
            self._report(exc)

    def remove_key(self) -> None:
        frame = self.gen.selected_key()
        if frame is None:
            frame = max((k.frame for k in self.state.keys if k.frame <= self.state.playhead), default=None)
        if frame is not None:
            self.state.remove_key(frame)

    def image_key(self, which: str) -> None:
        img = self.session.app.image
        if img is None:
            self._report(BadInputError("Open or paint an image first: the canvas image becomes the keyframe."))
            return
        setattr(self.state, f"{which}_image", img)
        self.session.app.message = f"{which.capitalize()} frame set from the canvas ({img.width}×{img.height})"

    # -- editing ---------------------------------------------------------------------------
    def rerender(self) -> None:
        st = self.state
        self.session.app.clear_error()
        try:
            req = st.build_rerender(uid=uuid.uuid4().hex)
        except StudioError as exc:
            self._report(exc)
            return
        ids = st.frame_ids
        self.stop()

        def done(result):
            if st.frame_ids != ids:  # the clip changed meanwhile: these frames belong to the old one
                st.update(busy=False, status="The clip changed during the re-render: discarded")
                return
            st.replace_range(result.start, result.frames, edit=result.recipe)
            st.update(busy=False, preview=None, progress=1.0,
                      status=f"Re-rendered frames {req.start + 1}–{req.end + 1} in {result.seconds:.1f} s")

        self._submit(req, EDIT_KEY, f"Re-render frames {req.start + 1}–{req.end + 1}", done)

    def delete_range(self) -> None:
        st = self.state
        if not st.has_range():
            self._report(BadInputError("Select the frames to delete first (In and Out)."))
            return
        lo, hi = st.range()
        try:
            st.delete_range(lo, hi)
            st.clear_range()
        except StudioError as exc:
            self._report(exc)

    def inbetween(self) -> None:
        st = self.state
        i = st.playhead
        if st.count < 2 or i >= st.count - 1:
            self._report(BadInputError("Put the playhead on a frame before the last: the new frames go "
                                       "between it and the next one."))
            return
        method = self.edit.inbetween_method.currentData()
        req = InbetweenRequest(st.frames[i], st.frames[i + 1], int(st.inbetween_count), method)
        ids = st.frame_ids

        def done(result):
            if st.frame_ids != ids:
                st.update(busy=False, status="The clip changed meanwhile: in-betweens discarded")
                return
            st.insert_frames(i, result.frames, edit={"edit": "inbetween", "after": i, "count": len(result.frames),
                                                     "method": result.method})
            st.update(busy=False, progress=1.0, status=f"Inserted {len(result.frames)} frame(s) after frame {i + 1}")

        self._submit(req, EDIT_KEY, "In-between", done)

    def open_in_paint(self) -> None:
        st = self.state
        frame = st.current()
        if frame is None:
            self._report(BadInputError("There is no frame to paint: generate or import a clip first."))
            return
        st.edit_frame = st.playhead
        self.session.app.image = StudioImage(frame, f"tape frame {st.playhead + 1}")
        self.session.app.set_workspace("paint")

    def take_from_canvas(self) -> None:
        st, img = self.state, self.session.app.image
        if img is None or not st.count:
            self._report(BadInputError("Nothing to take: the canvas has no image or the tape no clip."))
            return
        target = st.edit_frame if st.edit_frame is not None and st.edit_frame < st.count else st.playhead
        rgb = img.rgb()
        w, h = st.size
        note = ""
        if (rgb.shape[1], rgb.shape[0]) != (w, h):
            from PIL import Image

            rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.LANCZOS))
            note = f" (resized from {img.width}×{img.height})"
        st.replace_range(target, [rgb], edit={"edit": "paint", "frame": target})
        st.edit_frame = None
        st.seek(target)
        self.session.app.message = f"Frame {target + 1} taken from the canvas{note}"

    # -- checks ----------------------------------------------------------------------------
    def check(self, busy: bool = True) -> None:
        st = self.state
        if st.count < 2:
            if busy:
                self._report(BadInputError("A consistency check needs a clip of at least two frames."))
            return
        metric = self.checks.metric_combo.currentData() or "ssim"
        ids = self._check_ids = st.frame_ids
        frames = st.frames

        def flow_done(result):
            if st.frame_ids != ids:
                return
            self._ssim = result.similarity
            clip_pending = metric.startswith("clip:") and st.metric != metric
            st.update(warp_error=result.warp_error)
            if not clip_pending:
                st.update(similarity=result.similarity, metric="ssim")
            if busy or not clip_pending:
                st.update(busy=False, status=self._check_text())

        self._submit(ConsistencyRequest(frames), CHECK_KEY, "Consistency check", flow_done, busy)
        if metric.startswith("clip:"):
            st.metric = "ssim"

            def clip_done(result):
                if st.frame_ids == ids:
                    st.update(similarity=result.similarity, metric=result.metric, status=self._check_text())

            def clip_failed(err):
                if st.frame_ids == ids and self._ssim is not None:
                    st.update(similarity=self._ssim, metric="ssim")  # fall back to the pixel check
                self._report(err)

            self.session.runtime.submit(ClipConsistencyRequest(frames, metric.split(":", 1)[1]),
                                        key=CHECK_KEY + ".clip", title="CLIP consistency", on_result=clip_done,
                                        on_error=clip_failed)

    def _check_text(self) -> str:
        spikes = self.state.spikes(3)
        where = ", ".join(f"{t + 1}→{t + 2}" for t in spikes)
        return f"Checked: biggest jumps at {where}" if spikes else "Checked"

    # -- files -----------------------------------------------------------------------------
    def import_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Import a clip", str(Path.home()), MEDIA_FILTER)
        if paths:
            self.import_paths(paths)

    def import_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import an image sequence", str(Path.home()))
        if folder:
            self.import_paths([folder])

    def import_paths(self, paths):
        st = self.state
        self.stop()

        def done(data):
            st.set_clip(data.frames, data.fps, data.recipe, data.source)
            for key in ("prompt", "negative_prompt"):
                if isinstance(data.recipe.get(key), str):
                    setattr(st, key, data.recipe[key])
            note = f" ({data.note})" if data.note else ""
            st.update(busy=False, progress=1.0, status=f"Imported {st.count} frames at {data.fps:g} fps{note}")
            self.timeline.fit()
            self.session.app.message = f"Imported {Path(data.source).name}: {st.count} frames{note}"

        return self._submit(ImportClipRequest(tuple(str(p) for p in paths)), FILES_KEY, "Import clip", done)

    def export_dialog(self) -> None:
        fmt = self.files.export_format.currentData()
        start = str(self.session.paths.library / "tape")
        if fmt == "png":
            path = QFileDialog.getExistingDirectory(self, "Export PNG frames into", start)
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Export clip", start, EXPORT_FILTERS[fmt])
        if path:
            self.export_to(path, fmt)

    def export_to(self, path, fmt: str | None = None):
        st = self.state
        fmt = fmt or self.files.export_format.currentData()
        if not st.count:
            self._report(BadInputError("There is no clip to export: generate or import one first."))
            return None
        req = ExportClipRequest(st.frames, str(path), fmt, float(self.files.export_fps.value()), dict(st.recipe),
                                title=st.prompt)

        def done(result):
            note = f"; {result.note}" if result.note else ""
            text = f"Exported {result.frames} frames to {Path(result.path).name} ({result.codec}{note})"
            self.files.export_info.setText(text + f"; recipe in {Path(result.sidecar).name}")
            st.update(busy=False, progress=1.0, status=text)
            self.session.app.message = text

        return self._submit(req, FILES_KEY, f"Export {fmt.upper()}", done)

    # -- playback --------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.state.playing:
            self.stop()
        else:
            self.play()

    def play(self) -> None:
        st = self.state
        if st.count < 2:
            self.play_button.setChecked(False)
            return
        lo, hi = st.range()
        if st.playhead >= hi and not st.loop:
            st.seek(lo)
        st.playing = True

    def stop(self) -> None:
        self.state.playing = False

    def _tick(self) -> None:
        if not self.state.advance():
            self.stop()

    def _scrub(self, index: int) -> None:
        self.state.seek(index)

    # -- state -> widgets ------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        st = self.state
        if name == "playing":
            if value:
                self.play_timer.start(max(5, int(round(1000.0 / max(1.0, st.fps)))))
            else:
                self.play_timer.stop()
            self.play_button.blockSignals(True)
            self.play_button.setChecked(bool(value))
            self.play_button.setText("❚❚ Pause" if value else "▶ Play")
            self.play_button.blockSignals(False)
        elif name == "fps" and st.playing:
            self.play_timer.setInterval(max(5, int(round(1000.0 / max(1.0, value)))))
        elif name in ("playhead", "frames"):
            self._sync_transport()
            self._show_frame()
        elif name in ("onion", "onion_depth", "onion_opacity"):
            self._show_frame()
        elif name == "preview" and value is not None:
            self._show_preview(value)
        elif name in ("status", "busy", "progress"):
            self.status_label.setText(st.status)
            self.progress_bar.setVisible(st.busy)
            self.progress_bar.setValue(int(st.progress * 1000))

    def _sync_transport(self) -> None:
        st = self.state
        n = st.count
        self.frame_spin.blockSignals(True)
        self.frame_spin.setRange(1, max(1, n))
        self.frame_spin.setValue(st.playhead + 1)
        self.frame_spin.blockSignals(False)
        if n:
            w, h = st.size
            self.frame_info.setText(f"{st.playhead + 1} / {n} · {st.playhead / max(1.0, st.fps):.2f} s · "
                                    f"{w}×{h} · {st.fps:g} fps")
        else:
            self.frame_info.setText("No clip")
        for b in (self.first_button, self.prev_button, self.play_button, self.next_button, self.last_button):
            b.setEnabled(n > 0)

    def _sync_scroll(self) -> None:
        tl = self.timeline
        self.scroll_bar.blockSignals(True)
        self.scroll_bar.setRange(0, int(tl.max_offset()))
        self.scroll_bar.setPageStep(max(1, tl.width()))
        self.scroll_bar.setSingleStep(max(1, int(tl.frame_w)))
        self.scroll_bar.setValue(int(tl.offset))
        self.scroll_bar.blockSignals(False)

    # -- the canvas ------------------------------------------------------------------------
    def _on_app(self, name: str, value) -> None:
        if name != "workspace":
            return
        if value == "tape":
            self._place_dock()
            self._restore_last()
            self._show_frame()
        else:
            self.stop()
            c = self.canvas
            if c is not None and c.image() is not self.session.app.image:
                c.set_image(self.session.app.image)  # give the canvas back to the other workspaces

    def _place_dock(self) -> None:
        """On a fresh layout the tape goes under the canvas: a timeline needs width, not height."""
        if self._placed or not self._fresh_layout or self.window_ is None:
            return
        self._placed = True
        dock = self.parentWidget()
        docks = getattr(self.window_, "docks", {})
        if dock is not None and docks.get("tape") is dock:
            self.window_.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            # Sized once the dock is shown (the window shows it after this workspace change).
            QTimer.singleShot(0, lambda: self.window_.resizeDocks([dock], [330], Qt.Orientation.Vertical))

    def _show_frame(self) -> None:
        if self._shown():
            self.view.show_frame()

    def _show_preview(self, preview) -> None:
        if self._shown():
            self.view.show_preview(preview)

    def _restore_last(self) -> None:
        """Reopen the newest clip kept in the library (each render is saved there as it finishes), so a
        restart, even after a crash, comes back to the last clip."""
        if self._restored or self.state.count or self.state.busy:
            return
        self._restored = True
        root = self.session.paths.library / "tape"
        try:
            kept = sorted((p for p in root.iterdir() if (p / "recipe.json").is_file()), key=lambda p: p.name)
        except OSError:
            return
        if kept and self.import_paths([kept[-1]]) is not None:
            self.state.status = f"Reopening the last clip ({kept[-1].name})…"

    def hideEvent(self, event) -> None:
        self.stop()
        super().hideEvent(event)
