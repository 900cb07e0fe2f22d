"""Suite-wide guards: no test may leave a thread or a studio window timer running.

The `studio` fixture and its driver come from the installed pytest plugin (studio.testing).
Qt-free test folders (core, runtime, state, media) must not use Qt fixtures: checked here at
run time and statically in tests/test_architecture.py.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from studio.testing import active_studio_timers, leftover_threads

QT_FREE_DIRS = ("core", "runtime", "state", "media")
QT_FIXTURES = {"qtbot", "qapp", "studio", "studio_factory"}
TESTS = Path(__file__).resolve().parent


def _in_qt_free_dir(path: Path) -> bool:
    try:
        rel = Path(path).resolve().relative_to(TESTS)
    except ValueError:
        return False
    return bool(rel.parts) and rel.parts[0] in QT_FREE_DIRS


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Fail a test that leaves a non-daemon or `studio-` thread, or a studio window's QTimer, running."""
    if _in_qt_free_dir(request.node.path):
        used = QT_FIXTURES.intersection(request.fixturenames)
        assert not used, f"Qt-free tests must not use Qt fixtures: {sorted(used)}"
    before = set(threading.enumerate())
    yield
    threads = leftover_threads(before)
    timers = active_studio_timers()
    for t in timers:  # stop them so one leak does not fail every later test
        t.stop()
    problems = [f"thread {t.name!r} (daemon={t.daemon})" for t in threads]
    problems += [f"active QTimer {t.objectName() or '<unnamed>'} of {type(t.parent()).__name__}"
                 for t in timers]
    if problems:
        pytest.fail("test left running: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def write_image(tmp_path):
    """`write_image(array_or_size, name="image.png")` writes an RGB(A) uint8 array (or a seeded
    random image of (width, height)) with Pillow and returns its path."""
    import numpy as np
    from PIL import Image

    def write(data=(64, 48), name: str = "image.png") -> Path:
        if isinstance(data, tuple):
            w, h = data
            data = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = tmp_path / name
        Image.fromarray(np.asarray(data, dtype=np.uint8)).save(path)
        return path

    return write
