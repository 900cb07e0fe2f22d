"""Nothing is lost: a studio killed with SIGKILL mid-generation restarts with its queue, prompt, mask and
canvas; a studio quit normally with jobs still queued resumes them at the next start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from studio.core.paint_requests import PaintRequest
from tests.helpers import tiny_models, tiny_sd

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from studio.app import Studio
    from studio.core.image import StudioImage

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            loop = QEventLoop()
            QTimer.singleShot(10, loop.quit)
            loop.exec()

    studio = Studio(Path(sys.argv[1]))
    studio.window.show()
    studio.window.switch_to("paint")
    panel, st = studio.window.panels["paint"], studio.session.paint
    studio.session.app.image = StudioImage(np.full((32, 32, 3), 120, np.uint8), "test")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    st.mask = mask
    st.update(prompt="a long job", steps=150, seed=11)
    first = panel.generate()
    st.update(prompt="queued behind", steps=3, seed=12)
    panel.generate()
    st.prompt = "the prompt being typed"
    jobs = Path(sys.argv[1]) / "journal" / "jobs"
    workspace = Path(sys.argv[1]) / "journal" / "workspace.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        spin(0.05)
        started = first.state.value == "running"  # the journal counted the attempt
        if started and workspace.exists() and "the prompt being typed" in workspace.read_text():
            print("READY", flush=True)
            break
    spin(600)
""")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return tiny_models.zoo(tmp_path_factory)


def paint_prompts(driver):
    """Prompts of the unfinished paint jobs, in the order they were submitted."""
    return [j.request.prompt for j in driver.session.runtime.active() if isinstance(j.request, PaintRequest)]


def test_a_killed_studio_restarts_into_the_same_work(studio_factory, tmp_path, zoo):
    home = tiny_sd.prepare_home(tmp_path / "home", zoo)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1", STUDIO_HOME=str(home),
               PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 150
        line = ""
        while time.monotonic() < deadline and "READY" not in line:
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                break
        assert "READY" in line, "the child studio never started its job"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert len(list((home / "journal" / "jobs").glob("*.json"))) == 2

    driver = studio_factory(home)
    st = driver.session.paint
    assert st.prompt == "the prompt being typed"
    assert st.mask is not None and st.mask[8:24, 8:24].all() and not st.mask[:8].any()
    assert driver.session.app.image is not None and (driver.session.app.image.pixels == 120).all()
    assert driver.canvas.image() is driver.session.app.image
    assert paint_prompts(driver) == ["a long job", "queued behind"]
    assert driver.widget("paint.queue").count() == 2
    assert "Resumed 2 unfinished" in driver.widget("paint.status").text()
    driver.cancel_jobs(30)
    assert list((home / "journal" / "jobs").glob("*.json")) == []  # cancelled by the user: gone


def test_quitting_with_jobs_queued_resumes_them_next_time(studio_factory, tmp_path, zoo):
    home = tiny_sd.prepare_home(tmp_path / "home", zoo)
    first = studio_factory(home)
    first.switch_to("paint")
    st = first.session.paint
    st.update(prompt="one", steps=150)
    first.click("paint.generate")
    st.update(prompt="two", steps=2)
    first.click("paint.generate")
    first.close()
    second = studio_factory(home)
    assert paint_prompts(second) == ["one", "two"]
    second.cancel_jobs(30)
