"""The pytest plugin testers use: a `studio` fixture that runs the real main window and a driver for it.

Registered as the `pytest11` entry point `studio`, so it loads in every pytest session of an
environment where the studio is installed. Loading it must stay free: nothing heavy and no PySide6
is imported at module level; Qt is imported inside the fixture and the driver's methods.

The driver acts through the real widgets (clicks, key presses, QAction.trigger), waits by running
the Qt event loop (never `QTest.qWait`, which holds the GIL in PySide6 and starves the worker
threads), reports what the user saw (`last_error()`), and raises `TimeoutError` when a wait expires.
See docs/testing.md for the contract of every method and the objectName of every widget.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

WORKSPACES = ("inspect", "label", "chat", "paint", "tape")
DEFAULT_TIMEOUT = 10.0
FEATURES_TIMEOUT = 60.0  # the first run imports torch and builds the model on the GPU lane
GENERATE_TIMEOUT = 120.0  # paint: loading the pipeline plus every step of the batch
PASTE_OVER = 1000  # longer texts are inserted at once (pasted), not typed key by key


# -- leak checks (also used by the suite's autouse guard in tests/conftest.py) ------------------
def leftover_threads(before: set[threading.Thread], grace: float = 2.0) -> list[threading.Thread]:
    """Threads started since `before` that are still alive after `grace` seconds and would
    outlive the test: non-daemon threads, and any thread whose name starts with "studio-"."""
    deadline = time.monotonic() + grace

    def suspects() -> list[threading.Thread]:
        return [t for t in threading.enumerate()
                if t not in before and t is not threading.current_thread() and t.is_alive()
                and (t.name.startswith("studio-") or not t.daemon)]

    for t in suspects():
        t.join(max(0.0, deadline - time.monotonic()))
    return suspects()


def active_studio_timers() -> list[Any]:
    """Running QTimers that belong to a live studio window (named, or parented to a studio class).

    Qt's own timers (the status bar's message timeout, ...) are not counted. Returns [] without
    importing Qt when Qt was never imported.
    """
    if "PySide6.QtWidgets" not in sys.modules:
        return []
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return []
    found = []
    for top in app.topLevelWidgets():
        if not type(top).__module__.startswith("studio."):
            continue
        for timer in top.findChildren(QTimer):
            parent = timer.parent()
            ours = timer.objectName() or (parent is not None
                                          and type(parent).__module__.startswith("studio."))
            if timer.isActive() and ours:
                found.append(timer)
    return found


class _InternalErrors(logging.Handler):
    """Collects studio log records that carry a traceback: a crash in a callback is a bug even
    when the studio survives it (the bridge and the lanes log and carry on)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.name.startswith("studio"):
            self.records.append(record)


def grab_array(widget) -> Any:
    """Render `widget` as the user sees it into an RGB uint8 numpy array (H, W, 3)."""
    import numpy as np
    from PySide6.QtGui import QImage

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.sizeInBytes())
    return arr.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


@dataclass(frozen=True)
class HoldRequest:
    """Test-only request that occupies the GPU lane until released (see `gpu_lane_held`)."""

    release: threading.Event


def _run_hold(request: HoldRequest, ctx, models) -> None:
    while not request.release.wait(0.005):
        ctx.check()


_LIVE: "weakref.WeakSet[StudioDriver]" = weakref.WeakSet()


