"""The inspect workspace: the patch grid (toggle, sizes, hover info) and feature maps on the GPU
lane: to completion, per layer, cancelled while running or queued, failing cleanly."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from studio.core.errors import ModelError
from studio.core.requests import FeatureMapRequest
from studio.runtime import JobState
from studio.testing import grab_array

SIZES = (8, 14, 16, 32)


@pytest.fixture
def black(studio, write_image):
    """The studio with a black 64x48 image open and the seeded ResNet-18 chosen."""
    assert studio.open_image(write_image(np.zeros((48, 64, 3), np.uint8))) is not None
    combo = studio.widget("inspect.model")
    combo.setCurrentIndex(combo.findData("resnet18-untrained"))
    studio.wait_idle()
    return studio


def wrap_engine(studio, around):
    """Replace the feature-map engine with `around(real_engine, request, ctx, models)`."""
    engines = studio.session.runtime.engines
    real, lane = engines.lookup(FeatureMapRequest(None, ""))
    engines.register(FeatureMapRequest, lambda req, ctx, models: around(real, req, ctx, models), lane)


def column_brightness(canvas, shot, x_image):
    dpr = shot.shape[1] / canvas.viewport().width()
    top = canvas.mapFromScene(QPointF(x_image, 2))
    bottom = canvas.mapFromScene(QPointF(x_image, 46))
    xs = int(top.x() * dpr)
    band = shot[int(top.y() * dpr): int(bottom.y() * dpr), xs - 1: xs + 2]
    return float(band.max(axis=1).mean())


# -- patch grid ---------------------------------------------------------------------------------
def test_patch_grid_toggles_and_follows_each_size(black, qtbot):
    studio, canvas = black, black.canvas
    assert canvas._patch_size == 0
    studio.click("inspect.patch_grid")
    assert studio.widget("inspect.patch_grid").isChecked() and canvas._patch_size == 16
    combo = studio.widget("inspect.patch_size")
    for i, size in enumerate(SIZES):
        combo.setCurrentIndex(i)
        assert canvas._patch_size == size
        assert studio.session.settings.get("inspect.patch_size") == size
        qtbot.wait(5)
        shot = grab_array(canvas.viewport())
        assert column_brightness(canvas, shot, size) > 100, size  # a line on the boundary
        assert column_brightness(canvas, shot, size / 2) < 40, size  # none inside the patch
    studio.switch_to("paint")  # the overlay belongs to inspect
    assert canvas._patch_size == 0
    studio.switch_to("inspect")
    assert canvas._patch_size == 32
    studio.click("inspect.patch_grid")
    assert canvas._patch_size == 0 and studio.session.settings.get("inspect.show_patches") is False
    qtbot.wait(5)
    assert column_brightness(canvas, grab_array(canvas.viewport()), 32) < 40


@pytest.mark.parametrize("size, x, y, expected", [
    (8, 20, 5, "Patch row 0, column 2, index 2 (grid 6×8 = 48 patches of 8×8 px)"),
    (14, 30, 29, "Patch row 2, column 2, index 12 (grid 4×5 = 20 patches of 14×14 px)"),
    (32, 63, 47, "Patch row 1, column 1, index 3 (grid 2×2 = 4 patches of 32×32 px)"),
])
def test_hovering_shows_the_patch_under_the_cursor(black, size, x, y, expected):
    studio = black
    info = studio.widget("inspect.patch_info")
    studio.hover(x, y)
    assert info.text() == "Hover the image to see a patch."  # grid off: no patch info
    studio.click("inspect.patch_grid")
    studio.widget("inspect.patch_size").setCurrentIndex(SIZES.index(size))
    studio.hover(x, y)
    assert info.text() == expected
    row, col, index = (int(s.rstrip(",")) for s in expected.split()[2:7:2])
    assert studio.canvas._hover_patch == (row, col, index)


# -- feature maps -------------------------------------------------------------------------------
def test_feature_maps_run_on_the_gpu_lane_and_show_a_mosaic(black):
    studio = black
    ran_on = []

    def record(real, req, ctx, models):
        ran_on.append(threading.current_thread().name)
        return real(req, ctx, models)

    wrap_engine(studio, record)
    result = studio.feature_maps()
    assert studio.last_error() is None and result is not None
    assert ran_on == ["studio-gpu-0"] and "torch" in sys.modules
    assert result.layer == "layer1" and result.maps.shape == (64, 56, 56)
    assert not studio.widget("inspect.feature_view").pixmap().isNull()
    info = studio.widget("inspect.feature_info").text()
    assert info.startswith("layer1: 64 channels, 56×56 each, input 224×224") and "untrained" in info
    layers = studio.widget("inspect.layer")
    assert layers.isEnabled() and layers.findText("layer3") >= 0

    deeper = studio.feature_maps(layer="layer3")
    assert deeper.layer == "layer3" and deeper.channels_total == 256 and deeper.maps.shape[0] == 64
    assert "64 of 256 channels" in studio.widget("inspect.feature_info").text()
    assert len(ran_on) >= 2
    with pytest.raises(ValueError, match="no layer"):
        studio.feature_maps(layer="layer99")


def test_changing_the_colormap_redraws_without_running_again(black, qtbot):
    studio = black
    assert studio.feature_maps() is not None
    calls = []
    wrap_engine(studio, lambda real, *a: calls.append(1) or real(*a))
    view = studio.widget("inspect.feature_view")
    before = grab_array(view)
    studio.widget("inspect.colormap").setCurrentText("gray")
    qtbot.wait(5)
    after = grab_array(view)

    def grey_share(rgb):  # pixels with R == G == B
        return float((rgb.std(axis=2) < 1).mean())

    assert grey_share(after) > grey_share(before) + 0.4
    studio.wait_idle()
    assert calls == []


def _gate(studio):
    """A feature-map engine that keeps running (checking for cancel) until the gate opens."""
    gate, started = threading.Event(), threading.Event()

    def gated(real, req, ctx, models):
        started.set()
        while not gate.wait(0.002):
            ctx.check()
        return real(req, ctx, models)

    wrap_engine(studio, gated)
    return gate, started


def test_cancelling_a_running_run_is_fast_and_leaves_no_trace(black, qtbot):
    studio = black
    gate, started = _gate(studio)
    studio.start_feature_maps()
    assert started.wait(10)
    (job,) = studio.session.runtime.active()
    qtbot.waitUntil(lambda: job.state is JobState.RUNNING)
    assert studio.widget("jobs.label").text().startswith("Feature maps")
    t0 = time.monotonic()
    studio.cancel_jobs()
    assert time.monotonic() - t0 < 1.0
    assert job.state is JobState.CANCELLED
    st = studio.session.inspect
    assert st.feature_maps is None and studio.last_error() is None
    assert studio.widget("inspect.feature_info").text() == "Cancelled"
    assert studio.widget("inspect.run_features").isEnabled()
    assert studio.widget("jobs.label").text() == "Idle" and not studio.widget("jobs.cancel").isEnabled()
    gate.set()
    assert studio.feature_maps() is not None  # still usable


def test_a_newer_run_replaces_a_queued_one_and_the_panel_stays_busy(black):
    studio = black
    assert studio.feature_maps() is not None
    st, combo = studio.session.inspect, studio.widget("inspect.layer")
    with studio.gpu_lane_held():
        combo.setCurrentIndex(combo.findText("layer2"))  # re-runs by itself
        combo.setCurrentIndex(combo.findText("layer3"))  # latest wins: layer2's run is cancelled
        assert st.busy and st.status == "Running…"
        assert not studio.widget("inspect.run_features").isEnabled()
        assert studio.widget("inspect.feature_info").text() == "Running…"
    studio.wait_idle(30)
    assert not st.busy and st.feature_maps.layer == "layer3" and studio.last_error() is None


def test_escape_cancels_queued_runs(black):
    studio = black
    with studio.gpu_lane_held() as hold:
        studio.start_feature_maps()
        studio.trigger("action.cancel_jobs")  # Edit > Cancel Jobs (Esc)
        studio.wait_idle()
        assert hold.state is JobState.CANCELLED
    assert studio.session.inspect.status == "Cancelled" and studio.session.inspect.feature_maps is None


def test_a_failing_model_shows_its_message_and_the_panel_recovers(black):
    studio = black

    def broken(real, req, ctx, models):
        raise ModelError("ResNet-18 could not be loaded: weights are missing.")

    wrap_engine(studio, broken)
    assert studio.feature_maps() is None
    assert studio.last_error() == "ResNet-18 could not be loaded: weights are missing."
    assert studio.widget("inspect.feature_info").text() == "Failed"
    assert studio.widget("inspect.run_features").isEnabled()
    assert studio.widget("error.banner").isVisible()
