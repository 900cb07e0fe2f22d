"""The paint workspace as a user drives it, on a tiny random SD pipeline loaded through the manager:
generate (PNG + metadata + gallery), determinism, Ctrl+Enter queueing and reordering, cancel, the OOM
retry, dropping an A1111 PNG, sending the result, undo of applied results."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from studio.core.paint_requests import PaintRequest
from studio.media.imageio import save_png
from studio.media.metadata import format_parameters, parse_parameters, read_png_text
from studio.core.image import StudioImage
from tests.helpers import tiny_models, tiny_sd


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return tiny_models.zoo(tmp_path_factory)


@pytest.fixture
def studio_home(tmp_path, zoo):
    return tiny_sd.prepare_home(tmp_path / "home", zoo)


def paint_jobs(studio):
    return [j for j in studio.session.runtime.active() if isinstance(j.request, PaintRequest)]


def test_generate_saves_a_png_whose_metadata_round_trips(studio, tmp_path):
    image = studio.generate("a red cube, studio light", steps=3, seed=1234, cfg_scale=6.5,
                            negative_prompt="blurry")
    assert studio.last_error() is None and image.size == (32, 32)
    st = studio.session.paint
    path = st.last_result.info["path"]
    assert path.startswith(str(studio.session.paths.library)) and st.last_seed == 1234
    params = parse_parameters(read_png_text(path)["parameters"])
    assert params.prompt == "a red cube, studio light" and params.negative_prompt == "blurry"
    assert (params.settings["Steps"], params.settings["Seed"], params.settings["CFG scale"]) == ("3", "1234", "6.5")
    assert params.settings["Model"] == "Tiny SD" and params.settings["Sampler"] == "Euler a"
    assert np.array_equal(np.asarray(image), studio.canvas.image().pixels)  # the result is on the canvas
    # Same seed, same pixels; a new seed, new pixels.
    again = studio.generate("a red cube, studio light", steps=3, seed=1234, cfg_scale=6.5, negative_prompt="blurry")
    assert np.array_equal(np.asarray(again), np.asarray(image))
    other = studio.generate("a red cube, studio light", seed=99)
    assert not np.array_equal(np.asarray(other), np.asarray(image))
    # The gallery finds all three; the journal holds no job any more.
    studio.widget("paint.tabs").setCurrentWidget(studio.widget("paint.gallery"))
    studio.wait_idle()
    gallery = studio.widget("paint.gallery_list")
    assert gallery.count() == 3
    studio.widget("paint.gallery_search").setText("cube light")
    studio.qtbot.waitUntil(lambda: gallery.count() == 3)
    studio.widget("paint.gallery_search").setText("no such words")
    studio.qtbot.waitUntil(lambda: gallery.count() == 0)
    assert list((studio.session.paths.journal / "jobs").glob("*.json")) == []
    # Undo takes the applied result off the canvas, redo puts it back.
    studio.click("paint.undo")
    assert studio.session.app.image is not st.last_result
    studio.click("paint.redo")
    assert studio.session.app.image is st.last_result
    studio.screenshot(tmp_path / "paint.png")


def test_ctrl_enter_queues_jobs_that_can_be_reordered_and_cancelled(studio):
    studio.switch_to("paint")
    box = studio.widget("paint.prompt")
    queue = studio.widget("paint.queue")
    with studio.gpu_lane_held():
        for prompt in ("first", "second", "third"):
            box.setPlainText(prompt)
            studio.qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert box.toPlainText() == "third"  # Ctrl+Enter generated, it did not add a line
        assert [j.request.prompt for j in studio.session.runtime.queued() if isinstance(j.request, PaintRequest)] \
            == ["first", "second", "third"]
        assert queue.count() == 3 and len(list((studio.session.paths.journal / "jobs").glob("*.json"))) == 3
        studio.widget("paint.tabs").setCurrentWidget(studio.widget("paint.queue_tab"))  # the Queue tab
        queue.setCurrentRow(2, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        studio.click("paint.queue_up")
        studio.click("paint.queue_up")
        assert [queue.item(i).text().split()[-1] for i in range(3)] == ["third", "first", "second"]
        queue.setCurrentRow(2, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        studio.click("paint.queue_cancel")
        assert queue.count() == 2
        assert len(list((studio.session.paths.journal / "jobs").glob("*.json"))) == 2
    studio.wait_idle(60)
    from studio.media.gallery import Gallery

    made = Gallery(studio.session.paths.home / "gallery.sqlite", studio.session.paths.library).search()
    assert [e.prompt for e in reversed(made)] == ["third", "first"]


def test_cancel_stops_the_running_generation(studio):
    studio.switch_to("paint")
    st = studio.session.paint
    studio.widget("paint.steps").setValue(150)
    studio.widget("paint.prompt").setPlainText("a long one")
    studio.click("paint.generate")
    status = studio.widget("paint.status")
    step = re.compile(r"Step (\d+)/150")
    studio.qtbot.waitUntil(lambda: (m := step.search(status.text())) is not None and int(m.group(1)) >= 2,
                           timeout=60000)
    studio.click("paint.cancel")
    studio.wait_idle(30)
    assert "Cancelled" in status.text() and not st.busy and st.last_result is None
    assert list((studio.session.paths.journal / "jobs").glob("*.json")) == []


def test_out_of_memory_offers_a_retry_with_less_memory(studio, monkeypatch):
    from diffusers import StableDiffusionPipeline

    seen = []

    def oom(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", oom)
    assert studio.generate("too big") is None
    assert "Out of memory" in studio.last_error()
    retry = studio.widget("paint.retry")
    assert retry.isVisible()
    studio.session.runtime.subscribe(lambda job: seen.append(getattr(job.request, "low_memory", None)))
    studio.click("paint.retry")
    studio.wait_idle(30)
    assert True in seen and "Out of memory" in studio.last_error()
    assert not retry.isVisible()  # a low-memory run that fails offers nothing more


def test_dropping_an_a1111_png_offers_its_settings(studio, tmp_path):
    studio.switch_to("paint")
    text = format_parameters("a castle, at dusk\nwide shot", "fog", [
        ("Steps", 17), ("Sampler", "DPM++ 2M"), ("Schedule type", "Karras"), ("CFG scale", 4.5),
        ("Seed", 4242), ("Size", "48x40"), ("Model", "Tiny SD")])
    path = tmp_path / "from_a1111.png"
    save_png(StudioImage(np.zeros((40, 48, 3), np.uint8)), path, {"parameters": text})
    assert studio.drop_files([path]) is not None
    offer = studio.widget("paint.settings_offer")
    assert offer.isVisible() and "from_a1111.png" in studio.widget("paint.settings_offer_text").text()
    studio.click("paint.use_settings")
    st = studio.session.paint
    assert (st.prompt, st.negative_prompt, st.steps, st.seed) == ("a castle, at dusk\nwide shot", "fog", 17, 4242)
    assert (st.scheduler, st.cfg_scale, st.width, st.height) == ("DPM++ 2M Karras", 4.5, 48, 40)
    assert studio.widget("paint.steps").value() == 17 and studio.widget("paint.scheduler").currentText() == \
        "DPM++ 2M Karras"
    assert not offer.isVisible()


def test_send_the_result_to_another_workspace(studio, write_image):
    studio.switch_to("paint")
    studio.click("paint.send_label")
    assert studio.last_error() == "There is no image to send yet: generate or open one."
    studio.open_image(write_image((40, 30)))
    studio.click("paint.send_inspect")
    studio.qtbot.waitUntil(lambda: studio.session.app.workspace == "inspect")
    assert studio.canvas.image().size == (40, 30)


def test_bad_settings_are_explained_not_run(studio):
    studio.switch_to("paint")
    studio.widget("paint.mode").setCurrentIndex(studio.widget("paint.mode").findData("inpaint"))
    assert studio.generate("fix it") is None
    assert "needs an image" in studio.last_error()
    assert paint_jobs(studio) == []