def _click_point(widget):
    """Where a user clicks: the centre, except check boxes and radio buttons, whose hit area is
    the indicator and the text at the left (their row may be much wider)."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QCheckBox, QRadioButton

    rect = widget.rect()
    if isinstance(widget, (QCheckBox, QRadioButton)):
        side = min(rect.height(), rect.width())
        return QPoint(side // 2, rect.height() // 2)
    return rect.center()


# -- the driver -----------------------------------------------------------------------------------
class StudioDriver:
    """Drives one running studio through its widgets. Built by the `studio` fixture."""

    def __init__(self, studio: Any, qtbot: Any, threads_before: set | None = None) -> None:
        self.studio = studio
        self._threads_before = set(threads_before or ())
        self.qtbot = qtbot
        self.session = studio.session
        self.window = studio.window
        self._errors: list[str] = []
        self._mark = 0
        self._closed = False
        self._internal = _InternalErrors()
        logging.getLogger("studio").addHandler(self._internal)
        self.session.app.changed.connect(self._on_app_state)
        _LIVE.add(self)

    # -- bookkeeping ----------------------------------------------------------------------
    def _on_app_state(self, name: str, value: Any) -> None:
        if name == "error" and value:
            self._errors.append(str(value))

    def _begin(self) -> None:
        self._mark = len(self._errors)

    def last_error(self) -> str | None:
        """The error message the user saw since the most recent driver action began, else None."""
        new = self._errors[self._mark:]
        return new[-1] if new else None

    def errors(self) -> list[str]:
        """Every error message shown since the studio started, oldest first."""
        return list(self._errors)

    def take_internal_errors(self) -> list[str]:
        """Tracebacks the studio logged (crashes it survived); taking them stops teardown failing."""
        out = [self._internal.format(r) for r in self._internal.records]
        self._internal.records.clear()
        return out

    def _wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"studio: {what} did not happen within {timeout:g} s")
            self.qtbot.wait(5)  # runs the Qt event loop with the GIL released

    # -- finding widgets ------------------------------------------------------------------
    def widget(self, name: str):
        """The window's widget with objectName `name` (LookupError if there is none)."""
        from PySide6.QtWidgets import QWidget

        w = self.window if self.window.objectName() == name else self.window.findChild(QWidget, name)
        if w is None:
            raise LookupError(f"the studio window has no widget named {name!r}")
        return w

    def action(self, name: str):
        from PySide6.QtGui import QAction

        act = self.window.findChild(QAction, name)
        if act is None:
            raise LookupError(f"the studio window has no action named {name!r}")
        return act

    @property
    def canvas(self):
        return self.widget("canvas")

    # -- generic actions ------------------------------------------------------------------
    def type_text(self, box, text: str) -> None:
        """Type `text` into the text field `box` as a user does: key presses for each character.
        QTest's keyClicks only knows ASCII (other characters abort Qt), so any other character,
        emoji included, is sent as a key event carrying that text, as an input method does. A text
        over PASTE_OVER characters is inserted at once, as pasting does, since nobody types it."""
        from PySide6.QtCore import QEvent, Qt
        from PySide6.QtGui import QKeyEvent
        from PySide6.QtWidgets import QApplication

        if len(text) > PASTE_OVER:
            (box.insertPlainText if hasattr(box, "insertPlainText") else box.insert)(text)
            return
        run: list[str] = []

        def flush() -> None:
            if run:
                self.qtbot.keyClicks(box, "".join(run))
                run.clear()

        for ch in text:
            if " " <= ch <= "~":
                run.append(ch)
                continue
            flush()
            for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
                QApplication.sendEvent(box, QKeyEvent(kind, Qt.Key.Key_unknown, Qt.KeyboardModifier.NoModifier, ch))
        flush()

    def click(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Click the button `name` with the mouse, once it is enabled (it must be visible)."""
        from PySide6.QtCore import Qt

        self._begin()
        w = self.widget(name)
        if not w.isVisible():
            raise RuntimeError(f"{name!r} is not visible: switch to its workspace first")
        self._wait(w.isEnabled, timeout, f"{name!r} becoming enabled")
        self.qtbot.mouseClick(w, Qt.MouseButton.LeftButton, pos=_click_point(w))

    def trigger(self, name: str) -> None:
        """Trigger the menu action `name` (what choosing it in the menu or its shortcut does)."""
        self._begin()
        act = self.action(name)
        if not act.isEnabled():
            raise RuntimeError(f"action {name!r} is disabled")
        act.trigger()

    def wait_idle(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until no runtime job is active and every callback already posted to the main
        thread has run. Does not start a new action (last_error() keeps its meaning)."""
        runtime, bridge = self.session.runtime, self.studio.bridge
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            self._wait(lambda: not runtime.active(), max(left, 0.0),
                       f"jobs finishing ({', '.join(j.title for j in runtime.active())})")
            drained = threading.Event()
            bridge.post(drained.set)  # queued behind everything posted before it
            self._wait(drained.is_set, max(deadline - time.monotonic(), 0.0), "bridge draining")
            if not runtime.active():
                return

    # -- workspaces -----------------------------------------------------------------------
    def switch_to(self, name: str, via: str = "button", timeout: float = DEFAULT_TIMEOUT) -> None:
        """Show workspace `name` by clicking `mode.<name>` (via="button") or pressing Ctrl+N
        (via="shortcut"); waits until its dock is the one shown."""
        self._begin()
        self._switch(name, via, timeout)

    def _switch(self, name: str, via: str, timeout: float) -> None:
        from PySide6.QtCore import Qt

        if name not in WORKSPACES:
            raise ValueError(f"unknown workspace {name!r}; choose one of {', '.join(WORKSPACES)}")
        if via == "button":
            self.qtbot.mouseClick(self.widget(f"mode.{name}"), Qt.MouseButton.LeftButton)
        elif via == "shortcut":
            key = Qt.Key(int(Qt.Key.Key_1) + WORKSPACES.index(name))
            self.window.activateWindow()
            self.qtbot.keyClick(self.window, key, Qt.KeyboardModifier.ControlModifier)
        else:
            raise ValueError("via must be 'button' or 'shortcut'")
        dock = self.widget(f"dock.{name}")
        self._wait(lambda: self.session.app.workspace == name and dock.isVisible(), timeout,
                   f"switching to {name}")

    # -- images ---------------------------------------------------------------------------
    def _wait_for_image(self, before: Any, timeout: float, what: str):
        canvas = self.canvas
        self._wait(lambda: canvas.image() is not before or self.last_error() is not None,
                   timeout, what)
        return None if self.last_error() is not None else canvas.image()

    def open_image(self, path: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT):
        """Open `path` through the window's open path (what File > Open does once a file is
        chosen) and wait until it is on the canvas (returns the StudioImage) or an error was
        shown (returns None; see last_error())."""
        self._begin()
        before = self.canvas.image()
        self.window.open_path(str(path))
        return self._wait_for_image(before, timeout, f"opening {Path(path).name}")

    def drop_files(self, paths, timeout: float = DEFAULT_TIMEOUT):
        """Drag `paths` from a file manager and drop them on the canvas; waits like open_image."""
        from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
        from PySide6.QtGui import QDragEnterEvent, QDropEvent
        from PySide6.QtWidgets import QApplication

        self._begin()
        before = self.canvas.image()
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(Path(p).resolve())) for p in paths])
        target = self.canvas.viewport()
        pos = QPointF(target.rect().center())
        # Qt 6 takes a QPoint for drag-enter events and a QPointF for drops.
        enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(target, enter)
        if not enter.isAccepted():
            raise RuntimeError("the canvas refused the drag")
        drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                          Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(target, drop)
        return self._wait_for_image(before, timeout, "dropping files")

    def paste(self, timeout: float = DEFAULT_TIMEOUT):
        """Edit > Paste Image with whatever the clipboard holds; waits like open_image."""
        self._begin()
        before = self.canvas.image()
        self.action("action.paste").trigger()
        return self._wait_for_image(before, timeout, "pasting")

    def hover(self, x: int, y: int) -> str:
        """Move the mouse over image pixel (x, y) on the canvas; returns the status-bar text."""
        from PySide6.QtCore import QPoint, QPointF

        view = self.canvas
        pos = view.mapFromScene(QPointF(x + 0.5, y + 0.5))
        if not view.viewport().rect().contains(pos):
            raise ValueError(f"pixel ({x}, {y}) is not in view; zoom or fit first")
        # Arrive from a neighbouring point: Qt sends no move event for a cursor already there.
        self.qtbot.mouseMove(view.viewport(), pos + QPoint(1, 1))
        self.qtbot.mouseMove(view.viewport(), pos)
        return self.widget("status.position").text()

    # -- inspect --------------------------------------------------------------------------
    def start_feature_maps(self, layer: str | None = None, timeout: float = FEATURES_TIMEOUT) -> None:
        """Choose `layer` (if given) and click `inspect.run_features` without waiting for the result."""
        self._begin()
        self._start_features(layer, timeout)

    def _start_features(self, layer: str | None, timeout: float) -> None:
        if self.session.app.workspace != "inspect":
            self._switch("inspect", "button", DEFAULT_TIMEOUT)
        st = self.session.inspect
        button = self.widget("inspect.run_features")
        combo = self.widget("inspect.layer")
        if layer:
            if combo.findText(layer) < 0 and combo.count() == 0:
                # The layer list appears after the first run, as it does for a user.
                self._click_run(button, timeout)
                # Models other than torchvision CNNs list their layers from a separate layer-tree job
                # that may end after the maps: wait for the list itself, as a user waits for the menu.
                self._wait(lambda: not st.busy and (combo.count() > 0 or self.last_error() is not None),
                           timeout, "listing the model's layers")
                if self.last_error() is not None:
                    return
            index = combo.findText(layer)
            if index < 0:
                raise ValueError(f"no layer {layer!r}; the model has {[combo.itemText(i) for i in range(combo.count())]}")
            if combo.currentIndex() != index:
                combo.setCurrentIndex(index)  # what picking it in the drop-down does
                if st.busy:  # choosing a layer re-runs by itself once maps are shown
                    return
        self._click_run(button, timeout)

    def _click_run(self, button, timeout: float) -> None:
        from PySide6.QtCore import Qt

        self._wait(button.isEnabled, timeout, "inspect.run_features becoming enabled")
        self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    def feature_maps(self, layer: str | None = None, timeout: float = FEATURES_TIMEOUT):
        """Run feature maps (on `layer` if given) and wait: the FeatureMapResult, or None if the
        run failed (last_error() says why) or was cancelled."""
        self._begin()
        st = self.session.inspect
        before = st.feature_maps
        self._start_features(layer, timeout)
        self._wait(lambda: not st.busy, timeout, "feature maps")
        if self.last_error() is not None or st.feature_maps is before:
            return None
        return st.feature_maps

    # -- label ----------------------------------------------------------------------------
    def label(self, labels, timeout: float = FEATURES_TIMEOUT) -> list[tuple[str, float]]:
        """Type `labels` (a list, or one label per line) into `label.labels`, click `label.run` and
        wait: the ranked (label, score) list the chart `label.results` shows, or [] if the run
        failed (last_error() says why). Switches to the label workspace first if needed."""
        from PySide6.QtCore import Qt

        self._begin()
        if self.session.app.workspace != "label":
            self._switch("label", "button", DEFAULT_TIMEOUT)
        lines = labels.splitlines() if isinstance(labels, str) else [str(x) for x in labels]
        box = self.widget("label.labels")
        box.clear()
        box.setFocus()
        for i, line in enumerate(lines):
            if i:
                self.qtbot.keyClick(box, Qt.Key.Key_Return)
            self.type_text(box, line)
        button = self.widget("label.run")
        self._wait(button.isEnabled, timeout, "label.run becoming enabled")
        self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        self.wait_idle(timeout)
        if self.last_error() is not None:
            return []
        return list(self.session.label.ranked)

    # -- chat -----------------------------------------------------------------------------
    def ask(self, question: str, timeout: float = FEATURES_TIMEOUT) -> str | None:
        """Ask the chat workspace `question` as a user does: switch to chat if needed, type it
        into `chat.input`, click `chat.send`, wait_idle(). Returns the last assistant message's
        text, or None if the studio showed an error (last_error() says which)."""
        from PySide6.QtCore import Qt

        self._begin()
        if self.session.app.workspace != "chat":
            self._switch("chat", "button", DEFAULT_TIMEOUT)
        self.wait_idle(timeout)  # a conversation still opening refuses questions
        box = self.widget("chat.input")
        box.setFocus()
        box.clear()
        if "\n" in question:
            box.insertPlainText(question)  # typed, a line break would send the first line
        else:
            self.type_text(box, question)
        button = self.widget("chat.send")
        self._wait(button.isEnabled, timeout, "chat.send becoming enabled")
        self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        self.wait_idle(timeout)
        messages = self.session.chat.messages
        if self.last_error() is not None or not messages or messages[-1].role != "assistant":
            return None
        return messages[-1].text

    def cancel_jobs(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Click the status bar's cancel button (`jobs.cancel`) if a job runs, then wait_idle()."""
        from PySide6.QtCore import Qt

        self._begin()
        button = self.widget("jobs.cancel")
        if button.isEnabled():
            self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        self.wait_idle(timeout)

    @contextlib.contextmanager
    def gpu_lane_held(self, timeout: float = DEFAULT_TIMEOUT) -> Iterator[Any]:
        """Occupy the GPU lane with a cancellable job for the duration of the block, so requests
        made inside it queue behind it: cancellation tests become deterministic. Yields the job."""
        runtime = self.session.runtime
        if HoldRequest not in runtime.engines:
            runtime.engines.register(HoldRequest, _run_hold, "gpu")
        release = threading.Event()
        job = runtime.submit(HoldRequest(release), title="Held by a test")
        try:
            self._wait(lambda: job.state.value != "queued", timeout, "the GPU lane starting the hold")
            yield job
        finally:
            release.set()
            self._wait(lambda: job.state.finished, timeout, "the GPU lane hold ending")

    # -- paint ----------------------------------------------------------------------------
    PAINT_PARAMS = {"mode": "paint.mode", "model": "paint.model", "negative_prompt": "paint.negative",
                    "scheduler": "paint.scheduler", "steps": "paint.steps", "cfg_scale": "paint.cfg",
                    "width": "paint.width", "height": "paint.height", "seed": "paint.seed",
                    "batch_count": "paint.batch", "strength": "paint.strength", "mask_blur": "paint.mask_blur",
                    "only_masked": "paint.only_masked", "masked_padding": "paint.masked_padding"}

    def generate(self, prompt: str, timeout: float = GENERATE_TIMEOUT, **params):
        """Paint: switch to the paint workspace, type `prompt` into `paint.prompt`, set each parameter
        through its widget (PAINT_PARAMS names them; `outpaint=(left, top, right, bottom)` sets
        `paint.outpaint_*`), click `paint.generate` and wait until the studio is idle. Returns the
        result as a PIL image, or None if it failed (last_error() says why) or was cancelled."""
        from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox, QPlainTextEdit

        unknown = set(params) - set(self.PAINT_PARAMS) - {"outpaint"}
        if unknown:
            raise ValueError(f"unknown paint parameters {sorted(unknown)}; known: {sorted(self.PAINT_PARAMS)}, outpaint")
        if self.session.app.workspace != "paint":
            self._switch("paint", "button", DEFAULT_TIMEOUT)
        self._begin()
        st = self.session.paint
        before = st.last_result
        box = self.widget("paint.prompt")
        box.setFocus()
        box.clear()
        if "\n" in prompt:
            box.setPlainText(prompt)  # keyClicks cannot type a line break into a QPlainTextEdit
        else:
            self.type_text(box, prompt)
        # Mode and model first: they decide which widgets show and the image size.
        for name in sorted(params, key=lambda k: (k not in ("mode", "model"), k)):
            value = params[name]
            if name == "outpaint":
                for side, v in zip(("left", "top", "right", "bottom"), value):
                    self.widget(f"paint.outpaint_{side}").setValue(int(v))
                continue
            w = self.widget(self.PAINT_PARAMS[name])
            if isinstance(w, QComboBox):
                index = w.findData(value)
                index = index if index >= 0 else w.findText(str(value))
                if index < 0:
                    raise ValueError(f"{name}={value!r} is not offered by {w.objectName()}: "
                                     f"{[w.itemText(i) for i in range(w.count())]}")
                w.setCurrentIndex(index)
            elif isinstance(w, QAbstractSpinBox):
                w.setValue(value)
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, QPlainTextEdit):
                w.setPlainText(str(value))
        self.click("paint.generate")
        self.wait_idle(timeout)
        if self.last_error() is not None or st.last_result is before or st.last_result is None:
            return None
        return st.last_result.to_pil()

    # -- tape -----------------------------------------------------------------------------
    def render_clip(self, prompt: str, frames: int = 8, timeout: float = GENERATE_TIMEOUT) -> list:
        """Frame tape: switch to the tape workspace, type `prompt` into `tape.prompt`, set `tape.frames`,
        click `tape.generate` and wait until the studio is idle (the clip's automatic consistency
        check included). Model, size and steps are what the Generate tab shows (a model starts at its
        card's native settings). Returns the frames as PIL images, or [] if the render failed
        (last_error() says why) or was cancelled."""
        from PIL import Image

        if self.session.app.workspace != "tape":
            self._switch("tape", "button", DEFAULT_TIMEOUT)
        self._begin()
        st = self.session.tape
        before = st.frame_ids
        box = self.widget("tape.prompt")
        box.setFocus()
        box.clear()
        self.type_text(box, prompt)
        self.widget("tape.frames").setValue(int(frames))
        self.click("tape.generate")
        self.wait_idle(timeout)
        if self.last_error() is not None or st.frame_ids == before or not st.frames:
            return []
        return [Image.fromarray(f) for f in st.frames]

    # -- output ---------------------------------------------------------------------------
    def screenshot(self, path: str | os.PathLike) -> Path:
        """Grab the whole window into a PNG at `path` (folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.qtbot.wait(1)
        if not self.window.grab().save(str(path), "PNG"):
            raise OSError(f"could not write the screenshot {path}")
        return path

    # -- end ------------------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Shut the studio down (Studio.shutdown) and fail if a studio thread stays alive or the
        studio logged a traceback. Idempotent; the fixture calls it at teardown."""
        if self._closed:
            return
        self._closed = True
        _LIVE.discard(self)
        from PySide6.QtCore import QCoreApplication, QEvent

        try:
            ok = self.studio.shutdown(timeout)
        finally:
            logging.getLogger("studio").removeHandler(self._internal)
            self.session.app.changed.disconnect(self._on_app_state)
            self.window.deleteLater()
            self.studio.bridge.deleteLater()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        # This studio's lanes, and any other studio- thread started since it was built that
        # no other live studio owns (an engine's helper thread, say).
        others = {t for d in _LIVE if d is not self for t in d.session.runtime.threads()}
        alive = [t.name for t in self.session.runtime.threads() if t.is_alive()]
        alive += [t.name for t in leftover_threads(self._threads_before | others, grace=0.0)
                  if t.name.startswith("studio-") and t.name not in alive]
        if not ok or alive:
            pytest.fail(f"studio threads still alive after shutdown: {alive}", pytrace=False)
        internal = self.take_internal_errors()
        if internal:
            pytest.fail("the studio logged internal errors:\n" + "\n\n".join(internal), pytrace=False)


# -- hooks and fixtures -------------------------------------------------------------------------
def pytest_configure(config) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import, and diffusers copies the value: it must
    # be set before any test module imports them. An explicit HF_HUB_OFFLINE=0 is respected.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _force_offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("huggingface_hub", "diffusers", "transformers") and \
                getattr(module, "HF_HUB_OFFLINE", None) is False:
            monkeypatch.setattr(module, "HF_HUB_OFFLINE", True)


@pytest.fixture
def studio_home(tmp_path: Path) -> Path:
    """The STUDIO_HOME the `studio` fixture uses: override it to start from prepared data."""
    return tmp_path / "studio-home"


@pytest.fixture
def studio_factory(request, monkeypatch) -> Iterator[Callable[..., StudioDriver]]:
    """Build studios on demand: `studio_factory(home)` returns a shown StudioDriver. Every studio
    is shut down at teardown; call `driver.close()` earlier to restart on the same home."""
    _force_offline(monkeypatch)
    try:
        qtbot = request.getfixturevalue("qtbot")
    except pytest.FixtureLookupError:
        pytest.fail("the studio fixture needs pytest-qt (pip install pytest-qt)", pytrace=False)
    drivers: list[StudioDriver] = []

    def make(home: str | os.PathLike) -> StudioDriver:
        from studio.app import Studio

        home = Path(home)
        monkeypatch.setenv("STUDIO_HOME", str(home))
        before = set(threading.enumerate())
        studio = Studio(home)
        driver = StudioDriver(studio, qtbot, before)
        drivers.append(driver)
        studio.window.show()
        studio.window.activateWindow()
        qtbot.waitExposed(studio.window)
        return driver

    yield make
    errors = []
    for d in drivers:
        try:
            d.close()
        except BaseException as exc:  # close every studio, then report
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def studio(studio_factory, studio_home: Path) -> StudioDriver:
    """The real main window on a temporary STUDIO_HOME, offline and shown, as a StudioDriver."""
    return studio_factory(studio_home)
