"""Faults inside a running studio: a CUDA out-of-memory error raised inside an engine, an unexpected
exception inside an engine, a full disk or a read-only library while a result is saved. Each fails its
job with a message the user can act on (details one click away), and the studio keeps serving: the
next job on the same lane succeeds.

A SIGKILL during a generation, then a restart that restores the queued jobs and the unsaved canvas,
mask and prompt, is tests/ui/test_paint_recovery.py::test_a_killed_studio_restarts_into_the_same_work.
"""
from __future__ import annotations

import errno
import os

import pytest
from PySide6.QtWidgets import QMessageBox

from studio.core import atomic
from tests.reliability.conftest import use_tiny_models


def _cuda_oom(*args, **kwargs):
    import torch

    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 7.79 GiB total)")


@pytest.fixture
def session(studio_factory, full_home, shapes_png):
    studio = studio_factory(full_home)
    use_tiny_models(studio)
    assert studio.open_image(shapes_png) is not None
    return studio


def test_cuda_out_of_memory_inside_engines_fails_with_advice_and_the_studio_keeps_working(session, monkeypatch):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel

    studio = session
    with monkeypatch.context() as m:
        m.setattr(StableDiffusionPipeline, "__call__", _cuda_oom)
        assert studio.generate("a cube", seed=1) is None
        err = studio.last_error()
        assert err.startswith("Out of memory while generating the image") and "smaller size" in err, err
        assert "Retry with less memory" in err and studio.widget("paint.retry").isVisible()
        assert "OutOfMemoryError" in studio.session.app.error_detail
        for name in ("get_image_features", "get_text_features", "forward"):
            m.setattr(CLIPModel, name, _cuda_oom)
        assert studio.label(["red circle", "blue square"]) == []
        err = studio.last_error()
        assert err.startswith("Out of memory") and "keeps running" in err, err
    # The memory is back: the same lanes serve the next jobs.
    assert studio.generate("a cube", seed=1) is not None and studio.last_error() is None
    assert len(studio.label(["red circle", "blue square"])) == 2 and studio.last_error() is None
    assert studio.take_internal_errors() == []


def test_an_exception_inside_an_engine_shows_details_and_the_lane_keeps_serving(session, monkeypatch, qtbot):
    from diffusers import StableDiffusionPipeline

    studio = session

    def broken(*args, **kwargs):
        raise ValueError("a bug deep inside the pipeline")

    with monkeypatch.context() as m:
        m.setattr(StableDiffusionPipeline, "__call__", broken)
        assert studio.generate("a cube", seed=2) is None
    err = studio.last_error()
    assert err == "Unexpected error (ValueError): a bug deep inside the pipeline", err
    assert studio.widget("error.message").text() == err
    assert "Failed" in studio.widget("paint.status").text()
    studio.click("error.details")
    box = studio.window.findChild(QMessageBox, "error.details_dialog")
    qtbot.waitUntil(lambda: box is not None and box.isVisible())
    detail = box.detailedText()
    assert "Traceback" in detail and "a bug deep inside the pipeline" in detail and "broken" in detail
    box.close()
    # The GPU lane is alive: paint, label and chat jobs all run on it after the failure.
    assert studio.generate("a cube", seed=2) is not None and studio.last_error() is None
    assert len(studio.label(["red circle", "blue square"])) == 2 and studio.last_error() is None
    assert isinstance(studio.ask("what is this?"), str) and studio.last_error() is None
    studio.take_internal_errors()  # the scheduler logs the failed job with its traceback, on purpose


def _library_files(studio):
    lib = studio.session.paths.library
    return sorted(str(p.relative_to(lib)) for p in lib.rglob("*") if p.is_file() and "inputs" not in p.parts)


@pytest.mark.parametrize("fault", ["disk full", "read-only library"])
def test_saving_a_result_on_a_full_disk_or_read_only_library_fails_cleanly(session, monkeypatch, fault):
    studio = session
    assert studio.generate("before", seed=3) is not None
    files = _library_files(studio)
    library = str(studio.session.paths.library)
    real_fdopen, real_mkstemp = os.fdopen, atomic.tempfile.mkstemp

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def __getattr__(self, name):
            return getattr(self.fh, name)

    def mkstemp(*args, **kwargs):
        fd, tmp = real_mkstemp(*args, **kwargs)
        if tmp.startswith(library) and fault == "read-only library":
            os.close(fd)
            os.unlink(tmp)
            raise OSError(errno.EROFS, "Read-only file system", tmp)
        if tmp.startswith(library):
            mkstemp.half.add(fd)
        return fd, tmp

    mkstemp.half = set()
    with monkeypatch.context() as m:
        m.setattr(atomic.tempfile, "mkstemp", mkstemp)
        m.setattr(atomic.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)) if fd in mkstemp.half
                  else real_fdopen(fd, mode))
        assert studio.generate("during", seed=4) is None
        err = studio.last_error()
    assert err.startswith("Could not write “" + library), err
    assert ("the disk is full" if fault == "disk full" else "read-only") in err and "then try again" in err
    assert ".tmp" not in err and "Traceback" in studio.session.app.error_detail
    assert _library_files(studio) == files  # no half-written PNG, no temp file left behind
    assert studio.generate("after", seed=5) is not None and studio.last_error() is None  # space is back
    assert len(_library_files(studio)) == len(files) + 1
    studio.take_internal_errors()


def test_a_full_disk_while_saving_a_chat_is_reported_and_the_history_stays_whole(session, monkeypatch):
    import sqlite3

    from studio.media.chats import ChatStore

    studio = session
    assert isinstance(studio.ask("first question"), str) and studio.last_error() is None
    db = studio.session.paths.home / "chats.sqlite"
    real = sqlite3.connect

    def full(database, *args, **kwargs):  # chats.sqlite cannot grow: SQLite's own "disk is full"
        conn = real(database, *args, **kwargs)
        if str(database) == str(db):
            conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        return conn

    with monkeypatch.context() as m:
        m.setattr(sqlite3, "connect", full)
        studio.ask("a second question " + "that is long " * 400)
        err = studio.last_error()
    assert err is not None and "chats.sqlite" in err and "full" in err, err
    assert "Traceback" not in err
    saved = ChatStore(db).open()
    [(cid, *_)] = saved.conversations()
    texts = [msg.text for msg in saved.load(cid).messages]
    assert texts[0] == "first question" and len(texts) == 2  # the last committed state, whole
    # With space again, the next turn is saved with everything before it.
    assert isinstance(studio.ask("third question"), str) and studio.last_error() is None
    texts = [msg.text for msg in ChatStore(db).open().load(cid).messages]
    assert texts[0] == "first question" and texts[-2] == "third question" and len(texts) == 6
    studio.take_internal_errors()
