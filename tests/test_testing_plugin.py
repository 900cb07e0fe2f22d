"""The pytest plugin (studio.testing) works from the installed package: its fixture runs the
docs' example in a fresh pytest, its teardown catches leaks, and loading it costs nothing."""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from studio.testing import active_studio_timers, leftover_threads

pytest_plugins = ["pytester"]

DOCS = Path(__file__).resolve().parents[1] / "docs" / "testing.md"


@pytest.fixture
def fresh(pytester, monkeypatch):
    """A pytester whose runs see only installed plugins (no conftest of this suite)."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester


def docs_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    return blocks[0]


def test_the_plugin_is_an_installed_entry_point():
    eps = importlib.metadata.entry_points(group="pytest11")
    assert "studio.testing" in {ep.value for ep in eps if ep.name == "studio"}


def test_the_docs_example_runs_and_teardown_catches_leaks(fresh):
    example = docs_example()
    body = example.split("def test_feature_maps", 1)[1]
    assert len([ln for ln in body.splitlines()[1:] if ln.strip()]) <= 5  # five lines, as promised
    fresh.makepyfile(test_example=example + '''

import threading

def test_leaves_a_studio_thread(studio):
    threading.Thread(target=threading.Event().wait, name="studio-leak", daemon=True).start()

def test_a_callback_crashes(studio):
    studio.studio.bridge.post(lambda: 1 / 0)
    studio.wait_idle()
''')
    result = fresh.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3, errors=2)
    out = result.stdout.str()
    assert "studio threads still alive after shutdown: ['studio-leak']" in out
    assert "the studio logged internal errors" in out and "ZeroDivisionError" in out


def test_sessions_without_pytest_qt_run_and_are_offline_from_the_start(fresh, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    fresh.makepyfile(test_plain=(
        "import os, sys\n"
        "def test_plain():\n"
        "    assert os.environ['HF_HUB_OFFLINE'] == '1' and 'PySide6' not in sys.modules\n"))
    result = fresh.runpytest_subprocess("-p", "no:pytest-qt", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_loading_the_plugin_imports_neither_qt_nor_torch():
    code = ("import json, sys, studio.testing; "
            "print(json.dumps(sorted(m for m in ('PySide6', 'torch', 'numpy') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}).stdout
    assert json.loads(out) == []


def test_leftover_threads_sees_non_daemon_and_studio_threads():
    before = set(threading.enumerate())
    stop = threading.Event()
    plain = threading.Thread(target=stop.wait, daemon=True, name="helper")
    worker = threading.Thread(target=stop.wait, daemon=False, name="worker")
    lane = threading.Thread(target=stop.wait, daemon=True, name="studio-gpu-9")
    for t in (plain, worker, lane):
        t.start()
    try:
        assert set(leftover_threads(before, grace=0.05)) == {worker, lane}
    finally:
        stop.set()
    assert leftover_threads(before, grace=2.0) == []


def test_active_studio_timers_finds_the_window_timer_until_close(studio):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QWidget

    names = [t.objectName() for t in active_studio_timers()]
    assert "timer.memory" in names
    other = QWidget()  # not a studio window: its timers are not ours to judge
    QTimer(other).start(1000)
    studio.window.statusBar().showMessage("Qt's own message timer", 5000)
    assert [t.objectName() for t in active_studio_timers()] == names
    studio.close()
    assert active_studio_timers() == []
    other.deleteLater()
