"""The inspect workspace's Patches and Attention tabs on the real window, with tiny random ViTs
(timm, transformers, and a transformers CLIP's vision tower) loaded by the real model manager:
the probe runs once, then layers, heads and rollout options redraw from the cache without a job;
the attention overlay appears and changes; the model's crop and grid are described; hovering
names the patch and a click opens the patch inspector on the right patch."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialog
from test_inspect_common import (canvas_pos, choose_model, click_image, count_jobs, open_array, overlay_bytes,
                                 panel, show_tab, starter, wait_for, wait_probe, write_home)

from studio.engines.probes import views
from studio.starter.world import SPLITS, make_scene


@pytest.fixture
def studio_home(tmp_path):
    return write_home(tmp_path / "studio-home")


@pytest.fixture
def photo():
    """A 96x64 image (not square, so the resize and the crop both matter): a bright square on grey."""
    px = np.full((64, 96, 3), 90, np.uint8)
    px[20:44, 40:64] = (230, 40, 40)
    return px


def test_attention_probe_once_then_layer_head_and_rollout_from_cache(studio, tmp_path, photo):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    choose_model(studio, "tiny-timm-vit")
    show_tab(studio, "attention")  # showing the tab runs the probe by itself
    probe = wait_probe(studio, "tiny-timm-vit")
    assert probe.attentions.shape == (2, 2, 17, 17) and probe.grid == (4, 4)
    wait_for(studio, studio.canvas.has_overlay, 5, "overlay")
    assert "2 layers × 2 heads, 4×4 patches" in studio.widget("inspect.probe_info").text()
    assert studio.widget("inspect.attention_view").rgb().shape[:2] == (4, 4)
    studio.wait_idle()

    jobs = count_jobs(studio)
    submitted = panel(studio).jobs.submitted
    shown = {overlay_bytes(studio)}
    studio.widget("inspect.attention_layer").setValue(0)
    assert st.att_layer == 0
    shown.add(overlay_bytes(studio))
    head = studio.widget("inspect.attention_head")
    head.setCurrentIndex(2)  # head 2
    assert st.att_head == 1
    shown.add(overlay_bytes(studio))
    assert len(shown) == 3, "the overlay did not follow the layer and head"
    expected = probe.attentions[0, 1, 0, 1:].reshape(4, 4)
    assert np.allclose(st.attention_map(), expected, atol=1e-6)

    mode = studio.widget("inspect.attention_mode")
    mode.setCurrentIndex(mode.findData("rollout"))
    studio.widget("inspect.attention_layer").setValue(1)
    mean_map = st.attention_map().copy()
    fusion = studio.widget("inspect.rollout_fusion")
    fusion.setCurrentIndex(fusion.findData("max"))
    max_map = st.attention_map().copy()
    studio.widget("inspect.rollout_discard").setValue(90)
    discard_map = st.attention_map().copy()
    assert not np.allclose(mean_map, max_map) and not np.allclose(max_map, discard_map)
    assert not head.isEnabled()  # rollout fuses the heads
    for layer in range(2):  # the one-pass rollout the view uses agrees with the engines' reference
        studio.widget("inspect.attention_layer").setValue(layer)
        ref = views.attention_rollout(probe.attentions, 1, (4, 4), "max", 0.9, layers=layer + 1)
        assert np.allclose(st.attention_map(), ref, atol=1e-6)
    before = overlay_bytes(studio)
    fusion.setCurrentIndex(fusion.findData("min"))
    assert overlay_bytes(studio) != before

    plot = studio.widget("inspect.distance_plot")
    assert plot._d.shape == (2, 2)
    studio.wait_idle()
    assert jobs == [] and panel(studio).jobs.submitted == submitted  # everything came from the cache

    # Back to the same model and image later: still no new run.
    show_tab(studio, "features")
    show_tab(studio, "attention")
    studio.wait_idle()
    assert jobs == []


def test_patches_tab_describes_the_crop_and_a_click_opens_the_inspector(studio, tmp_path, photo):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    choose_model(studio, "tiny-timm-vit")
    show_tab(studio, "patches")
    probe = wait_probe(studio, "tiny-timm-vit")
    geo = probe.geometry
    # timm's crop_pct 0.9: shorter edge 64 -> 35, so 96x64 -> 52x35, centre crop 32x32.
    assert geo.resized_size == (52, 35) and geo.input_size == (32, 32)
    info = studio.widget("inspect.geometry_info").text()
    assert "sees 32×32 px" in info and "centre-cropped" in info and "4×4 = 16 patches of 8×8 px" in info
    marks = panel(studio).marks
    assert marks._geo == geo and marks._grid == (4, 4)

    x0, y0, x1, y1 = geo.patch_box(1, 2, probe.patch_size)  # row 1, column 2: patch 6, token 7
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    pos = canvas_pos(studio, cx, cy)
    studio.qtbot.mouseMove(studio.canvas.viewport(), pos)
    studio.qtbot.mouseMove(studio.canvas.viewport(), pos + QPoint(1, 0))
    assert st.model_hover == (1, 2, 6)
    assert studio.widget("inspect.model_patch_info").text().startswith("Patch row 1, column 2: patch 6 of 16, token 7")

    jobs = count_jobs(studio)
    click_image(studio, cx, cy)
    dialog = studio.window.findChild(QDialog, "inspect.patch_inspector")
    assert dialog is not None and dialog.isVisible()
    assert st.patch == (1, 2, 6)
    assert "patch 6 of 16, token 7" in studio.widget("inspect.patch_title").text()
    assert np.array_equal(studio.widget("inspect.patch_pixels").rgb(), probe.model_input[8:16, 16:24])
    sim = st.patch_similarity()
    assert sim.shape == (4, 4) and sim[1, 2] == pytest.approx(1.0, abs=1e-3)  # itself
    assert studio.widget("inspect.patch_token_sim").rgb().shape[:2] == (4, 4)
    assert studio.widget("inspect.patch_pos_sim").rgb() is not None  # timm ViTs learn a pos_embed
    assert studio.canvas.has_overlay() and marks._selected == (1, 2)

    barcode = studio.widget("inspect.patch_barcode")
    first = barcode._text
    assert st.patch_layer == 1  # a new model starts at its last layer
    studio.widget("inspect.patch_layer").setValue(0)
    assert st.patch_layer == 0 and barcode._text != first
    assert "layer 1 (blocks.0)" in studio.widget("inspect.patch_title").text()
    sim_view = studio.widget("inspect.patch_token_sim")  # a click on another patch moves the inspector
    studio.qtbot.mouseClick(sim_view, Qt.MouseButton.LeftButton, pos=sim_view.rect().center() + QPoint(2, 2))
    assert st.patch == (2, 2, 10) and "patch 10 of 16" in studio.widget("inspect.patch_title").text()
    studio.wait_idle()
    assert jobs == []
    dialog.close()
    assert not dialog.isVisible()


@pytest.mark.parametrize("model_id, heads, prefix", [("tiny-hf-vit", 2, 1), ("tiny-clip", 2, 1)])
def test_transformers_vit_and_clip_vision_tower(studio, tmp_path, photo, model_id, heads, prefix):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    choose_model(studio, model_id)
    show_tab(studio, "attention")
    probe = wait_probe(studio, model_id)
    assert probe.num_heads == heads and probe.prefix_tokens == prefix
    wait_for(studio, studio.canvas.has_overlay, 5, "overlay")
    before = overlay_bytes(studio)
    studio.widget("inspect.attention_layer").setValue(0)
    assert overlay_bytes(studio) != before
    studio.widget("inspect.show_overlay").setChecked(False)
    assert not studio.canvas.has_overlay()
    studio.widget("inspect.show_overlay").setChecked(True)
    assert studio.canvas.has_overlay()
    studio.switch_to("label")  # the overlay belongs to inspect
    assert not studio.canvas.has_overlay() and panel(studio).marks.is_empty()
    studio.switch_to("inspect")
    wait_for(studio, studio.canvas.has_overlay, 5, "overlay back")
    assert st.probe is probe


def test_a_cnn_says_it_has_no_patches_and_runs_nothing(studio, tmp_path, photo):
    open_array(studio, tmp_path, photo)
    choose_model(studio, "resnet18-untrained")
    jobs = count_jobs(studio)
    show_tab(studio, "attention")
    assert "not a vision transformer" in studio.widget("inspect.probe_info").text()
    assert not studio.widget("inspect.run_probe").isEnabled()
    show_tab(studio, "patches")
    assert "no patches" in studio.widget("inspect.geometry_info").text()
    studio.click("inspect.new_scene")  # a Shapes-world scene, its caption in the status bar
    image = studio.session.app.image
    assert image.size == (64, 64) and image.source.startswith("shapes-world:")
    assert image.info["caption"] in studio.session.app.message
    studio.wait_idle()
    assert jobs == []


@pytest.mark.skipif(starter("clip") is None, reason="the starter CLIP (assets/starter/clip) is not built yet")
def test_starter_vit_rollout_covers_the_shape(studio, tmp_path):
    """With the trained starter CLIP, attention rollout puts more mass on the object than off it."""
    st = studio.session.inspect
    scene = next(s for s in (make_scene(SPLITS["test"] + i, n_objects=1) for i in range(200))
                 if s.objects[0].area > 300)
    open_array(studio, tmp_path, scene.image)
    choose_model(studio, "starter-clip")
    show_tab(studio, "attention")
    probe = wait_probe(studio, "starter-clip")
    mode = studio.widget("inspect.attention_mode")
    mode.setCurrentIndex(mode.findData("rollout"))
    m = st.attention_map()
    mask = scene.instance_mask > 0
    ph, pw = probe.patch_size
    cover = mask.reshape(probe.grid[0], ph, probe.grid[1], pw).mean(axis=(1, 3)) > 0.5
    assert cover.any() and m[cover].mean() > m[~cover].mean()
