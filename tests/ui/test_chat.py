"""The chat workspace as a user meets it: open an image, ask, watch the answer stream, stop it,
ask about a region dragged on the canvas, find the conversation again after a restart; grounded
boxes on the canvas (a click asks about one); edit, regenerate, copy, new and delete; bad input."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QGuiApplication

from studio.core.chat_requests import ChatRequest, ChatResult, ChatStream
from studio.state.chat_state import ChatController
from tests.helpers.tiny_vlm import card_toml, tiny_vlm, vlm_zoo

LONG = 60.0


@pytest.fixture(scope="module")
def llava_folder(tmp_path_factory):
    return tiny_vlm(vlm_zoo(tmp_path_factory), "llava-chat")


@pytest.fixture
def chat_home(tmp_path, llava_folder):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.toml").write_text(card_toml("tiny-llava", llava_folder, "Tiny LLaVA"), encoding="utf-8")
    return home


@pytest.fixture
def shapes(write_image):
    """A 96x64 picture: a red disc on the left, a blue square on the right, white elsewhere."""
    px = np.full((64, 96, 3), 255, np.uint8)
    yy, xx = np.mgrid[:64, :64]
    px[:, :64][(yy - 32) ** 2 + (xx - 28) ** 2 < 18 ** 2] = (220, 30, 30)
    px[20:44, 66:90] = (30, 60, 220)
    return write_image(px, "shapes.png")


def choose(studio, name: str, data) -> None:
    combo = studio.widget(name)
    index = combo.findData(data)
    assert index >= 0, f"{data!r} is not offered in {name}"
    combo.setCurrentIndex(index)  # what picking it in the drop-down does


def type_and_send(studio, text: str, key: bool = False) -> None:
    box = studio.widget("chat.input")
    box.setFocus()
    box.clear()
    studio.qtbot.keyClicks(box, text)
    if key:
        studio.qtbot.keyClick(box, Qt.Key.Key_Return)
    else:
        studio.click("chat.send")


def drag_on_canvas(studio, a, b) -> None:
    canvas = studio.canvas
    vp = canvas.viewport()
    p0 = canvas.mapFromScene(QPointF(*a))
    p1 = canvas.mapFromScene(QPointF(*b))
    studio.qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=p0)
    studio.qtbot.mouseMove(vp, (p0 + p1) / 2)
    studio.qtbot.mouseMove(vp, p1)
    studio.qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=p1)


def test_ask_stream_stop_region_and_find_it_again_after_a_restart(studio_factory, chat_home, shapes, tmp_path):
    d = studio_factory(chat_home)
    image = d.open_image(shapes)
    d.switch_to("chat")
    st = d.session.chat
    choose(d, "chat.model", "tiny-llava")
    d.widget("chat.max_tokens").setValue(8)

    # Ask: the whole image goes with the first question.
    answer = d.ask("what is in this picture?", timeout=LONG)
    assert d.last_error() is None and answer
    user, reply = st.messages
    np.testing.assert_array_equal(user.attachment.image.pixels, image.pixels)
    assert reply.text == answer and reply.tokens == 8 and not reply.stopped

    # Stop mid-stream: 200 tokens asked, stopped after the first streamed ones.
    d.widget("chat.temperature").setValue(1.0)
    d.widget("chat.max_tokens").setValue(200)
    type_and_send(d, "tell me more", key=True)  # Enter sends
    d.qtbot.waitUntil(lambda: st.messages[-1].role == "assistant" and bool(st.messages[-1].text), timeout=LONG * 1000)
    shown = st.messages[-1].text
    t0 = time.monotonic()
    d.click("chat.stop")
    d.wait_idle(LONG)
    assert time.monotonic() - t0 < 3.0
    last = st.messages[-1]
    assert last.stopped and not last.streaming and last.text.startswith(shown) and last.text
    assert "— stopped" in d.widget("chat.transcript").toPlainText()
    assert len(st.messages) == 4 and st.messages[2].attachment is None  # the image was already sent

    # A region dragged on the canvas goes with the next question, pixel for pixel.
    d.click("chat.select_region")
    assert st.selecting
    drag_on_canvas(d, (10.2, 8.2), (50.7, 40.7))
    att = st.attachment
    assert att is not None and not st.selecting
    x0, y0, x1, y1 = att.region
    assert abs(x0 - 10) <= 1 and abs(y0 - 8) <= 1 and abs(x1 - 51) <= 1 and abs(y1 - 41) <= 1
    np.testing.assert_array_equal(att.image.pixels, image.pixels[y0:y1, x0:x1])
    assert not d.widget("chat.attachment").pixmap().isNull()
    assert d.canvas.has_overlay()  # the attached region is outlined on the image
    d.widget("chat.temperature").setValue(0.0)
    d.widget("chat.max_tokens").setValue(4)
    assert d.ask("and this part?", timeout=LONG)
    assert st.messages[-2].attachment is att and st.attachment is None
    d.screenshot(tmp_path / "chat.png")
    cid, texts = st.conversation_id, [(m.role, m.text, m.stopped) for m in st.messages]
    d.close()

    # Restart on the same home: the conversation is listed and reopened as it was.
    d2 = studio_factory(chat_home)
    d2.switch_to("chat")
    d2.wait_idle(LONG)
    st2 = d2.session.chat
    assert st2.conversation_id == cid
    assert [(m.role, m.text, m.stopped) for m in st2.messages] == texts
    reopened = st2.messages[-2].attachment
    assert reopened.region == att.region
    np.testing.assert_array_equal(reopened.image.pixels, att.image.pixels)
    np.testing.assert_array_equal(st2.messages[0].attachment.image.pixels, image.pixels)
    history = d2.widget("chat.history")
    assert history.currentData() == cid and "what is in this picture?" in history.currentText()
    assert d2.widget("chat.model").currentData() == "tiny-llava"


class Scripted:
    """A scripted chat engine (the runtime's engine contract, no model): streams `answer` in two
    previews; `answer` may use {question} and {n} (how many times it ran)."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.requests: list[ChatRequest] = []

    def __call__(self, request, ctx, models):
        self.requests.append(request)
        text = self.answer.format(question=request.turns[-1].text, n=len(self.requests))
        ctx.preview(ChatStream(text[: len(text) // 2], 1, 0.01))
        ctx.check()
        return ChatResult(request.model_id, text, 5, 20, 0.05, 0.01, "eos", (None,))


def scripted(studio, answer: str) -> Scripted:
    engine = Scripted(answer)
    studio.session.runtime.engines.register(ChatRequest, engine, "gpu")
    return engine


def test_grounded_boxes_are_drawn_and_a_click_asks_about_one(studio, shapes, write_image):
    engine = scripted(studio, 'The red disc is at [0.1, 0.2, 0.6, 0.8] and {{"bbox_2d": [66, 20, 90, 44], '
                              '"label": "blue square"}}.')
    studio.open_image(shapes)
    studio.switch_to("chat")
    st = studio.session.chat
    assert studio.ask("where are the shapes?")
    assert [b[4:] for b in st.boxes] == [("red disc", "box"), ("blue square", "box")]
    assert [b[:4] for b in st.boxes] == [pytest.approx((9.6, 12.8, 57.6, 51.2)), (66, 20, 90, 44)]
    assert studio.canvas.has_overlay()
    # The overlay has the image's aspect, finer than a small image (512 px on the long side) so lines
    # stay thin and labels crisp when zoomed: the blue square's box outline is opaque, its inside clear.
    overlay = studio.canvas._overlay.pixmap().toImage()
    assert (overlay.width(), overlay.height()) == (512, 341)
    k = 512 / 96
    edge = max(overlay.pixelColor(round(66 * k) + dx, round(32 * k)).alpha() for dx in (-1, 0, 1))
    assert edge == 255 and overlay.pixelColor(round(78 * k), round(32 * k)).alpha() == 0

    canvas = studio.canvas
    studio.qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton,
                            pos=canvas.mapFromScene(QPointF(78.5, 32.5)))
    studio.wait_idle()
    question = st.messages[-2]
    assert question.text == "Tell me more about the blue square in this region."
    assert question.attachment.region == (66, 20, 90, 44)
    assert engine.requests[-1].turns[-1].image.size == (24, 24)
    shown = st.boxes  # the follow-up's answer, mapped from its crop
    assert shown and all(66 <= b[0] and b[2] <= 90 for b in shown)
    other = studio.open_image(write_image((40, 30), "other.png"))
    studio.qtbot.wait(20)
    assert st.boxes == () and not canvas.has_overlay()  # the boxes belong to the other picture
    studio.open_image(shapes)
    studio.qtbot.waitUntil(canvas.has_overlay)  # the same pixels again: the boxes come back
    assert other is not None and st.boxes == shown
    studio.switch_to("inspect")
    assert not canvas.has_overlay()  # other workspaces own the overlay


def test_edit_regenerate_copy_new_and_delete(studio):
    scripted(studio, "You asked: **{question}** (run {n})")
    studio.switch_to("chat")
    st = studio.session.chat
    assert studio.ask("one") == "You asked: **one** (run 1)"
    assert "You asked: one (run 1)" in studio.widget("chat.transcript").toPlainText()  # markdown rendered
    studio.click("chat.edit_last")
    box = studio.widget("chat.input")
    assert box.toPlainText() == "one" and studio.widget("chat.send").text() == "Resend"
    box.setPlainText("two")
    studio.click("chat.send")
    studio.wait_idle()
    assert [m.text for m in st.messages] == ["two", "You asked: **two** (run 2)"]
    studio.click("chat.regenerate")
    studio.wait_idle()
    assert [m.text for m in st.messages] == ["two", "You asked: **two** (run 3)"]
    studio.click("chat.copy")
    assert QGuiApplication.clipboard().text() == "You asked: **two** (run 3)"
    first = st.conversation_id
    studio.click("chat.new")
    assert st.messages == () and studio.widget("chat.history").currentText() == "New conversation"
    assert studio.ask("three")
    assert st.conversation_id != first and [c[0] for c in st.conversations][1] == first
    studio.click("chat.delete")
    assert [c[0] for c in st.conversations] == [first] and st.messages == ()
    history = studio.widget("chat.history")
    history.setCurrentIndex(history.findData(first))
    history.activated.emit(history.currentIndex())  # what choosing it with the mouse emits
    studio.wait_idle()
    assert [m.text for m in st.messages] == ["two", "You asked: **two** (run 3)"]


def test_shift_enter_is_a_new_line_and_bad_input_is_explained(studio):
    scripted(studio, "ok")
    studio.switch_to("chat")
    box = studio.widget("chat.input")
    box.setFocus()
    studio.qtbot.keyClicks(box, "line one")
    studio.qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    studio.qtbot.keyClicks(box, "line two")
    assert box.toPlainText() == "line one\nline two" and studio.session.chat.messages == ()
    box.clear()
    studio.click("chat.send")
    assert studio.last_error() == "Type a question first."
    studio.widget("chat.temperature").setValue(5.0)  # the spin box stops at its maximum
    assert studio.session.chat.temperature == 2.0


def test_a_model_that_is_not_downloaded_gets_a_clear_message(studio, shapes):
    studio.open_image(shapes)
    studio.switch_to("chat")
    choose(studio, "chat.model", "smolvlm-256m")
    assert studio.ask("hello?", timeout=LONG) is None
    err = studio.last_error()
    assert err and "SmolVLM" in err
    st = studio.session.chat
    assert [m.role for m in st.messages] == ["user"] and st.status == "Failed"  # the question stays
    assert studio.widget("chat.regenerate").isEnabled() and studio.widget("chat.send").isEnabled()


def test_closing_the_window_mid_answer_keeps_what_streamed(studio_factory, tmp_path, shapes):
    home = tmp_path / "home"

    def endless(request, ctx, models):
        text = ""
        for i in range(100000):
            text += f"word{i} "
            ctx.preview(ChatStream(text, i + 1, 0.0))
            time.sleep(0.01)
            ctx.check()

    d = studio_factory(home)
    d.session.runtime.engines.register(ChatRequest, endless, "gpu")
    d.open_image(shapes)
    d.switch_to("chat")
    type_and_send(d, "count for me")
    st = d.session.chat
    d.qtbot.waitUntil(lambda: "word3" in st.messages[-1].text, timeout=10000)
    d.close()
    d2 = studio_factory(home)
    d2.switch_to("chat")
    d2.wait_idle()
    last = d2.session.chat.messages[-1]
    assert last.role == "assistant" and last.stopped and "word3" in last.text


def test_a_region_question_first_then_the_whole_image_and_esc_leaves_an_edit(studio, shapes):
    engine = scripted(studio, "ok")
    image = studio.open_image(shapes)
    studio.switch_to("chat")
    st = studio.session.chat
    ChatController.of(studio.session).attach_region((0, 0, 20, 20))
    assert studio.ask("what is here?") == "ok"
    assert engine.requests[-1].turns[-1].image.size == (20, 20)
    assert studio.ask("and the whole picture?") == "ok"  # the model has not seen it whole yet
    assert engine.requests[-1].turns[-1].image.size == image.size
    assert studio.ask("anything else?") == "ok"
    assert engine.requests[-1].turns[-1].image is None  # it has now
    studio.click("chat.edit_last")
    assert st.editing
    studio.qtbot.keyClick(studio.widget("chat.input"), Qt.Key.Key_Escape)
    assert not st.editing and studio.widget("chat.input").toPlainText() == ""


def test_an_unusable_history_file_is_explained_not_a_crash(studio_factory, tmp_path):
    home = tmp_path / "home"
    (home / "chats.sqlite").mkdir(parents=True)  # a folder where the database should be
    d = studio_factory(home)
    scripted(d, "ok")
    d.switch_to("chat")
    assert "chats.sqlite" in (d.last_error() or "")
    assert d.ask("still there?") is None
    assert "Could not save the conversation" in d.last_error()


def test_a_damaged_history_file_is_set_aside_and_said(studio_factory, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "chats.sqlite").write_bytes(b"garbage" * 500)
    d = studio_factory(home)
    scripted(d, "ok")
    d.switch_to("chat")
    assert "set aside as chats.corrupt-" in (d.last_error() or "")
    assert d.ask("works again?") == "ok"
