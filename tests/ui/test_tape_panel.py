"""The frame tape as a new user meets it, in the real window: type a prompt, get a clip from a tiny random
AnimateDiff (user cards in STUDIO_HOME/models.toml), play and scrub it, re-render a range (only those
frames change), export an MP4 and import it back; the onion skin on the canvas; a 1000-frame timeline
painting only what is in view; in-betweening, the paint round trip and jumping to a consistency spike;
bad input ending in a message."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from studio.core.image import StudioImage
from studio.testing import grab_array
from studio.ui.widgets.tape_timeline import render_offscreen
from tests.helpers import tiny_video


@pytest.fixture
def studio_home(tmp_path, tmp_path_factory):
    home = tmp_path / "studio-home"
    tiny_video.write_user_catalog(home, tiny_video.folders(tmp_path_factory))
    return home


def square_clip(n: int = 8, jump_at: int | None = None) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((48, 64, 3), 30, np.uint8)
        x = 4 + 4 * i if jump_at is None or i <= jump_at else 40
        f[16:32, x:x + 16] = (230, 40, 40) if jump_at is None or i <= jump_at else (40, 220, 40)
        frames.append(f)
    return frames


def tab(studio, title: str) -> None:
    tabs = studio.widget("tape.tabs")
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index(title))


def click_frame(studio, index: int) -> None:
    tl = studio.widget("tape.timeline")
    x = int(tl.frame_x(index) + tl.frame_w / 2)
    studio.qtbot.mouseClick(tl, Qt.MouseButton.LeftButton, pos=QPoint(x, tl.height() - 10))


def test_a_new_user_renders_plays_scrubs_fixes_a_range_and_exports(studio, tmp_path):
    window, st = studio.window, studio.session.tape
    studio.switch_to("tape")  # the tiny motion model, also once the starter motion model ships
    combo = studio.widget("tape.model")
    combo.setCurrentIndex(combo.findData(tiny_video.MOTION_ID))
    studio.wait_idle()
    frames = studio.render_clip("a red circle moving right", frames=8)
    assert studio.last_error() is None, studio.last_error()
    assert len(frames) == 8 and frames[0].size == (32, 32)
    assert window.dockWidgetArea(studio.widget("dock.tape")) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert np.array_equal(window.canvas.image().pixels, st.frames[0])
    assert st.similarity is not None and len(st.similarity) == 7  # the sparkline filled by itself

    click_frame(studio, 5)
    assert st.playhead == 5 and np.array_equal(window.canvas.image().pixels, st.frames[5])
    studio.click("tape.play")
    studio.qtbot.waitUntil(lambda: st.playhead != 5, timeout=3000)
    studio.click("tape.play")
    assert not st.playing and not window.panels["tape"].play_timer.isActive()

    # Fix frames 3-4: In and Out on the tape (I / O keys), re-render with the neighbours as context.
    before = [bytes(f.data) for f in st.frames]
    click_frame(studio, 3)
    studio.qtbot.keyClick(studio.widget("tape.timeline"), Qt.Key.Key_I)
    click_frame(studio, 4)
    studio.qtbot.keyClick(studio.widget("tape.timeline"), Qt.Key.Key_O)
    assert st.range() == (3, 4)
    tab(studio, "Edit")
    studio.widget("tape.strength").setValue(0.9)
    studio.click("tape.rerender")
    studio.wait_idle(120)
    assert studio.last_error() is None, studio.last_error()
    after = [bytes(f.data) for f in st.frames]
    assert [i for i in range(8) if after[i] != before[i]] == [3, 4]
    assert st.recipe["edits"][-1]["edit"] == "rerender"

    panel = window.panels["tape"]
    panel.export_to(tmp_path / "clip.mp4", "mp4")  # what Export… does once a file name is chosen
    studio.wait_idle()
    assert studio.last_error() is None and (tmp_path / "clip.mp4").exists() and (tmp_path / "clip.json").exists()
    assert "Exported 8 frames" in studio.widget("tape.export_info").text()
    panel.import_paths([tmp_path / "clip.mp4"])
    studio.wait_idle()
    assert st.count == 8 and st.size == (32, 32) and st.prompt == "a red circle moving right"
    studio.screenshot(tmp_path / "tape.png")


def test_onion_skin_is_drawn_over_the_canvas(studio):
    studio.switch_to("tape")
    st = studio.session.tape
    st.set_clip(square_clip(6), fps=8)
    st.seek(3)
    tab(studio, "Edit")
    studio.click("tape.onion")
    canvas = studio.window.canvas
    assert st.onion and canvas.has_overlay()
    studio.widget("tape.onion_opacity").setValue(100)
    shot = grab_array(canvas.viewport())
    # The previous frame's square (red ghost) shows left of the current square, on the background.
    ghost = canvas.mapFromScene(float(4 + 4 * 2), 24.0)
    r, g, b = shot[ghost.y(), ghost.x()]
    assert r > 80 and r > g + 40, (r, g, b)
    studio.click("tape.onion")
    assert not canvas.has_overlay()


def test_the_timeline_paints_1000_frames_by_drawing_only_what_is_in_view(studio):
    studio.switch_to("tape")
    st = studio.session.tape
    rng = np.random.default_rng(0)
    st.set_clip([rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(1000)], fps=24)
    tl = studio.widget("tape.timeline")
    visible = int(np.ceil(tl.width() / tl.frame_w)) + 1  # frames cut by either edge count
    render_offscreen(tl)
    assert 0 < tl.last_paint["pixmaps"] <= visible < 60
    times = []
    for i in range(0, 1000, 17):  # scrub across the whole tape
        st.seek(i)
        t0 = time.perf_counter()
        render_offscreen(tl)
        times.append(time.perf_counter() - t0)
        assert tl.last_paint["pixmaps"] <= visible and tl.last_paint["first"] <= i <= tl.last_paint["last"]
    assert float(np.median(times)) < 1 / 30, times
    tl.fit()  # the whole tape in view: one thumbnail every few frames
    render_offscreen(tl)
    assert tl.frame_w < 1 and tl.last_paint["last"] == 999 and tl.last_paint["pixmaps"] <= visible
    assert tl.cached() <= 800


def test_inbetween_paint_round_trip_and_jumping_to_a_spike(studio):
    studio.switch_to("tape")
    st, app = studio.session.tape, studio.session.app
    st.set_clip(square_clip(8, jump_at=4), fps=8)
    tab(studio, "Check")
    studio.click("tape.check")
    studio.wait_idle(30)
    assert st.spikes(1) == [4]
    spark = studio.widget("tape.sparkline")
    studio.qtbot.mouseClick(spark, Qt.MouseButton.LeftButton, pos=QPoint(int(spark.transition_x(4)), 10))
    assert st.playhead == 5

    st.seek(0)
    tab(studio, "Edit")
    studio.widget("tape.inbetween_count").setValue(2)
    studio.click("tape.inbetween")
    studio.wait_idle(30)
    assert st.count == 10 and st.recipe["edits"][-1]["edit"] == "inbetween"

    st.seek(6)
    studio.click("tape.open_in_paint")
    assert app.workspace == "paint" and np.array_equal(app.image.pixels, st.frames[6])
    app.image = StudioImage(np.full((96, 128, 3), 250, np.uint8), "painted")  # the painter's edit
    studio.switch_to("tape")
    tab(studio, "Edit")
    studio.click("tape.take_from_canvas")
    assert st.count == 10 and st.frames[6].shape == (48, 64, 3) and int(st.frames[6].min()) >= 240
    assert st.edit_frame is None and st.recipe["edits"][-1] == {"edit": "paint", "frame": 6}


def test_bad_input_ends_in_a_message(studio, tmp_path):
    assert studio.render_clip("", frames=8) == []
    assert "Type a prompt" in studio.last_error()
    tab(studio, "Edit")
    studio.click("tape.rerender")
    assert "no clip" in studio.last_error()
    studio.click("tape.inbetween")
    assert "Put the playhead" in studio.last_error()
    (tmp_path / "broken.mp4").write_bytes(b"garbage" * 100)
    studio.window.panels["tape"].import_paths([tmp_path / "broken.mp4"])
    studio.wait_idle()
    assert "broken.mp4" in studio.last_error()
    assert studio.session.tape.count == 0 and not studio.session.tape.busy


def test_the_last_kept_clip_reopens_after_a_restart(studio_factory, tmp_path):
    from studio.core.tape_requests import ExportClipRequest
    from studio.media.video import write_clip

    home = tmp_path / "home"
    # What a render leaves in the library (PNG frames + recipe), as if the studio was killed after it.
    for stamp, n in (("20240101-000000-aaaaaaaa", 3), ("20240102-000000-bbbbbbbb", 5)):
        write_clip(ExportClipRequest(tuple(square_clip(n)), str(home / "library" / "tape" / stamp), "png", 12.0,
                                     {"format": "studio.tape", "prompt": f"clip {n}", "fps": 12}))
    studio = studio_factory(home)
    studio.switch_to("tape")
    studio.wait_idle()
    st = studio.session.tape
    assert st.count == 5 and st.fps == 12.0 and st.prompt == "clip 5"
