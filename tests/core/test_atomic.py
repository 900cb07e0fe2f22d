"""Atomic writes: the target holds the old bytes or the new bytes, never a half file, never a temp file."""
from __future__ import annotations

import json
import os

import pytest

from studio.core import atomic
from studio.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from studio.core.settings import Settings


def _only(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_write_creates_folders_and_leaves_only_the_target(tmp_path):
    target = tmp_path / "a" / "b" / "data.bin"
    atomic_write_bytes(target, b"\x00\x01" * 1000)
    assert target.read_bytes() == b"\x00\x01" * 1000
    assert _only(target) == ["data.bin"]


def test_overwrite_replaces_the_whole_file(tmp_path):
    target = tmp_path / "t.txt"
    atomic_write_text(target, "a much longer first version\n" * 10)
    atomic_write_text(target, "short ✓")
    assert target.read_text(encoding="utf-8") == "short ✓"
    assert _only(target) == ["t.txt"]


def test_json_round_trip_keeps_unicode(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"prompt": "café ☕", "n": [1, 2]})
    assert json.loads(target.read_text(encoding="utf-8")) == {"prompt": "café ☕", "n": [1, 2]}
    assert "café" in target.read_text(encoding="utf-8")


class _HalfWriter:
    """A file that writes half of what it is given and then fails, like a full disk."""

    def __init__(self, fh, exc):
        self._fh, self._exc = fh, exc

    def write(self, data):
        self._fh.write(data[: len(data) // 2])
        self._fh.flush()
        raise self._exc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()
        return False

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_mid_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, exc):
    target = tmp_path / "settings.json"
    atomic_write_text(target, "OLD CONTENT")
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: _HalfWriter(real_fdopen(fd, mode), exc))
    with pytest.raises(type(exc)):
        atomic_write_text(target, "NEW CONTENT THAT IS LONG ENOUGH TO BE HALVED")
    assert target.read_text() == "OLD CONTENT"
    assert _only(target) == ["settings.json"]


def test_failure_in_fsync_or_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def boom(*a, **k):
        raise OSError("simulated")

    for name in ("fsync", "replace"):
        with monkeypatch.context() as m:
            m.setattr(atomic.os, name, boom)
            with pytest.raises(OSError, match="simulated"):
                atomic_write_text(target, "new")
        assert target.read_text() == "old"
        assert _only(target) == ["f.txt"]


def test_failure_on_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "new.json"
    monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("no")))
    with pytest.raises(OSError):
        atomic_write_json(target, {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_settings_save_failure_keeps_the_previous_settings(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    st = Settings.load(path)
    st.set("ui.workspace", "paint")
    st.save()
    st.set("ui.workspace", "chat")
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen",
                        lambda fd, mode: _HalfWriter(real_fdopen(fd, mode), OSError("disk full")))
    with pytest.raises(OSError):
        st.save()
    monkeypatch.undo()
    assert Settings.load(path).get("ui.workspace") == "paint"
    assert _only(path) == ["settings.json"]
