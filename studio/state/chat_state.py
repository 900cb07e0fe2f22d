"""State of the chat workspace and the controller that acts on it (Qt-free).

`ChatState` holds what the panel shows: the conversation list, the open conversation's messages
(the answer being generated is the last message, `streaming=True`, its text growing with each
throttled preview), the settings, the pending attachment (a region crop) and the grounded boxes
of the latest answer in image pixels. `ChatController` turns user actions into ChatRequests on the
runtime and keeps the conversation store (studio.media.chats) equal to what the user sees:
every finished, stopped or edited message is written in one transaction.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

from studio.core.chat_requests import (MAX_TOKENS_LIMIT, ChatImage, ChatMessage, ChatRequest, ChatTurn,
                                       LoadConversationRequest, SaveChatImageRequest, image_id, new_id)
from studio.core.errors import BadInputError, StudioError
from studio.state.observable import Observable

log = logging.getLogger(__name__)

GENERATE_KEY = "chat.generate"
FOLLOW_UP = "Tell me more about the {what} in this region."
SETTINGS = ("model_id", "system_prompt", "max_tokens", "temperature", "top_p", "seed")
PREFERRED_MODELS = ("starter-vlm", "smolvlm-256m")


class ChatState(Observable):
    _fields = ("conversations", "conversation_id", "title", "messages", "busy", "loading", "status",
               "model_id", "system_prompt", "max_tokens", "temperature", "top_p", "seed",
               "attachment", "selecting", "show_boxes", "boxes", "editing")

    def __init__(self) -> None:
        self.conversations: tuple[tuple[str, str, float, int], ...] = ()  # (id, title, updated, count)
        self.conversation_id: str = ""  # "" until the first question stores the conversation
        self.title: str = ""
        self.messages: tuple[ChatMessage, ...] = ()
        self.busy: bool = False  # an answer is being generated
        self.loading: bool = False  # a conversation is being read from the store
        self.status: str = ""
        self.model_id: str = ""
        self.system_prompt: str = ""
        self.max_tokens: int = 512
        self.temperature: float = 0.0
        self.top_p: float = 0.9
        self.seed: int = 0
        self.attachment: Optional[ChatImage] = None  # goes with the next question
        self.selecting: bool = False  # the canvas draws a selection box instead of panning
        self.show_boxes: bool = True
        # Boxes of the latest grounded answer on the current image: (x0, y0, x1, y1, label, kind).
        self.boxes: tuple[tuple[float, float, float, float, str, str], ...] = ()
        self.editing: str = ""  # id of the user message being edited ("" when none)

    def last(self, role: str) -> Optional[ChatMessage]:
        return next((m for m in reversed(self.messages) if m.role == role), None)


class ChatController:
    """Chat actions of one session. Call on the main thread only."""

    def __init__(self, session) -> None:
        self.session = session
        self.state: ChatState = session.chat
        self.runtime = session.runtime
        self._store = None
        self._job = None
        self._run = 0  # bumps when a new answer starts or the conversation changes: stale callbacks stop
        self._active = False
        self._image_memo: tuple[Any, str] = (None, "")
        session.app.changed.connect(self._on_app)

    @classmethod
    def of(cls, session) -> "ChatController":
        ctl = getattr(session.chat, "_controller", None)
        if ctl is None:
            ctl = cls(session)
            object.__setattr__(session.chat, "_controller", ctl)
        return ctl

    # -- store -----------------------------------------------------------------------------
    @property
    def db_path(self) -> str:
        return str(self.session.paths.home / "chats.sqlite")

    @property
    def store(self):
        if self._store is None:
            from studio.media.chats import ChatStore

            self._store = ChatStore(self.db_path).open()
        return self._store

    def _safe(self, what: str, fn: Callable[[], Any], default: Any = None) -> Any:
        """Run a store operation; a failure becomes a message for the user, never a crash."""
        try:
            return fn()
        except StudioError as exc:
            self._report(exc.user_message, exc.detail)
        except Exception as exc:  # sqlite3 and OS errors: disk full, read-only folder, locked file
            log.error("chat store (%s): could not %s: %r", self.db_path, what, exc)
            self._report(f"Could not {what} ({self.db_path}): {exc}.", repr(exc))
        return default

    def _report(self, message: str, detail: str = "") -> None:
        self.session.app.report_error(message, detail)

    def activate(self) -> None:
        """First time the chat workspace is shown: read the settings and the conversation list,
        and reopen the conversation the user had open."""
        if self._active:
            return
        self._active = True
        prefs = self._safe("read the chat settings", lambda: self.store.prefs(), {}) or {}
        aside = getattr(self._store, "set_aside", None)
        if aside is not None:
            self._report(f"The chat history was damaged: it was set aside as {aside.name} and a new one "
                         "started.", str(aside))
        st = self.state
        for key in SETTINGS:
            if key in prefs:
                try:
                    self._set(key, prefs[key], save=False)
                except (BadInputError, ValueError, TypeError):
                    log.warning("ignoring stored chat setting %s=%r", key, prefs[key])
        if st.model_id not in self.model_ids():
            st.model_id = self.default_model()
        self.refresh_list()
        last = prefs.get("last_conversation")
        if last and any(c[0] == last for c in st.conversations):
            self.open(last)

    def refresh_list(self) -> None:
        self.state.conversations = tuple(self._safe("list the conversations", lambda: self.store.conversations(), []))

    # -- models and settings ----------------------------------------------------------------
    def model_ids(self) -> list[str]:
        return [c.id for c in self.session.catalog.cards("vlm")]

    def default_model(self) -> str:
        """The first preferred model that is on disk (the bundled starter VLM once its folder
        exists), else the first preferred one a user can download, else any chat model."""
        ids = self.model_ids()
        preferred = [m for m in PREFERRED_MODELS if m in ids]
        ready = next((m for m in preferred if self._installed(m)), None)
        if ready:
            return ready
        catalog = self.session.catalog
        fetchable = [m for m in preferred if catalog.get(m).source_kind != "bundled"]
        return next(iter(fetchable + preferred), ids[0] if ids else "")

    def _installed(self, model_id: str) -> bool:
        from studio.catalog import store
        from studio.core.paths import assets_dir

        try:
            card = self.session.catalog.get(model_id)
            assets = getattr(getattr(self.runtime, "models", None), "assets", None) or assets_dir()
            return store.status(card, Path(assets)).ready
        except (StudioError, OSError, ValueError) as exc:
            log.info("chat: could not check whether %s is installed: %r", model_id, exc)
            return False

    def set_setting(self, key: str, value: Any) -> None:
        self._set(key, value, save=True)

    def _set(self, key: str, value: Any, save: bool) -> None:
        if key not in SETTINGS:
            raise KeyError(key)
        if key == "model_id":
            value = str(value)
        elif key == "system_prompt":
            value = str(value)
        elif key in ("max_tokens", "seed"):
            value = int(value)
            if key == "max_tokens" and not 1 <= value <= MAX_TOKENS_LIMIT:
                raise BadInputError(f"Max tokens must be between 1 and {MAX_TOKENS_LIMIT}.")
        elif key == "temperature":
            value = float(value)
            if not 0.0 <= value <= 5.0:
                raise BadInputError("Temperature must be between 0 and 5.")
        elif key == "top_p":
            value = float(value)
            if not 0.0 < value <= 1.0:
                raise BadInputError("Top-p must be above 0 and at most 1.")
        setattr(self.state, key, value)
        if save:
            self._safe("save the chat settings", lambda: self.store.set_prefs(**{key: value}))

    # -- conversations ----------------------------------------------------------------------
    def new(self) -> None:
        self._leave()
        self.state.update(conversation_id="", title="", messages=(), boxes=(), editing="", status="")
        self._safe("save the chat settings", lambda: self.store.set_prefs(last_conversation=""))

    def open(self, conversation_id: str) -> None:
        """Read a stored conversation (on the CPU lane: its images are decoded there)."""
        st = self.state
        if conversation_id == st.conversation_id and not st.loading:
            return
        self._leave()
        self._run += 1
        run = self._run
        st.update(loading=True, status="Opening the conversation…", editing="")

        def done(conv) -> None:
            if run != self._run:
                return
            self.state.update(loading=False, conversation_id=conv.id, title=conv.title, messages=conv.messages,
                              status=f"{len(conv.messages)} messages")
            lost = sum(1 for m in conv.messages if m.attachment is not None and m.attachment.image is None)
            if lost:
                self.state.status += f"; {lost} image(s) could not be read"
            self._safe("save the chat settings", lambda: self.store.set_prefs(last_conversation=conv.id))
            self._update_boxes()

        def failed(err) -> None:
            if run == self._run:
                self.state.update(loading=False, status="")
                self._report(err.user_message, err.detail)
                self.refresh_list()

        self.runtime.submit(LoadConversationRequest(self.db_path, conversation_id), key="chat.open",
                            title="Opening a conversation", on_result=done, on_error=failed,
                            on_cancelled=lambda: self.state.update(loading=False) if run == self._run else None)

    def delete(self, conversation_id: str = "") -> None:
        cid = conversation_id or self.state.conversation_id
        if not cid:
            self.new()
            return
        if cid == self.state.conversation_id:
            self._leave(save=False)
            self.state.update(conversation_id="", title="", messages=(), boxes=(), editing="")
        self._safe("delete the conversation", lambda: self.store.delete(cid))
        self.refresh_list()
        self.state.status = "Conversation deleted"

    def _leave(self, save: bool = True) -> None:
        """Before the open conversation changes: stop an answer in progress and keep what streamed."""
        self._run += 1
        job, self._job = self._job, None
        if job is not None:
            self.runtime.cancel(job)
            msgs = self.state.messages
            if msgs and msgs[-1].streaming:
                self.state.messages = msgs[:-1] + (replace(msgs[-1], streaming=False, stopped=True),)
                if save:
                    self._persist()
        self.state.update(busy=False, selecting=False)

    # -- attachments ------------------------------------------------------------------------
    def _current_id(self) -> str:
        img = self.session.app.image
        if img is None:
            return ""
        if self._image_memo[0] is not img:
            self._image_memo = (img, image_id(img))
        return self._image_memo[1]

    def attach_region(self, box) -> Optional[ChatImage]:
        """Attach the crop of `box` (image pixels) of the current image to the next question."""
        img = self.session.app.image
        if img is None:
            self._report("Open an image first, then drag a box over it.")
            return None
        try:
            att = ChatImage.crop(img, box, self._current_id())
        except BadInputError as exc:
            self._report(exc.user_message)
            return None
        self.state.update(attachment=att, selecting=False, status=f"Attached {att.describe()}")
        return att

    def clear_attachment(self) -> None:
        self.state.attachment = None

    def _whole_image_needed(self) -> Optional[ChatImage]:
        """The current image, unless the last whole image the conversation was shown is this one
        (a question about a region alone does not count: the model only saw the crop)."""
        img = self.session.app.image
        if img is None:
            return None
        cur = self._current_id()
        last = next((m.attachment for m in reversed(self.state.messages)
                     if m.attachment is not None and m.attachment.region is None), None)
        if last is not None and last.image_id == cur:
            return None
        return ChatImage(cur, img.size, img, source=img.source)

    # -- asking -----------------------------------------------------------------------------
    def send(self, text: str) -> bool:
        """Ask `text` (with the pending attachment, or the current image when the conversation has
        not seen it). While editing, replaces the edited question and what followed it."""
        st = self.state
        text = text.strip()
        if st.busy or st.loading:
            self._report("Wait for the answer to finish, or press Stop.")
            return False
        if not text and st.attachment is None:
            self._report("Type a question first.")
            return False
        if not st.model_id:
            self._report("No vision-language model is in the catalog: add one in Models > Manager.")
            return False
        if st.editing:
            return self._resend_edited(text)
        att = st.attachment or self._whole_image_needed()
        user = ChatMessage(new_id(), "user", text or "What is in this region?", att)
        st.update(attachment=None)
        if not st.conversation_id:
            cid = self._safe("save the conversation",
                             lambda: self.store.create(user.text, st.model_id, st.system_prompt))
            if cid is None:
                return False
            st.update(conversation_id=cid, title=user.text)
            self._safe("save the chat settings", lambda: self.store.set_prefs(last_conversation=cid))
        st.messages = st.messages + (user,)
        self._save_image(att)
        self._persist()
        self.refresh_list()
        return self._generate()

    def _resend_edited(self, text: str) -> bool:
        st = self.state
        idx = next((i for i, m in enumerate(st.messages) if m.id == st.editing), None)
        st.editing = ""
        if idx is None:
            return self.send(text)
        if not text:
            self._report("Type a question first.")
            return False
        old = st.messages[idx]
        st.messages = st.messages[:idx] + (old.with_text(text),)
        self._persist()
        return self._generate()

    def begin_edit(self) -> str:
        """Edit the last question: returns its text for the input box ("" when there is none)."""
        if self.state.busy:
            return ""
        last = self.state.last("user")
        self.state.editing = last.id if last is not None else ""
        return last.text if last is not None else ""

    def cancel_edit(self) -> None:
        self.state.editing = ""

    def regenerate(self) -> bool:
        """Drop the last answer and ask the same question again."""
        st = self.state
        if st.busy or st.loading or not st.messages:
            return False
        msgs = st.messages
        while msgs and msgs[-1].role == "assistant":
            msgs = msgs[:-1]
        if not msgs:
            return False
        st.messages = msgs
        self._persist()
        return self._generate()

    def ask_about_box(self, index: int) -> bool:
        """Attach the crop of grounded box `index` and ask a follow-up about it."""
        from studio.engines.vlm_grounding import point_region

        st = self.state
        if not 0 <= index < len(st.boxes) or self.session.app.image is None:
            return False
        x0, y0, x1, y1, label, kind = st.boxes[index]
        img = self.session.app.image
        box = point_region((x0, y0), img.size) if kind == "point" else (x0, y0, x1, y1)
        if self.attach_region(box) is None:
            return False
        if st.busy or st.loading:
            return False  # attached; the user asks when the answer is done
        return self.send(FOLLOW_UP.format(what=label or "object"))

    def stop(self) -> None:
        if self._job is not None:
            self.runtime.cancel(self._job)

    def close(self) -> None:
        """The window closes: stop an answer in progress and store what streamed, now (the
        runtime's cancellation would arrive after the bridge has closed)."""
        self._leave(save=True)

    # -- generation -------------------------------------------------------------------------
    def request(self) -> ChatRequest:
        st = self.state
        turns = tuple(ChatTurn(m.role, m.text, m.attachment.image if m.attachment is not None else None)
                      for m in st.messages if not m.streaming)
        return ChatRequest(st.model_id, turns, st.system_prompt, st.max_tokens, st.temperature, st.top_p, st.seed)

    def _generate(self) -> bool:
        st = self.state
        req = self.request()
        try:
            req.validate()
        except BadInputError as exc:
            self._report(exc.user_message)
            return False
        self._run += 1
        run = self._run
        reply = ChatMessage(new_id(), "assistant", "", model_id=st.model_id, streaming=True)
        st.update(messages=st.messages + (reply,), busy=True, status="Starting…", boxes=())

        def mine(fn):
            return lambda *a: fn(*a) if run == self._run else None

        self._job = self.runtime.submit(
            req, key=GENERATE_KEY, title="Chat answer", on_result=mine(self._on_result),
            on_error=mine(self._on_error), on_cancelled=mine(self._on_cancelled),
            on_preview=mine(self._on_stream), on_progress=mine(lambda f, t: setattr(self.state, "status", t)))
        return True

    def _replace_reply(self, **changes) -> None:
        msgs = self.state.messages
        if msgs and msgs[-1].role == "assistant" and msgs[-1].streaming:
            self.state.messages = msgs[:-1] + (replace(msgs[-1], **changes),)

    def _on_stream(self, chunk) -> None:
        self._replace_reply(text=chunk.text, tokens=chunk.tokens, seconds=chunk.seconds)

    def _on_result(self, result) -> None:
        self._job = None
        sizes = [s for s in result.input_sizes if s is not None]
        self._replace_reply(text=result.text, tokens=result.tokens, seconds=result.seconds, streaming=False,
                            input_size=sizes[-1] if sizes else None)
        ended = "" if result.finish == "eos" else " (max tokens reached)"
        self.state.update(busy=False, status=f"{result.tokens} tokens in {result.seconds:.1f} s, "
                                             f"{result.tokens_per_s:.1f} tokens/s{ended}")
        self._persist()
        self.refresh_list()
        self._update_boxes()

    def _on_cancelled(self) -> None:
        self._job = None
        self._replace_reply(streaming=False, stopped=True)
        self.state.update(busy=False, status="Stopped")
        self._persist()
        self.refresh_list()
        self._update_boxes()

    def _on_error(self, err) -> None:
        self._job = None
        msgs = self.state.messages
        if msgs and msgs[-1].streaming:
            self.state.messages = msgs[:-1]  # the question stays: Regenerate asks it again
        self.state.update(busy=False, status="Failed")
        self._report(err.user_message, getattr(err, "detail", ""))

    def _persist(self) -> None:
        st = self.state
        if st.conversation_id:
            self._safe("save the conversation", lambda: self.store.save(
                st.conversation_id, st.messages, st.model_id, st.system_prompt))

    def _save_image(self, att: Optional[ChatImage]) -> None:
        """PNG-encode a new attachment on the CPU lane (the text is already stored)."""
        if att is None or att.image is None:
            return
        if self._safe("check the chat images", lambda: self.store.has_image(att.image_id), True):
            return
        self.runtime.submit(SaveChatImageRequest(self.db_path, att.image_id, att.image), title="Saving chat image",
                            on_error=lambda err: self._report(err.user_message, err.detail))

    # -- grounding --------------------------------------------------------------------------
    def _update_boxes(self) -> None:
        """Boxes of the latest answer that holds any, mapped onto the current image (none when
        that answer was about another image)."""
        from studio.engines.vlm_grounding import parse, to_pixels

        st = self.state
        boxes: list = []
        for i in range(len(st.messages) - 1, -1, -1):
            msg = st.messages[i]
            if msg.role != "assistant" or msg.streaming:
                continue
            found = parse(msg.text)
            if not found:
                continue
            ref = next((m.attachment for m in reversed(st.messages[:i]) if m.attachment is not None), None)
            if ref is None or (ref.base_id or ref.image_id) != self._current_id():
                break
            ox, oy = (ref.region[0], ref.region[1]) if ref.region is not None else (0, 0)
            for g in found:
                px = to_pixels(g, ref.size, msg.input_size)
                if px is not None:
                    boxes.append((px[0] + ox, px[1] + oy, px[2] + ox, px[3] + oy, g.label, g.kind))
            break
        st.boxes = tuple(boxes)

    def box_at(self, x: float, y: float) -> int:
        """Index of the smallest shown box containing image point (x, y) (points: within a few
        pixels), or -1."""
        best, area = -1, float("inf")
        img = self.session.app.image
        tol = max(6.0, 0.02 * max(img.size)) if img is not None else 6.0
        for i, (x0, y0, x1, y1, _label, kind) in enumerate(self.state.boxes):
            if kind == "point":
                hit = abs(x - x0) <= tol and abs(y - y0) <= tol
                a = 0.0
            else:
                hit = x0 <= x <= x1 and y0 <= y <= y1
                a = (x1 - x0) * (y1 - y0)
            if hit and a < area:
                best, area = i, a
        return best

    def _on_app(self, name: str, value) -> None:
        if name == "image" and self._active:
            self._update_boxes()
