"""Paint workspace panel: prompt-to-image, img2img, inpaint and outpaint with ControlNets, a live
preview on the canvas, a queue, undo/redo, the gallery, and a journal so nothing is lost.

Generate freezes the settings into a PaintRequest, writes it to the journal, then queues it on the
GPU lane (it may be pressed again while a job runs). Results arrive as images already saved in the
library; applying one to the canvas is an undoable step.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import replace

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QScrollArea, QTabWidget, QToolButton, QVBoxLayout, QWidget)

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.paint_requests import (MODE_LABELS, MODES, PaintMemoryError, PaintRequest, request_from_record,
                                        request_to_record, snap, validate)
from studio.media.journal import SaveWorkspaceRequest
from studio.state.paint_state import fit_mask
from studio.ui.widgets.paint_control import ControlTab
from studio.ui.widgets.paint_gallery import PaintGallery
from studio.ui.widgets.paint_mask import MaskPainter, MaskTab
from studio.ui.widgets.paint_params import PaintParams
from studio.ui.widgets.paint_queue import PaintQueue
from studio.ui.widgets.paint_undo import ApplyResult, MaskEdit
from studio.ui.widgets.paint_settings import SettingsOffer, apply_entry, offer_for

log = logging.getLogger(__name__)

SEND_TO = ("inspect", "label", "chat", "tape")
SAVED_SETTINGS = {"scheduler": "paint.scheduler", "steps": "paint.steps", "cfg_scale": "paint.cfg_scale",
                  "width": "paint.width", "height": "paint.height", "model_id": "paint.model"}
TRANSIENT = {"busy", "status", "progress", "last_result", "offer", "retry", "mask_tool", "erase"}


class _CloseWatcher(QObject):
    def __init__(self, on_close, parent) -> None:
        super().__init__(parent)
        self._on_close = on_close

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Close:
            self._on_close()
        return False


def _scroll(widget: QWidget, name: str) -> QScrollArea:
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidgetResizable(True)
    area.setWidget(widget)
    return area


class PaintPanel(QWidget):
    def __init__(self, session, window=None) -> None:
        super().__init__(window)
        self.setObjectName("paint.panel")
        self.session = session
        self.window_ = window
        self.runtime = session.runtime
        st = session.paint
        self.undo = QUndoStack(self)
        self.undo.setUndoLimit(40)
        self._jobs: dict[str, object] = {}  # uid -> runtime Job
        self._closing = False
        self._save_in_flight = False
        self._save_dirty = False
        self.setAcceptDrops(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)

        head = QFormLayout()
        self.model = QComboBox(self)
        self.model.setObjectName("paint.model")
        self.mode = QComboBox(self)
        self.mode.setObjectName("paint.mode")
        for m in MODES:
            self.mode.addItem(MODE_LABELS[m], m)
        head.addRow("Model", self.model)
        head.addRow("Mode", self.mode)
        lay.addLayout(head)
        self.offer = SettingsOffer(self)
        lay.addWidget(self.offer)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("paint.tabs")
        self.params = PaintParams(session, self)
        self.painter = MaskPainter(session, window.canvas, self.undo, self) if window is not None else None
        self.mask_tab = MaskTab(session, self.painter, self)
        self.control = ControlTab(session, self.undo, self)
        self.queue = PaintQueue(session, self.cancel_job, self._reordered, self)
        self.gallery = PaintGallery(session, self.use_entry, self)
        self.tabs.addTab(_scroll(self.params, "paint.scroll_generate"), "Generate")
        self.tabs.addTab(_scroll(self.mask_tab, "paint.scroll_mask"), "Mask")
        self.tabs.addTab(_scroll(self.control, "paint.scroll_control"), "Control")
        self.tabs.addTab(self.queue, "Queue")
        self.tabs.addTab(self.gallery, "Gallery")
        lay.addWidget(self.tabs, 1)

        row = QHBoxLayout()
        self.generate_button = QPushButton("Generate", self)
        self.generate_button.setObjectName("paint.generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter); while one runs, this queues another")
        self.generate_button.setMinimumHeight(32)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("paint.cancel")
        self.cancel_button.setToolTip("Stop the running generation (within one step)")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.generate_button, 1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.retry_button = QPushButton("Retry with less memory", self)
        self.retry_button.setObjectName("paint.retry")
        self.retry_button.setToolTip("Run the job again with CPU offload and a tiled VAE")
        self.retry_button.setVisible(False)
        lay.addWidget(self.retry_button)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("paint.progress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        lay.addWidget(self.progress)
        self.status = QLabel("", self)
        self.status.setObjectName("paint.status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        row = QHBoxLayout()
        self.undo_button = self._tool("↶", "paint.undo", "Undo (Ctrl+Z): mask, pose, depth, applied result", row)
        self.redo_button = self._tool("↷", "paint.redo", "Redo (Ctrl+Shift+Z)", row)
        row.addSpacing(8)
        row.addWidget(QLabel("Send to", self))
        self.send_buttons = {ws: self._tool(ws.capitalize(), f"paint.send_{ws}",
                                            f"Open the current image in the {ws} workspace", row) for ws in SEND_TO}
        row.addStretch(1)
        lay.addLayout(row)

        self._journal_timer = QTimer(self)
        self._journal_timer.setObjectName("timer.paint_journal")
        self._journal_timer.setSingleShot(True)
        self._journal_timer.setInterval(400)
        self._journal_timer.timeout.connect(self.save_workspace)
        self._actions()
        self.refresh_models()
        self._sync_mode()
        self._wire()
        if window is not None:
            window.installEventFilter(_CloseWatcher(self._on_window_close, self))
            if session.app.image is not None:  # restored from the journal before the window existed
                window.canvas.set_image(session.app.image)
        self._resume_restored()

    def _tool(self, text: str, name: str, tip: str, row) -> QToolButton:
        b = QToolButton(self)
        b.setObjectName(name)
        b.setText(text)
        b.setToolTip(tip)
        row.addWidget(b)
        return b

    def _actions(self) -> None:
        gen = QAction("Generate", self)
        gen.setObjectName("paint.action.generate")
        gen.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        gen.triggered.connect(self.generate)
        undo = self.undo.createUndoAction(self, "Undo")
        undo.setObjectName("paint.action.undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.undo.createRedoAction(self, "Redo")
        redo.setObjectName("paint.action.redo")
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        for act in (gen, undo, redo):
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(act)

    def _wire(self) -> None:
        s, st = self.session, self.session.paint
        self.model.currentIndexChanged.connect(self._model_chosen)
        self.mode.currentIndexChanged.connect(self._mode_chosen)
        self.generate_button.clicked.connect(self.generate)
        self.params.generate_requested.connect(self.generate)
        self.cancel_button.clicked.connect(self.cancel_running)
        self.retry_button.clicked.connect(self.retry)
        self.undo_button.clicked.connect(self.undo.undo)
        self.redo_button.clicked.connect(self.undo.redo)
        self.undo.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_button.setEnabled(False)
        self.redo_button.setEnabled(False)
        for ws, b in self.send_buttons.items():
            b.clicked.connect(lambda _=False, w=ws: self.send_to(w))
        self.mask_tab.from_word.clicked.connect(self.mask_from_word)
        self._word_to_region = self._region_request_type()
        if self._word_to_region is None:
            self.mask_tab.from_word.setEnabled(False)
            self.mask_tab.from_word.setToolTip("Needs the label workspace's word-to-region, not installed here.")
        else:
            self.mask_tab.from_word.setToolTip("Mask where the label workspace's CLIP finds this word")
        self.offer.use.clicked.connect(self.use_offer)
        self.offer.dismiss.clicked.connect(lambda: setattr(st, "offer", None))
        st.changed.connect(self._on_state)
        s.app.changed.connect(self._on_app)
        self.runtime.subscribe(self._job_changed)

    # -- models and modes ------------------------------------------------------------------
    def refresh_models(self) -> None:
        st = self.session.paint
        self.model.blockSignals(True)
        self.model.clear()
        for card in self.session.catalog.cards("diffusion") + self.session.catalog.cards("inpaint"):
            self.model.addItem(card.name, card.id)
        i = self.model.findData(st.model_id)
        if i < 0 and st.model_id:
            self.model.addItem(f"{st.model_id} (not in the catalog)", st.model_id)
            i = self.model.count() - 1
        self.model.setCurrentIndex(i)
        self.model.blockSignals(False)
        if not st.model_id and self.model.count():
            st.model_id = self.model.itemData(0)
        self.control.refresh_models()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.model.count() != len(self.session.catalog.cards("diffusion") + self.session.catalog.cards("inpaint")):
            self.refresh_models()

    def native_size(self, model_id: str) -> int | None:
        """The side a model was trained at: card option `size`, else its family's (SDXL 1024, SD 512)."""
        try:
            card = self.session.catalog.get(model_id)
        except Exception:  # noqa: BLE001 - a model id not in the catalog keeps the current size
            return None
        if card.options.get("size"):
            return int(card.options["size"])
        return 1024 if "xl" in card.id.lower() else 512

    def _model_chosen(self, index: int) -> None:
        if index < 0:
            return
        st = self.session.paint
        st.model_id = self.model.itemData(index)
        side = self.native_size(st.model_id)
        if side and st.mode == "txt2img":
            st.update(width=side, height=side)

    def _mode_chosen(self, index: int) -> None:
        st, img = self.session.paint, self.session.app.image
        mode = self.mode.itemData(index)
        if mode in ("img2img", "inpaint") and img is not None and st.mode == "txt2img":
            st.update(width=min(2048, snap(img.width)), height=min(2048, snap(img.height)))
        st.mode = mode

    def _sync_mode(self) -> None:
        self.mode.blockSignals(True)
        self.mode.setCurrentIndex(max(0, self.mode.findData(self.session.paint.mode)))
        self.mode.blockSignals(False)

    # -- generating ------------------------------------------------------------------------
    def _paths(self) -> dict:
        p = self.session.paths
        return {"output_dir": str(p.library), "gallery": str(p.home / "gallery.sqlite")}

    def generate(self, low_memory: bool = False) -> object | None:
        """Freeze the settings, journal them, queue the job. Returns the Job, or None with an error shown."""
        s, st = self.session, self.session.paint
        if not st.model_id:
            s.app.report_error("No image-generation model is in the catalog: add one in Models > Manager.")
            return None
        uid = uuid.uuid4().hex
        try:
            req = st.build_request(s.app.image, uid=uid, low_memory=bool(low_memory), **self._paths())
            validate(req)
        except BadInputError as exc:
            s.app.report_error(exc.user_message, exc.detail)
            return None
        return self.submit(req)

    def submit(self, req: PaintRequest, journal: bool = True):
        s, st = self.session, self.session.paint
        if journal and st.journal is not None:
            try:
                record, images = request_to_record(req)
                st.journal.add_job(req.uid, record, images, req.title)
            except OSError as exc:  # a full disk must not stop the work; the user is told
                s.app.report_error(f"The job could not be written to the journal ({exc.strerror or exc}); it runs, "
                                   "but would not survive a crash.", str(exc))
        s.app.clear_error()
        st.update(last_seed=req.seed, retry=None)
        job = self.runtime.submit(
            req, title=req.title, on_result=lambda r: self._done(req, r), on_error=lambda e: self._failed(req, e),
            on_progress=lambda f, t: self._progress(req, f, t), on_preview=lambda p: self._preview(req, p),
            on_cancelled=lambda: self._cancelled(req))
        self._jobs[req.uid] = job
        self._update_busy()
        self.queue.refresh()  # the runtime announced the job before putting it on the lane
        self.schedule_save()
        return job

    def retry(self) -> None:
        req = self.session.paint.retry
        if req is not None:
            self.submit(replace(req, uid=uuid.uuid4().hex, low_memory=True))

    def _running(self):
        for job in self._jobs.values():
            if job.state.value == "running":
                return job
        return None

    def cancel_running(self) -> None:
        job = self._running()
        if job is not None:
            self.cancel_job(job)

    def cancel_job(self, job) -> None:
        uid = getattr(job.request, "uid", "")
        if self.session.paint.journal is not None and uid:
            self.session.paint.journal.finish(uid)  # the user cancelled it: do not bring it back
        self.runtime.cancel(job)

    def _reordered(self, uids: list[str]) -> None:
        if self.session.paint.journal is not None:
            self.session.paint.journal.reorder(uids)

    def _job_changed(self, job) -> None:
        uid = getattr(job.request, "uid", None)
        if uid not in self._jobs:
            return
        try:
            if job.state.value == "running" and job.started_at is not None and not getattr(job, "_journaled", False):
                job._journaled = True
                if self.session.paint.journal is not None:
                    self.session.paint.journal.started(uid)
            self._update_busy()
        except RuntimeError:  # the window is gone while the runtime shuts down
            pass

    def _update_busy(self) -> None:
        active = [j for j in self._jobs.values() if not j.state.finished]
        running = self._running()
        self.session.paint.busy = bool(active)
        self.cancel_button.setEnabled(running is not None)
        if not active:
            self.progress.setValue(0)

    def _finished(self, req: PaintRequest, remove: bool = True) -> None:
        self._jobs.pop(req.uid, None)
        if remove and self.session.paint.journal is not None:
            self.session.paint.journal.finish(req.uid)
        self._update_busy()

    def _progress(self, req, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(f"{text} — {req.title}")

    def _preview(self, req, preview) -> None:
        if self.window_ is not None and self.session.app.workspace == "paint":
            self.window_.canvas.set_image(StudioImage(preview.pixels, "preview"))

    def _restore_canvas(self) -> None:
        if self.window_ is not None:
            self.window_.canvas.set_image(self.session.app.image)
            if self.painter is not None:
                self.painter.show_overlay()

    def _done(self, req, result) -> None:
        self._finished(req)
        s, st = self.session, self.session.paint
        if not result.images:
            return
        image = result.images[0]
        before = (s.app.image, st.mask)
        mask = st.mask if st.mask is not None and st.mask.shape == (image.height, image.width) else None
        st.update(last_result=image, last_seed=result.seeds[0])
        s.app.image = image
        st.mask = mask
        self.undo.push(ApplyResult(s, before, (image, mask)))
        if self.painter is not None:
            self.painter.show_overlay()
        n = len(result.images)
        where = result.paths[0] if result.paths and result.paths[0] else "memory only"
        notes = "".join(f" (note: {note})" for note in getattr(result, "notes", ()))
        self.status.setText(f"{n} image(s) in {result.seconds:.1f} s, seed {result.seeds[0]} — saved: {where}{notes}")
        s.app.message = f"Generated {n} image(s) with {result.model_name}{notes}"
        if self.gallery.isVisible():
            self.gallery.refresh()

    def _failed(self, req, err) -> None:
        self._finished(req)
        self._restore_canvas()
        self.status.setText("Failed: " + err.user_message)
        if isinstance(err, PaintMemoryError) and err.retryable:
            self.session.paint.retry = req
        self.session.app.report_error(err.user_message, getattr(err, "detail", ""))

    def _cancelled(self, req) -> None:
        closing = self._closing or getattr(self.runtime, "_closed", False)
        self._finished(req, remove=not closing)  # a queue cut short by quitting comes back next time
        if not closing:
            self._restore_canvas()
            self.status.setText("Cancelled — " + req.title)

    def _resume_restored(self) -> None:
        st = self.session.paint
        jobs, st.restored = list(st.restored), []
        resumed = 0
        for job in jobs:
            if job.attempts >= 2:
                st.journal.finish(job.uid)
                self.session.app.report_error(
                    f"A paint job stopped the studio twice and was set aside: “{job.title}”.")
                continue
            try:
                req = request_from_record(job.record, job.images)
                self.submit(replace(req, uid=job.uid, **self._paths()), journal=False)
                resumed += 1
            except BadInputError as exc:
                st.journal.finish(job.uid)
                log.error("journal job %s cannot be resumed: %s", job.uid, exc.user_message)
        if resumed:
            self.session.app.message = f"Resumed {resumed} unfinished paint job(s) from the last session."
            self.status.setText(f"Resumed {resumed} unfinished job(s) from the last session.")

    # -- settings found in images ----------------------------------------------------------
    def use_offer(self) -> None:
        offer = self.session.paint.offer
        if offer is not None:
            apply_entry(self.session, offer, self.control)
            self.session.paint.offer = None

    def use_entry(self, entry) -> None:
        apply_entry(self.session, offer_for(entry.parameters, entry.recipe, entry.path), self.control)

    # -- masks from elsewhere --------------------------------------------------------------
    @staticmethod
    def _region_request_type():
        try:
            from studio.core.label_requests import RegionRequest
        except ImportError:
            return None
        return RegionRequest

    def mask_from_word(self) -> None:
        s = self.session
        word = self.mask_tab.word.text().strip()
        if s.app.image is None:
            s.app.report_error("Open or generate an image first: the word is looked for in it.")
            return
        if not word:
            s.app.report_error("Type the word to find (e.g. “sky”) next to Mask from word.")
            return
        from studio.core.label_requests import region_mask

        def done(result) -> None:
            img = s.app.image
            if img is None:
                return
            mask = fit_mask(region_mask(result, s.label.mask_threshold), (img.width, img.height))
            self.painter.set_mask(mask, f"Mask of “{word}”")
            s.paint.mode = "inpaint"
            self.mask_tab.info.setText(f"Masked where “{word}” is ({(mask > 127).mean() * 100:.0f}% of the image).")

        self.mask_tab.info.setText(f"Looking for “{word}”…")
        s.runtime.submit(self._word_to_region(image=s.app.image, model_id=s.label.model_id, label=word),
                         key="paint.mask_word", title="Mask from word", on_result=done,
                         on_error=lambda e: s.app.report_error(e.user_message, e.detail))

    def _mask_from_label(self, mask) -> None:
        img = self.session.app.image
        if mask is None or img is None:
            return
        st = self.session.paint
        fitted = fit_mask(mask, (img.width, img.height))
        before = st.mask
        st.mask = fitted
        self.undo.push(MaskEdit(st, before, fitted, "Mask from label"))
        st.mode = "inpaint"
        self.tabs.setCurrentIndex(1)

    # -- sending ---------------------------------------------------------------------------
    def send_to(self, workspace: str) -> None:
        s = self.session
        if s.app.image is None:
            s.app.report_error("There is no image to send yet: generate or open one.")
            return
        s.app.message = f"Sent the image to {workspace}"
        s.app.set_workspace(workspace)

    # -- state ------------------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        st = self.session.paint
        if name == "mode":
            self._sync_mode()
        elif name == "model_id":
            i = self.model.findData(value)
            if i != self.model.currentIndex():
                if i < 0:
                    self.refresh_models()
                else:
                    self.model.blockSignals(True)
                    self.model.setCurrentIndex(i)
                    self.model.blockSignals(False)
        elif name == "retry":
            self.retry_button.setVisible(value is not None)
        elif name == "offer":
            self.offer.show_offer(value)
        if name in SAVED_SETTINGS and value not in (None, ""):
            try:
                self.session.settings.set(SAVED_SETTINGS[name], float(value) if name == "cfg_scale" else value)
            except (ValueError, KeyError):
                pass
        if name not in TRANSIENT:
            self.schedule_save()
        del st

    def _on_app(self, name: str, value) -> None:
        s = self.session
        if name == "image":
            if value is not None and "bytes" in value.info and ("parameters" in value.info or "studio" in value.info):
                s.paint.offer = offer_for(value.info.get("parameters", ""), value.info.get("studio", ""),
                                          value.source)
            if self.painter is not None:
                self.painter.update_mode()
            self.schedule_save()
        elif name == "workspace" and self.painter is not None:
            self.painter.update_mode()
        elif name == "mask" and value is not None:
            self._mask_from_label(value)

    # -- the workspace journal -------------------------------------------------------------
    def _workspace(self) -> tuple[dict, dict]:
        s, st = self.session, self.session.paint
        images = {"canvas": s.app.image.pixels if s.app.image is not None else None, "mask": st.mask,
                  "depth": st.depth}
        for i, u in enumerate(st.units):
            if u.file_image is not None:
                images[f"unit{i + 1}"] = u.file_image.pixels
        return st.settings_record(), images

    def schedule_save(self) -> None:
        if not self._closing:
            self._journal_timer.start()

    def save_workspace(self) -> None:
        st = self.session.paint
        if st.journal is None or self._closing:
            return
        if self._save_in_flight:
            self._save_dirty = True
            return
        record, images = self._workspace()
        self._save_in_flight = True

        def done(*_):
            self._save_in_flight = False
            if self._save_dirty:
                self._save_dirty = False
                self.schedule_save()

        self.runtime.submit(SaveWorkspaceRequest(str(st.journal.folder), record, images), title="Paint journal",
                            on_result=done, on_error=lambda e: (log.error("paint journal: %s", e.user_message),
                                                                done()), on_cancelled=done)

    def flush_journal(self) -> None:
        """Write the workspace now, on this thread (the window is closing)."""
        st = self.session.paint
        if st.journal is None:
            return
        record, images = self._workspace()
        try:
            st.journal.save_workspace(record, images)
        except OSError as exc:
            log.error("could not write the paint journal: %s", exc)

    def _on_window_close(self) -> None:
        if self._closing:
            return
        self._journal_timer.stop()
        self.gallery.stop()
        self.flush_journal()
        self._closing = True

    # -- drops ------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files and self.window_ is not None:
            event.acceptProposedAction()
            self.window_.open_path(files[0])
