"""The conversation store: conversations, messages and images round-trip through SQLite; each
change is one transaction; images are stored once and collected with their last conversation;
a damaged file is set aside, never a crash."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from studio.core.chat_requests import ChatImage, ChatMessage, LoadConversationRequest, SaveChatImageRequest
from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.media.chats import ChatStore, run_load_conversation, run_save_image


def picture(seed: int = 0, w: int = 40, h: int = 30) -> StudioImage:
    return StudioImage(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "pic.png")


@pytest.fixture
def store(tmp_path) -> ChatStore:
    return ChatStore(tmp_path / "chats.sqlite").open()


def test_a_conversation_round_trips_with_images_regions_and_stopped_answers(store):
    img = picture()
    whole = ChatImage.whole(img)
    crop = ChatImage.crop(img, (5, 6, 25, 20), whole.image_id)
    msgs = (ChatMessage("u1", "user", "What is in this picture?", whole),
            ChatMessage("a1", "assistant", "A **cat**.", model_id="m", tokens=3, seconds=0.5, input_size=(28, 28)),
            ChatMessage("u2", "user", "And here?", crop),
            ChatMessage("a2", "assistant", "Half an ans", stopped=True, model_id="m"),
            ChatMessage("a3", "assistant", "still streaming", streaming=True))
    cid = store.create("What is in this picture?", "m", "Be brief.")
    store.save(cid, msgs)
    for att in (whole, crop):
        assert store.put_image(att.image_id, att.image)
    assert not store.put_image(whole.image_id, img)  # stored once
    conv = ChatStore(store.path).load(cid)  # a fresh store object, as after a restart
    assert (conv.title, conv.model_id, conv.system_prompt) == ("What is in this picture?", "m", "Be brief.")
    assert [m.id for m in conv.messages] == ["u1", "a1", "u2", "a2"]  # the streaming one is not stored
    a1, u2, a2 = conv.messages[1], conv.messages[2], conv.messages[3]
    assert (a1.text, a1.tokens, a1.input_size, a1.stopped) == ("A **cat**.", 3, (28, 28), False)
    assert a2.stopped and a2.text == "Half an ans"
    assert u2.attachment.region == (5, 6, 25, 20) and u2.attachment.base_id == whole.image_id
    np.testing.assert_array_equal(u2.attachment.image.pixels, img.pixels[6:20, 5:25])
    np.testing.assert_array_equal(conv.messages[0].attachment.image.pixels, img.pixels)


def test_the_list_is_newest_first_with_counts_and_delete_collects_images(store):
    shared, own = picture(1), picture(2)
    c1 = store.create("first")
    c2 = store.create("second " * 20)
    store.save(c1, (ChatMessage("m1", "user", "hi", ChatImage.whole(shared)),))
    store.save(c2, (ChatMessage("m2", "user", "a", ChatImage.whole(shared)),
                    ChatMessage("m3", "user", "b", ChatImage.whole(own))))
    for img in (shared, own):
        store.put_image(ChatImage.whole(img).image_id, img)
    rows = store.conversations()
    assert [r[0] for r in rows] == [c2, c1] and [r[3] for r in rows] == [2, 1]
    assert len(rows[0][1]) <= 60 and rows[0][1].endswith("…")
    store.delete(c2)
    assert [r[0] for r in store.conversations()] == [c1]
    assert store.has_image(ChatImage.whole(shared).image_id)  # still used by c1
    assert not store.has_image(ChatImage.whole(own).image_id)


def test_a_failed_save_changes_nothing(store):
    cid = store.create("q")
    store.save(cid, (ChatMessage("m1", "user", "kept"),))
    # The old messages are deleted, then the second insert fails (a duplicate id): all rolls back.
    with pytest.raises(sqlite3.IntegrityError):
        store.save(cid, (ChatMessage("m1", "user", "replaced"), ChatMessage("m1", "user", "duplicate")))
    assert [m.text for m in store.load(cid).messages] == ["kept"]
    with pytest.raises(BadInputError):
        store.save("no-such-conversation", ())


def test_a_missing_or_damaged_image_leaves_the_text(store):
    img = picture()
    cid = store.create("q")
    att = ChatImage.whole(img)
    store.save(cid, (ChatMessage("m1", "user", "look", att),))
    conv = store.load(cid)
    assert conv.messages[0].attachment.image is None and conv.messages[0].text == "look"
    with sqlite3.connect(store.path) as conn:
        conn.execute("INSERT INTO images VALUES (?, ?, 1, 1, 0)", (att.image_id, b"not a png"))
    assert store.load(cid).messages[0].attachment.image is None


def test_a_file_that_is_not_a_database_is_set_aside(tmp_path):
    path = tmp_path / "chats.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    store = ChatStore(path).open()
    assert store.conversations() == []
    assert list(tmp_path.glob("chats.corrupt-*.sqlite")) == [store.set_aside]


def test_a_file_that_cannot_be_opened_is_left_alone(tmp_path):
    path = tmp_path / "chats.sqlite"
    path.mkdir()  # not damage, just in the way: the user must see the error, nothing is moved
    with pytest.raises(sqlite3.OperationalError):
        ChatStore(path).open()
    assert path.is_dir() and not list(tmp_path.glob("chats.corrupt-*"))


def test_prefs_round_trip_and_bad_json_is_ignored(store):
    store.set_prefs(model_id="smolvlm-256m", temperature=0.7, last_conversation="abc")
    with sqlite3.connect(store.path) as conn:
        conn.execute("INSERT INTO prefs VALUES ('broken', '{nope')")
    assert store.prefs() == {"model_id": "smolvlm-256m", "temperature": 0.7, "last_conversation": "abc"}


def test_the_cpu_lane_engines_save_and_load(store):
    img = picture(3)
    att = ChatImage.whole(img)
    cid = store.create("q")
    store.save(cid, (ChatMessage("m1", "user", "q", att),))
    assert run_save_image(SaveChatImageRequest(str(store.path), att.image_id, img), None, None) is True
    conv = run_load_conversation(LoadConversationRequest(str(store.path), cid), None, None)
    np.testing.assert_array_equal(conv.messages[0].attachment.image.pixels, img.pixels)
    with pytest.raises(BadInputError):
        run_load_conversation(LoadConversationRequest(str(store.path), "gone"), None, None)


def test_crops_are_exact_pixels_and_tiny_ones_refused():
    img = picture(4, 50, 40)
    crop = ChatImage.crop(img, (30.4, 25.6, 10.2, 5.0))  # corners in any order, rounded
    assert crop.region == (10, 5, 30, 26) and crop.size == (20, 21)
    np.testing.assert_array_equal(crop.image.pixels, img.pixels[5:26, 10:30])
    assert ChatImage.crop(img, (-5, -5, 500, 500)).region == (0, 0, 50, 40)
    with pytest.raises(BadInputError):
        ChatImage.crop(img, (10, 10, 11, 30))
