"""Chat workspace panel: talk with a vision-language model about the image on the canvas.

The transcript renders each message's markdown; the input sends on Enter (Shift+Enter: new line);
Send/Stop, Regenerate, Edit last and Copy act on the conversation; the settings choose the model,
system prompt, max tokens, temperature, top-p and seed. "Select region" switches the canvas to
box selection and attaches the crop to the next question; grounded boxes in an answer are drawn
on the canvas, and clicking one asks about it. Conversations are listed in `chat.history`.
All logic lives in studio.state.chat_state.ChatController; this module only shows and forwards.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QHBoxLayout, QLabel,
                               QPlainTextEdit, QPushButton, QSizePolicy, QSpinBox, QToolButton, QVBoxLayout,
                               QWidget)

from studio.core.chat_requests import MAX_TOKENS_LIMIT
from studio.core.errors import BadInputError
from studio.state.chat_state import ChatController
from studio.ui.widgets.chat_canvas import RegionSelector, boxes_overlay
from studio.ui.widgets.chat_transcript import ChatTranscript, thumbnail

PLACEHOLDER = ("Ask about the image on the canvas: “What is in this picture?”. Select region attaches a "
               "part of it to your next question. Enter sends, Shift+Enter starts a new line.")


class ChatInput(QPlainTextEdit):
    """The question box: Enter submits, Shift+Enter inserts a line break, Esc cancels an edit."""

    submitted = Signal()
    escaped = Signal()
    claim_escape = False  # while editing, Esc is ours, not the window's Cancel Jobs shortcut

    def event(self, event) -> bool:
        if (event.type() == QEvent.Type.ShortcutOverride and self.claim_escape
                and event.key() == Qt.Key.Key_Escape):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escaped.emit()
            return
        super().keyPressEvent(event)


def _button(text: str, name: str, parent, tip: str = "") -> QPushButton:
    b = QPushButton(text, parent)
    b.setObjectName(name)
    if tip:
        b.setToolTip(tip)
    return b


class ChatPanel(QWidget):
    def __init__(self, session, window=None) -> None:
        super().__init__(window)
        self.setObjectName("chat.panel")
        self.session = session
        self.window_ = window
        self.ctl = ChatController.of(session)
        st = self.state = session.chat
        self._overlay_shown = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)

        # Conversations
        row = QHBoxLayout()
        self.history = QComboBox(self)
        self.history.setObjectName("chat.history")
        self.history.setToolTip("Saved conversations, most recent first: pick one to reopen it")
        self.history.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.history.setMinimumContentsLength(12)
        self.new_button = _button("New", "chat.new", self, "Start a new conversation")
        self.delete_button = _button("Delete", "chat.delete", self, "Delete this conversation")
        row.addWidget(self.history, 1)
        row.addWidget(self.new_button)
        row.addWidget(self.delete_button)
        lay.addLayout(row)

        # Model and settings
        form = QFormLayout()
        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("chat.model")
        self._fill_models()
        self.settings_toggle = QToolButton(self)
        self.settings_toggle.setObjectName("chat.settings_toggle")
        self.settings_toggle.setText("Settings")
        self.settings_toggle.setCheckable(True)
        self.settings_toggle.setToolTip("Show the system prompt and the sampling settings")
        mrow = QHBoxLayout()
        mrow.addWidget(self.model_combo, 1)
        mrow.addWidget(self.settings_toggle)
        form.addRow("Model", mrow)
        lay.addLayout(form)
        self.settings_box = QFrame(self)
        self.settings_box.setObjectName("chat.settings")
        sform = QFormLayout(self.settings_box)
        sform.setContentsMargins(0, 0, 0, 0)
        self.system_edit = QPlainTextEdit(self.settings_box)
        self.system_edit.setObjectName("chat.system_prompt")
        self.system_edit.setPlaceholderText("System prompt (optional), e.g. “Answer in one sentence.”")
        self.system_edit.setFixedHeight(54)
        self.max_tokens = QSpinBox(self.settings_box)
        self.max_tokens.setObjectName("chat.max_tokens")
        self.max_tokens.setRange(1, MAX_TOKENS_LIMIT)
        self.temperature = QDoubleSpinBox(self.settings_box)
        self.temperature.setObjectName("chat.temperature")
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setToolTip("0 answers greedily (always the same); higher values vary more")
        self.top_p = QDoubleSpinBox(self.settings_box)
        self.top_p.setObjectName("chat.top_p")
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setToolTip("Sample only from the most likely tokens that together hold this probability")
        self.seed = QSpinBox(self.settings_box)
        self.seed.setObjectName("chat.seed")
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Random seed of sampling (used when the temperature is above 0)")
        sform.addRow("System", self.system_edit)
        sform.addRow("Max tokens", self.max_tokens)
        sform.addRow("Temperature", self.temperature)
        sform.addRow("Top-p", self.top_p)
        sform.addRow("Seed", self.seed)
        self.settings_box.setVisible(False)
        lay.addWidget(self.settings_box)

        # Transcript
        self.transcript = ChatTranscript(self)
        self.transcript.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay.addWidget(self.transcript, 1)

        # Attachment and region tools
        arow = QHBoxLayout()
        self.attachment = QLabel(self)
        self.attachment.setObjectName("chat.attachment")
        self.attachment.setFixedSize(48, 48)
        self.attachment.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.attachment.setStyleSheet("background: #202024; border: 1px solid #3a3a40;")
        self.attachment_info = QLabel("", self)
        self.attachment_info.setObjectName("chat.attachment_info")
        self.attachment_info.setWordWrap(True)
        self.clear_attachment = _button("✕", "chat.clear_attachment", self, "Remove the attached region")
        self.clear_attachment.setFixedWidth(28)
        self.select_region = _button("Select region", "chat.select_region", self,
                                     "Drag a box on the image: its crop goes with your next question")
        self.select_region.setCheckable(True)
        self.show_boxes = QCheckBox("Boxes", self)
        self.show_boxes.setObjectName("chat.show_boxes")
        self.show_boxes.setToolTip("Draw the boxes and points of the answer on the image; click one to ask about it")
        arow.addWidget(self.attachment)
        arow.addWidget(self.attachment_info, 1)
        arow.addWidget(self.clear_attachment)
        arow.addWidget(self.select_region)
        arow.addWidget(self.show_boxes)
        lay.addLayout(arow)

        # Input and actions
        self.input = ChatInput(self)
        self.input.setObjectName("chat.input")
        self.input.setPlaceholderText("Ask about the image… (Enter sends, Shift+Enter: new line)")
        self.input.setFixedHeight(64)
        lay.addWidget(self.input)
        brow = QHBoxLayout()
        self.send_button = _button("Send", "chat.send", self, "Send the question (Enter)")
        self.stop_button = _button("Stop", "chat.stop", self, "Stop the answer; what arrived is kept")
        self.regen_button = _button("Regenerate", "chat.regenerate", self, "Ask the last question again")
        self.edit_button = _button("Edit last", "chat.edit_last", self, "Edit your last question and send it again")
        self.copy_button = _button("Copy", "chat.copy", self, "Copy the last answer")
        for b in (self.send_button, self.stop_button, self.regen_button, self.edit_button, self.copy_button):
            brow.addWidget(b)
        lay.addLayout(brow)
        self.status = QLabel("", self)
        self.status.setObjectName("chat.status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        canvas = getattr(window, "canvas", None)
        self.selector = RegionSelector(canvas, self) if canvas is not None else None
        self._stream_timer = QTimer(self)  # coalesces streamed updates into one redraw per frame
        self._stream_timer.setObjectName("timer.chat_render")
        self._stream_timer.setSingleShot(True)
        self._stream_timer.setInterval(30)
        self._stream_timer.timeout.connect(self._render)

        self._sync_settings()
        self._wire(canvas)
        self._render()
        self._update_buttons()
        self._show_attachment()
        if session.app.workspace == "chat":
            self._activate()

    # -- wiring ---------------------------------------------------------------------------
    def _wire(self, canvas) -> None:
        st, ctl = self.state, self.ctl
        self.history.activated.connect(self._history_chosen)
        self.new_button.clicked.connect(ctl.new)
        self.delete_button.clicked.connect(lambda: ctl.delete())
        self.model_combo.currentIndexChanged.connect(
            lambda i: self._setting("model_id", self.model_combo.itemData(i)) if i >= 0 else None)
        self.settings_toggle.toggled.connect(self.settings_box.setVisible)
        self.system_edit.textChanged.connect(lambda: self._setting("system_prompt", self.system_edit.toPlainText()))
        self.max_tokens.valueChanged.connect(lambda v: self._setting("max_tokens", v))
        self.temperature.valueChanged.connect(lambda v: self._setting("temperature", round(v, 3)))
        self.top_p.valueChanged.connect(lambda v: self._setting("top_p", round(v, 3)))
        self.seed.valueChanged.connect(lambda v: self._setting("seed", v))
        self.transcript.action.connect(self._on_transcript_action)
        self.clear_attachment.clicked.connect(ctl.clear_attachment)
        self.select_region.toggled.connect(lambda on: setattr(st, "selecting", on))
        self.show_boxes.setChecked(st.show_boxes)
        self.show_boxes.toggled.connect(lambda on: setattr(st, "show_boxes", on))
        self.input.submitted.connect(self.send)
        self.input.escaped.connect(self._cancel_edit)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(ctl.stop)
        self.regen_button.clicked.connect(ctl.regenerate)
        self.edit_button.clicked.connect(self.edit_last)
        self.copy_button.clicked.connect(lambda: self.copy_message(""))
        if self.selector is not None:
            self.selector.selected.connect(lambda *box: ctl.attach_region(box))
            self.selector.cancelled.connect(lambda: setattr(st, "selecting", False))
        if canvas is not None:
            canvas.clicked.connect(self._canvas_clicked)
        if self.window_ is not None:
            self.window_.installEventFilter(self)  # to store a streaming answer when the window closes
        st.changed.connect(self._on_state)
        self.session.app.changed.connect(self._on_app)

    def _setting(self, key: str, value) -> None:
        if self._syncing:
            return
        try:
            self.ctl.set_setting(key, value)
        except BadInputError as exc:
            self.session.app.report_error(exc.user_message)

    _syncing = False

    def _sync_settings(self) -> None:
        self._syncing = True
        try:
            st = self.state
            idx = self.model_combo.findData(st.model_id)
            if idx >= 0:
                self.model_combo.setCurrentIndex(idx)
            if self.system_edit.toPlainText() != st.system_prompt:
                self.system_edit.setPlainText(st.system_prompt)
            self.max_tokens.setValue(st.max_tokens)
            self.temperature.setValue(st.temperature)
            self.top_p.setValue(st.top_p)
            self.seed.setValue(st.seed)
        finally:
            self._syncing = False

    def _fill_models(self) -> None:
        """The catalog's vlm cards (re-read each time the workspace shows: cards may have been added)."""
        cards = [(c.name, c.id) for c in self.session.catalog.cards("vlm")]
        if cards == [(self.model_combo.itemText(i), self.model_combo.itemData(i))
                     for i in range(self.model_combo.count())]:
            return
        self._syncing = True
        try:
            self.model_combo.clear()
            for name, mid in cards:
                self.model_combo.addItem(name, mid)
        finally:
            self._syncing = False

    def _activate(self) -> None:
        self.ctl.activate()
        self._fill_models()
        self._sync_settings()
        self._fill_history()
        self._refresh_overlay()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.window_ and event.type() == QEvent.Type.Close:
            self.ctl.close()
        return False

    # -- actions --------------------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText()
        if self.ctl.send(text):
            self.input.clear()

    def edit_last(self) -> None:
        text = self.ctl.begin_edit()
        if text or self.state.editing:
            self.input.setPlainText(text)
            self.input.setFocus()
            self.input.moveCursor(self.input.textCursor().MoveOperation.End)

    def _cancel_edit(self) -> None:
        if self.state.editing:
            self.ctl.cancel_edit()
            self.input.clear()

    def copy_message(self, message_id: str) -> None:
        st = self.state
        msg = next((m for m in st.messages if m.id == message_id), None) if message_id else st.last("assistant")
        if msg is None:
            return
        QGuiApplication.clipboard().setText(msg.text)
        self.session.app.message = "Copied to the clipboard"

    def _on_transcript_action(self, kind: str, message_id: str) -> None:
        if kind == "copy":
            self.copy_message(message_id)
        elif kind == "edit":
            self.edit_last()
        elif kind == "regenerate":
            self.ctl.regenerate()

    def _history_chosen(self, index: int) -> None:
        cid = self.history.itemData(index)
        if cid and cid != self.state.conversation_id:
            self.ctl.open(cid)

    def _canvas_clicked(self, x: int, y: int) -> None:
        st = self.state
        if self.session.app.workspace != "chat" or st.selecting or not st.show_boxes:
            return
        index = self.ctl.box_at(x + 0.5, y + 0.5)
        if index >= 0:
            self.ctl.ask_about_box(index)

    # -- state → widgets ------------------------------------------------------------------
    def _on_state(self, name: str, value) -> None:
        if name == "messages":
            if self.state.busy and not self._stream_timer.isActive():
                self._stream_timer.start()
            elif not self.state.busy:
                self._render()
            self._update_buttons()
        elif name in ("busy", "loading", "editing"):
            self._update_buttons()
            if name == "busy" and not value:
                self._render()
        elif name == "status":
            self.status.setText(value)
        elif name == "conversations" or name == "conversation_id":
            self._fill_history()
        elif name in ("model_id", "system_prompt", "max_tokens", "temperature", "top_p", "seed"):
            self._sync_settings()
        elif name == "attachment":
            self._show_attachment()
            self._refresh_overlay()
        elif name == "selecting":
            if self.select_region.isChecked() != value:
                self.select_region.setChecked(value)
            if self.selector is not None:
                self.selector.set_active(value and self.session.app.workspace == "chat")
            if value:
                self.status.setText("Drag a box on the image (click Select region again to cancel).")
        elif name in ("boxes", "show_boxes"):
            self._refresh_overlay()

    def _on_app(self, name: str, value) -> None:
        if name == "workspace":
            if value == "chat":
                self._activate()
            else:
                if self.state.selecting:
                    self.state.selecting = False
                if self._overlay_shown and self.window_ is not None:
                    self.window_.canvas.set_overlay(None)
                    self._overlay_shown = False
        elif name == "image":
            # The window hands the canvas the new image after this handler: draw after it has.
            QTimer.singleShot(0, self, self._refresh_overlay)

    def _render(self) -> None:
        self.transcript.show_messages(self.state.messages, PLACEHOLDER)

    def _update_buttons(self) -> None:
        st = self.state
        busy = st.busy or st.loading
        has_reply = st.last("assistant") is not None
        self.send_button.setEnabled(not busy)
        self.send_button.setText("Resend" if st.editing else "Send")
        self.input.claim_escape = bool(st.editing)
        self.stop_button.setEnabled(st.busy)
        self.regen_button.setEnabled(not busy and bool(st.messages))
        self.edit_button.setEnabled(not busy and st.last("user") is not None)
        self.copy_button.setEnabled(has_reply)
        self.delete_button.setEnabled(not st.loading and bool(st.conversation_id))
        self.history.setEnabled(not st.loading)
        if st.editing:
            self.status.setText("Editing your last question: Send replaces it and what followed (Esc cancels).")

    def _fill_history(self) -> None:
        st = self.state
        self.history.blockSignals(True)
        try:
            self.history.clear()
            if not st.conversation_id:
                self.history.addItem("New conversation", "")
            for cid, title, _updated, count in st.conversations:
                self.history.addItem(f"{title} ({count})", cid)
            idx = self.history.findData(st.conversation_id)
            self.history.setCurrentIndex(max(idx, 0))
        finally:
            self.history.blockSignals(False)

    def _show_attachment(self) -> None:
        att = self.state.attachment
        has = att is not None and att.image is not None
        if has:
            self.attachment.setPixmap(QPixmap.fromImage(thumbnail(att.image.rgb(), 46)))
            self.attachment_info.setText(f"Attached: {att.describe()}")
        else:
            self.attachment.clear()
            self.attachment_info.setText("No region attached")
        self.attachment.setVisible(has)
        self.clear_attachment.setEnabled(has)

    def _refresh_overlay(self) -> None:
        canvas = getattr(self.window_, "canvas", None)
        if canvas is None or self.session.app.workspace != "chat":
            return
        st, img = self.state, self.session.app.image
        if img is None:
            return
        region = None
        att = st.attachment
        if att is not None and att.region is not None and att.base_id == self.ctl._current_id():
            region = att.region
        rgba = boxes_overlay(img.size, st.boxes if st.show_boxes else (), region)
        if rgba is None:
            if self._overlay_shown:
                canvas.set_overlay(None)
            self._overlay_shown = False
        else:
            canvas.set_overlay(rgba, opacity=1.0)
            self._overlay_shown = True
