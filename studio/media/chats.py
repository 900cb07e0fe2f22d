"""The conversation store: chats in SQLite (`STUDIO_HOME/chats.sqlite`), images as PNG blobs.

Every change is one SQLite transaction (WAL journal), so a killed studio reopens with each
conversation as it was after its last complete change. A conversation's messages are written as
a whole (`save`): the stored list always equals what the user saw. Images are content-addressed
(sha256 of the pixels): attaching the same picture twice stores it once, and deleting a
conversation removes the images no other conversation uses.

Text operations are quick and run on the main thread; PNG encoding and decoding run on the CPU
lane (`run_save_image`, `run_load_conversation`). Each call opens its own connection, so the
store can be used from any thread. A file that is not a database is set aside, never a crash.
"""
from __future__ import annotations

import io
import json
import logging
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator

from studio.core.chat_requests import (ChatImage, ChatMessage, Conversation, LoadConversationRequest,
                                       SaveChatImageRequest)
from studio.core.errors import BadInputError
from studio.core.image import StudioImage

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    model_id TEXT NOT NULL DEFAULT '', system_prompt TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL,
    image_id TEXT, base_id TEXT, region TEXT, width INTEGER, height INTEGER, source TEXT,
    stopped INTEGER NOT NULL DEFAULT 0, model_id TEXT NOT NULL DEFAULT '', tokens INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0, input_w INTEGER, input_h INTEGER, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, seq);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, png BLOB NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS prefs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ChatStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False
        self.set_aside: Path | None = None  # where a damaged file went, for the user to hear about

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=10.0)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def open(self) -> "ChatStore":
        """Create the file and tables; a file that is not a chat database is renamed aside."""
        if self._ready:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._init()
        except sqlite3.OperationalError:
            raise  # cannot open or write (permissions, a folder in the way, disk full): not damage
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.stem}.corrupt-{int(time.time())}{self.path.suffix}")
            log.warning("chat store %s is unreadable (%s); moved aside to %s", self.path, exc, aside.name)
            try:
                self.path.replace(aside)
            except OSError as move_exc:
                raise BadInputError(f"The chat history file {self.path} is damaged and cannot be moved "
                                    "aside; move or delete it and restart.", str(move_exc)) from exc
            self._init()
            self.set_aside = aside
        self._ready = True
        return self

    def _init(self) -> None:
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed as a whole, or rolled back if anything raises."""
        self.open()
        with closing(self._connect()) as conn:
            with conn:
                yield conn

    # -- conversations -----------------------------------------------------------------------
    def conversations(self) -> list[tuple[str, str, float, int]]:
        """(id, title, updated, message count), most recently changed first."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT c.id, c.title, c.updated, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
                " FROM conversations c ORDER BY c.updated DESC, c.created DESC").fetchall()
        return [(r[0], r[1], float(r[2]), int(r[3])) for r in rows]

    def create(self, title: str, model_id: str = "", system_prompt: str = "", conversation_id: str = "") -> str:
        from studio.core.chat_requests import new_id

        cid = conversation_id or new_id()
        now = time.time()
        with self._tx() as conn:
            conn.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?)",
                         (cid, _title(title), now, now, model_id, system_prompt))
        return cid

    def exists(self, conversation_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is not None

    def rename(self, conversation_id: str, title: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (_title(title), conversation_id))

    def save(self, conversation_id: str, messages, model_id: str | None = None,
             system_prompt: str | None = None) -> None:
        """Replace the conversation's messages with `messages` (in order), in one transaction.
        Messages still streaming are not stored."""
        rows = [_message_row(conversation_id, i, m) for i, m in enumerate(m for m in messages if not m.streaming)]
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is None:
                raise BadInputError("That conversation no longer exists.")
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            conn.executemany(f"INSERT INTO messages VALUES ({', '.join('?' * 18)})", rows)
            sets, args = ["updated = ?"], [time.time()]
            if model_id is not None:
                sets.append("model_id = ?")
                args.append(model_id)
            if system_prompt is not None:
                sets.append("system_prompt = ?")
                args.append(system_prompt)
            conn.execute(f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?", (*args, conversation_id))

    def delete(self, conversation_id: str) -> None:
        """Delete the conversation, its messages and the images nothing else refers to."""
        with self._tx() as conn:
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            conn.execute("DELETE FROM images WHERE id NOT IN (SELECT image_id FROM messages WHERE image_id IS NOT NULL)")

    def load(self, conversation_id: str, images: bool = True) -> Conversation:
        """The conversation with its messages; with `images`, the attachments' pixels decoded
        (an image missing from the store leaves its attachment without pixels)."""
        with self._tx() as conn:
            row = conn.execute("SELECT id, title, created, updated, model_id, system_prompt FROM conversations "
                               "WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                raise BadInputError("That conversation no longer exists.")
            rows = conn.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq",
                                (conversation_id,)).fetchall()
            blobs: dict[str, bytes] = {}
            if images:
                ids = sorted({r[5] for r in rows if r[5]})
                for iid in ids:
                    hit = conn.execute("SELECT png FROM images WHERE id = ?", (iid,)).fetchone()
                    if hit is not None:
                        blobs[iid] = hit[0]
        decoded = {iid: _decode(iid, data) for iid, data in blobs.items()}
        messages = tuple(_message_from_row(r, decoded) for r in rows)
        return Conversation(row[0], row[1], float(row[2]), float(row[3]), row[4], row[5], messages)

    # -- images ------------------------------------------------------------------------------
    def has_image(self, image_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is not None

    def put_image(self, image_id: str, image: StudioImage) -> bool:
        """Store `image` as PNG under `image_id` unless it is there already. True if written."""
        if self.has_image(image_id):
            return False
        buf = io.BytesIO()
        image.to_pil().save(buf, "PNG", compress_level=3)
        with self._tx() as conn:
            cur = conn.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?, ?)",
                               (image_id, sqlite3.Binary(buf.getvalue()), image.width, image.height, time.time()))
            return cur.rowcount > 0

    def image(self, image_id: str) -> StudioImage | None:
        with self._tx() as conn:
            hit = conn.execute("SELECT png FROM images WHERE id = ?", (image_id,)).fetchone()
        return _decode(image_id, hit[0]) if hit else None

    # -- preferences (the chat workspace's settings and last conversation) -------------------
    def prefs(self) -> dict[str, Any]:
        with self._tx() as conn:
            rows = conn.execute("SELECT key, value FROM prefs").fetchall()
        out = {}
        for key, value in rows:
            try:
                out[key] = json.loads(value)
            except ValueError:
                log.warning("chat preference %s is not JSON; ignored", key)
        return out

    def set_prefs(self, **values: Any) -> None:
        with self._tx() as conn:
            conn.executemany("INSERT OR REPLACE INTO prefs VALUES (?, ?)",
                             [(k, json.dumps(v)) for k, v in values.items()])


def _title(text: str) -> str:
    line = " ".join(str(text).split())
    return (line[:57] + "…") if len(line) > 60 else (line or "New conversation")


def _message_row(cid: str, seq: int, m: ChatMessage) -> tuple:
    a = m.attachment
    inp = m.input_size or (None, None)
    return (m.id, cid, seq, m.role, m.text,
            a.image_id if a else None, (a.base_id or None) if a else None,
            json.dumps(list(a.region)) if a is not None and a.region is not None else None,
            a.size[0] if a else None, a.size[1] if a else None, a.source if a else None,
            int(m.stopped), m.model_id, int(m.tokens), float(m.seconds), inp[0], inp[1], float(m.created))


def _message_from_row(r, images: dict[str, StudioImage | None]) -> ChatMessage:
    (mid, _cid, _seq, role, text, iid, base, region, w, h, source, stopped, model_id, tokens, seconds,
     in_w, in_h, created) = r
    att = None
    if iid:
        box = None
        if region:
            try:
                box = tuple(int(v) for v in json.loads(region))
            except (ValueError, TypeError):
                box = None
        att = ChatImage(iid, (int(w or 0), int(h or 0)), images.get(iid), base or "", box, source or "")
    return ChatMessage(mid, role, text, att, bool(stopped), model_id, int(tokens), float(seconds),
                       (int(in_w), int(in_h)) if in_w and in_h else None, float(created))


def _decode(image_id: str, data: bytes) -> StudioImage | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return StudioImage.from_pil(img, source=f"chat image {image_id[:8]}")
    except Exception as exc:  # a damaged blob loses one picture, not the conversation
        log.warning("chat image %s cannot be decoded: %s", image_id[:12], exc)
        return None


# -- CPU-lane engines --------------------------------------------------------------------------
def run_save_image(request: SaveChatImageRequest, ctx, models) -> bool:
    return ChatStore(request.db).put_image(request.image_id, request.image)


def run_load_conversation(request: LoadConversationRequest, ctx, models) -> Conversation:
    return ChatStore(request.db).load(request.conversation_id)


def register(registry) -> None:
    from studio.runtime.scheduler import CPU

    registry.register(SaveChatImageRequest, run_save_image, CPU)
    registry.register(LoadConversationRequest, run_load_conversation, CPU)
