"""A full disk or a read-only folder while saving: the save fails with a message the user can act on,
and nothing is half-written. Files (settings, journal/project state, result PNGs, recipes) are written
as temp file + rename; the gallery and the chats are SQLite, one transaction per change.

A full disk is simulated where the studio writes: a write() that stores half its data then fails with
ENOSPC, a temp file that cannot be created (EROFS), and for SQLite a page limit on the connection
(`PRAGMA max_page_count`), which makes SQLite fail exactly as on a full disk ("database or disk is full").
"""
from __future__ import annotations

import errno
import os
import sqlite3

import numpy as np
import pytest

from studio.core import atomic
from studio.core.errors import as_studio_error
from studio.core.image import StudioImage
from studio.core.settings import Settings
from studio.media.chats import ChatStore
from studio.core.chat_requests import ChatMessage
from studio.media.gallery import Gallery
from studio.media.imageio import save_png
from studio.media.journal import Journal
from studio.media.metadata import format_parameters


class _HalfWriter:
    """A file object that writes half of what it is given, then fails like a full disk."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data):
        self._fh.write(data[: len(data) // 2])
        self._fh.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()
        return False

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.fixture
def disk_full(monkeypatch):
    """Every atomic write from now on stores half its bytes and fails with ENOSPC."""
    real = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: _HalfWriter(real(fd, mode)))


@pytest.fixture
def read_only(monkeypatch):
    """No file can be created any more (a read-only file system)."""
    def refuse(*args, **kwargs):
        name = os.path.join(kwargs.get("dir", ""), f"{kwargs.get('prefix', '')}x1y2z3{kwargs.get('suffix', '')}")
        raise OSError(errno.EROFS, "Read-only file system", name)  # as os.open reports it

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _writers(tmp_path):
    """(name, target file, write old content, write new content) for each atomic file the studio keeps."""
    settings = Settings.load(tmp_path / "settings.json")
    journal = Journal(tmp_path / "journal")
    png = tmp_path / "library" / "result.png"

    def settings_write(v):
        settings.set("paint.steps", v)
        settings.save()

    def workspace_write(v):
        journal.save_workspace({"prompt": f"prompt {v}"}, {"mask": np.full((8, 8), v, np.uint8)})

    def png_write(v):
        save_png(StudioImage(np.full((8, 8, 3), v, np.uint8)), png, {"parameters": f"a cat, Steps: {v}"})

    return [("settings", tmp_path / "settings.json", settings_write),
            ("journal workspace (the paint project)", journal.workspace_file, workspace_write),
            ("result PNG with its recipe", png, png_write)]


@pytest.mark.parametrize("fault", ["disk_full", "read_only"])
def test_atomic_files_keep_their_old_content_and_leave_no_temp(tmp_path, request, fault):
    writers = _writers(tmp_path)
    for _, target, write in writers:
        write(20)
    before = {target: target.read_bytes() for _, target, _ in writers}
    files = listing(tmp_path)
    request.getfixturevalue(fault)
    for name, target, write in writers:
        with pytest.raises(OSError) as info:
            write(30)
        assert target.read_bytes() == before[target], name  # the old file, whole
        err = as_studio_error(info.value)
        assert str(target.parent) in err.user_message and ".tmp" not in err.user_message, err.user_message
        assert ("the disk is full" if fault == "disk_full" else "read-only") in err.user_message
        assert "free some space" in err.user_message.lower() and "Traceback" in err.detail
    assert listing(tmp_path) == files  # no temp file, no half file


def _params(prompt: str) -> str:
    return format_parameters(prompt, "", [("Steps", 20), ("Seed", 1), ("Model", "Tiny SD")])


def test_the_gallery_rolls_back_on_a_full_disk_and_keeps_its_index(tmp_path, monkeypatch):
    library = tmp_path / "library"
    gallery = Gallery(tmp_path / "gallery.sqlite", library)
    gallery.add(library / "a.png", _params("a kept cat"))
    with monkeypatch.context() as m:
        m.setattr(sqlite3, "connect", _limited(sqlite3.connect))
        with pytest.raises(sqlite3.OperationalError, match="full") as info:
            for i in range(50):  # rows big enough to need new pages
                gallery.add(library / f"b{i}.png", _params("a lost dog " + "x" * 20000))
        assert "Could not save to the studio's database: the disk is full" in as_studio_error(info.value).user_message
        # A gallery opened while the disk is full says so; it does not mistake the index for damage.
        with pytest.raises(sqlite3.OperationalError):
            Gallery(tmp_path / "gallery.sqlite", library).add(library / "c.png", _params("c " + "y" * 20000))
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []
    assert gallery.count() >= 1 and [e.path for e in gallery.search("kept cat")] == [str(library / "a.png")]
    added = gallery.count()
    gallery.add(library / "d.png", _params("after the disk was freed"))
    assert gallery.count() == added + 1


def _limited(real):
    def connect(*args, **kwargs):
        conn = real(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        return conn
    return connect


def test_a_chat_save_on_a_full_disk_changes_nothing(tmp_path, monkeypatch):
    store = ChatStore(tmp_path / "chats.sqlite").open()
    cid = store.create("first question")
    store.save(cid, (ChatMessage("m1", "user", "first question"), ChatMessage("m2", "assistant", "kept answer")))
    with monkeypatch.context() as m:
        m.setattr(sqlite3, "connect", _limited(sqlite3.connect))
        with pytest.raises(sqlite3.OperationalError, match="full"):
            store.save(cid, (ChatMessage("m1", "user", "first question"),
                             ChatMessage("m3", "assistant", "a long answer " * 20000)))
    assert [m.text for m in store.load(cid).messages] == ["first question", "kept answer"]
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []
