"""Smoke test: the real window through the `studio` fixture, an image, feature maps, a cancelled run."""
from __future__ import annotations


def test_open_image_run_feature_maps_and_cancel_a_second_run(studio, write_image, tmp_path):
    image = studio.open_image(write_image((96, 64)))
    assert studio.last_error() is None
    assert image is not None and image.size == (96, 64)
    assert studio.canvas.image() is image

    result = studio.feature_maps()
    assert studio.last_error() is None, studio.last_error()
    assert result is not None
    assert result.maps.ndim == 3 and result.maps.shape[0] > 0
    assert not studio.widget("inspect.feature_view").pixmap().isNull()

    # A second run, queued behind a job that holds the GPU lane, cancelled from the status bar.
    with studio.gpu_lane_held():
        studio.start_feature_maps()
        assert studio.session.inspect.busy
        assert studio.widget("jobs.cancel").isEnabled()
        studio.cancel_jobs()
    studio.wait_idle()
    assert studio.last_error() is None
    assert studio.session.inspect.feature_maps is result  # no new result arrived
    assert studio.session.inspect.status == "Cancelled"
    assert studio.widget("inspect.run_features").isEnabled()

    # Still usable: a third run completes.
    again = studio.feature_maps()
    assert again is not None and again is not result
    assert studio.screenshot(tmp_path / "shot.png").stat().st_size > 0


def test_the_studio_survives_many_qt_calls_in_a_fresh_interpreter():
    """PySide6 6.12.0 leaks a reference to None on every void call and to True on every emit; on
    Python 3.11 that aborts the interpreter after some thousands of calls unless studio.ui's
    workaround is in place (see studio/ui/qt_workarounds.py)."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import studio.ui
        from PySide6.QtCore import QObject, Signal
        from PySide6.QtWidgets import QApplication, QLabel
        app = QApplication([])
        class O(QObject):
            s = Signal(int)
        o, label = O(), QLabel()
        for i in range(50_000):
            label.setText("x")
            o.s.emit(i)
        print("alive")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0 and "alive" in proc.stdout, proc.stderr[-2000:]
