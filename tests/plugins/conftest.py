"""Builders for plugin tests: write a plugin folder, build a PluginManager or a whole session on it,
and pump a Qt-free runtime's posted callbacks."""
from __future__ import annotations

import queue
import textwrap
import time
from pathlib import Path

import pytest

from studio.plugins import loader

REPO_PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def manifest(pid: str, body: str = "", api: str = "1") -> str:
    return f'id = "{pid}"\nname = "{pid.title()}"\nversion = "0.1"\napi = "{api}"\n' + textwrap.dedent(body)


@pytest.fixture
def write_plugin(tmp_path):
    """`write_plugin(pid, body="", files={name: source}, root=None, toml=None)` -> plugin folder."""
    def write(pid: str, body: str = "", files: dict[str, str] | None = None, root: Path | None = None,
              toml: str | None = None, folder: str | None = None) -> Path:
        where = (root or tmp_path / "plugins") / (folder or pid)
        where.mkdir(parents=True, exist_ok=True)
        (where / "plugin.toml").write_text(toml if toml is not None else manifest(pid, body), encoding="utf-8")
        for name, source in (files or {}).items():
            (where / name).write_text(textwrap.dedent(source), encoding="utf-8")
        loader.forget(f"{loader.NAMESPACE}.{pid}")
        return where
    return write


@pytest.fixture
def make_manager(tmp_path):
    """`make_manager(*roots, disabled=(), post=None)` -> a loaded PluginManager (closed at teardown)."""
    from studio.plugins.manager import PluginManager

    made = []

    def make(*roots: Path, disabled=(), post=None, entry_points: bool = False):
        roots = roots or (tmp_path / "plugins",)
        m = PluginManager.load([("home", Path(r)) for r in roots], disabled, post, use_entry_points=entry_points)
        made.append(m)
        return m
    yield make
    for m in made:
        m.close()


class Pump:
    """A Qt-free main thread: `post` queues callbacks, `until(cond)` runs them."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()

    def post(self, fn) -> None:
        self.q.put(fn)

    def until(self, cond, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met")
            try:
                self.q.get(timeout=0.02)()
            except queue.Empty:
                pass

    def drain(self) -> None:
        while True:
            try:
                self.q.get_nowait()()
            except queue.Empty:
                return


@pytest.fixture
def session_on(tmp_path, monkeypatch):
    """`session_on(home)` -> (session, pump): build_session on `home` (its plugins/ folder plus the
    repository's examples), without entry points; shut down at teardown."""
    from studio.app import build_session
    from studio.plugins import discovery

    monkeypatch.setattr(discovery, "entry_points", lambda: [])
    built = []

    def make(home: Path | None = None):
        pump = Pump()
        session = build_session(home or tmp_path / "home", pump.post)
        built.append(session)
        return session, pump
    yield make
    for s in built:
        s.runtime.shutdown(10)
        s.plugins.close()


@pytest.fixture
def run_job():
    """`run_job(session, pump, request)` -> ("result", value) or ("error", StudioError)."""
    def run(session, pump: Pump, request, timeout: float = 20.0):
        out = []
        session.runtime.submit(request, on_result=lambda r: out.append(("result", r)),
                               on_error=lambda e: out.append(("error", e)))
        pump.until(lambda: bool(out), timeout)
        return out[0]
    return run
