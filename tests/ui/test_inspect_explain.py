"""The inspect workspace's Explain and Compare tabs and the export of views, on the real window:
Grad-CAM (and ++) for the predicted class and for a top-5 class chosen in the combo, occlusion with
progress and a cancel that frees the GPU lane, the side-by-side CNN-vs-ViT view, PNG + .npy export
(atomic, right shapes) and the clipboard. With the trained starter CNN, Grad-CAM peaks inside the
object's mask on most Shapes-world scenes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QGuiApplication
from test_inspect_common import (choose_model, open_array, panel, show_tab, starter, wait_for, wait_probe,
                                 write_home)

from studio.core.image import StudioImage
from studio.runtime import JobState
from studio.starter.world import SPLITS, make_scene


@pytest.fixture
def studio_home(tmp_path):
    return write_home(tmp_path / "studio-home")


@pytest.fixture
def photo():
    px = np.full((40, 56, 3), 70, np.uint8)
    px[8:30, 10:34] = (40, 200, 60)
    return px


def test_grad_cam_for_the_predicted_and_a_chosen_class(studio, tmp_path, photo):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    choose_model(studio, "tiny-timm-vit")
    show_tab(studio, "explain")
    studio.click("inspect.run_cam")
    wait_for(studio, lambda: st.cam is not None, 30, "Grad-CAM")
    cam = st.cam
    assert cam.heatmap.shape == (32, 32) and cam.layer == "blocks.1.norm1"
    assert cam.target_class == cam.top5[0].index
    assert studio.canvas.has_overlay() and panel(studio).marks._geo == cam.geometry
    combo = studio.widget("inspect.cam_class")
    assert combo.count() == 6  # predicted + top 5
    assert combo.itemText(1).startswith(cam.top5[0].label)
    second = cam.top5[1]
    combo.setCurrentIndex(combo.findData(second.index))
    method = studio.widget("inspect.cam_method")
    method.setCurrentIndex(method.findData("gradcam++"))
    studio.click("inspect.run_cam")
    wait_for(studio, lambda: st.cam is not cam and st.cam is not None, 30, "Grad-CAM++")
    assert st.cam.target_class == second.index and st.cam.method == "gradcam++"
    assert f"“{second.label}”" in studio.widget("inspect.cam_info").text()
    assert "Top 5: 1." in studio.widget("inspect.top5").text()
    assert studio.widget("inspect.explain_view").rgb().shape == (32, 32, 3)


def test_occlusion_runs_with_progress_and_cancels(studio, tmp_path, photo):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    choose_model(studio, "tiny-hf-vit")
    show_tab(studio, "explain")
    with studio.gpu_lane_held():
        studio.click("inspect.run_occlusion")
        assert "occlusion" in st.jobs and studio.widget("inspect.cancel_occlusion").isEnabled()
        job = panel(studio).jobs._jobs["occlusion"]
        studio.click("inspect.cancel_occlusion")
        assert job.state is JobState.CANCELLED
        assert "occlusion" not in st.jobs and not studio.widget("inspect.cancel_occlusion").isEnabled()
    studio.wait_idle()
    assert st.occlusion is None and studio.last_error() is None

    progress = []
    st.changed.connect(lambda name, value: progress.append(value) if name == "occ_progress" else None)
    studio.widget("inspect.occlusion_window").setValue(8)
    studio.widget("inspect.occlusion_stride").setValue(4)
    studio.click("inspect.run_occlusion")
    wait_for(studio, lambda: st.occlusion is not None, 30, "occlusion")
    occ = st.occlusion
    assert occ.window == 8 and occ.stride == 4 and occ.drops.shape == (7, 7)
    assert progress[-1] == 1.0 and studio.widget("inspect.occlusion_progress").value() == 1000
    assert studio.widget("inspect.explain_show").currentData() == "occlusion" and studio.canvas.has_overlay()
    assert "49 positions" in studio.widget("inspect.occlusion_info").text()


def test_side_by_side_cnn_and_vit(studio, tmp_path, photo):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    show_tab(studio, "compare")
    left, right = studio.widget("inspect.compare_left"), studio.widget("inspect.compare_right")
    left.setCurrentIndex(left.findData("resnet18-untrained"))
    right.setCurrentIndex(right.findData("tiny-timm-vit"))
    method = studio.widget("inspect.compare_right_method")
    method.setCurrentIndex(method.findData("rollout"))
    assert st.compare_models == ("resnet18-untrained", "tiny-timm-vit")
    assert st.compare_methods == ("gradcam", "rollout")
    studio.click("inspect.run_compare")
    wait_for(studio, lambda: all(r is not None for r in st.compare), 60, "compare")
    assert studio.widget("inspect.compare_left_view").rgb().shape == (224, 224, 3)
    assert studio.widget("inspect.compare_right_view").rgb().shape == (32, 32, 3)
    assert "Grad-CAM" in studio.widget("inspect.compare_left_info").text()
    assert "Attention rollout" in studio.widget("inspect.compare_right_info").text()
    # The probe is kept: the attention tab of that model needs no new run.
    choose_model(studio, "tiny-timm-vit")
    show_tab(studio, "attention")
    assert st.probe is st.compare[1]
    # A CLIP has no class head: that side says why, the other still works.
    show_tab(studio, "compare")
    right.setCurrentIndex(right.findData("tiny-clip"))
    method.setCurrentIndex(method.findData("gradcam"))
    studio.click("inspect.run_compare")
    studio.qtbot.waitUntil(lambda: all(r is not None for r in st.compare), timeout=30000)
    assert "no classification head" in studio.widget("inspect.compare_right_info").text()
    assert "no classification head" in studio.last_error()


def test_export_png_npy_and_clipboard(studio, tmp_path, photo, monkeypatch):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    choose_model(studio, "tiny-timm-vit")
    show_tab(studio, "attention")
    wait_probe(studio, "tiny-timm-vit")
    studio.widget("inspect.attention_layer").setValue(0)
    out = tmp_path / "out"
    chosen = {}

    def fake_dialog(_parent, _title, start, _filter):
        chosen["start"] = start
        return str(out / chosen["name"]), ""

    monkeypatch.setattr("studio.ui.widgets.inspect_export.QFileDialog.getSaveFileName", fake_dialog)
    chosen["name"] = "attention.png"
    studio.click("inspect.attention_png")
    chosen["name"] = "attention"  # no suffix: .npy is added
    studio.click("inspect.attention_npy")
    assert chosen["start"].endswith("attention-layer1-mean.npy")
    png = Image.open(out / "attention.png")
    assert png.size == (56, 40) and png.mode == "RGB"
    arr = np.load(out / "attention.npy")
    assert arr.shape == (4, 4) and arr.dtype == np.float32
    assert np.allclose(arr, st.attention_map())
    assert sorted(p.name for p in out.iterdir()) == ["attention.npy", "attention.png"]  # no temp files left
    # The PNG is the image with the map over it: inside the crop it differs from the photo.
    assert np.abs(np.asarray(png, np.int16) - photo.astype(np.int16)).max() > 20

    studio.click("inspect.attention_copy")
    clip = QGuiApplication.clipboard().image()
    assert (clip.width(), clip.height()) == (56, 40)

    show_tab(studio, "explain")  # nothing to export yet: a clear message, no file
    chosen["name"] = "nothing.png"
    studio.click("inspect.explain_png")
    assert studio.last_error() == "There is nothing to export yet: show a map first."
    assert not (out / "nothing.png").exists()


@pytest.mark.skipif(starter("cnn") is None, reason="the starter CNN (assets/starter/cnn) is not built yet")
def test_starter_cnn_grad_cam_peaks_inside_the_object(studio, tmp_path):
    st = studio.session.inspect
    choose_model(studio, "starter-cnn")
    show_tab(studio, "explain")
    scenes = [s for s in (make_scene(SPLITS["test"] + i, n_objects=1) for i in range(40))
              if s.objects[0].area >= 150][:8]
    hits = 0
    for scene in scenes:
        studio.window.set_image(StudioImage(scene.image, "shapes-world"))
        before = st.cam
        studio.click("inspect.run_cam")
        wait_for(studio, lambda: st.cam is not None and st.cam is not before, 30, "Grad-CAM")
        cam = st.cam
        iy, ix = np.unravel_index(int(np.argmax(cam.heatmap)), cam.heatmap.shape)
        x, y = cam.geometry.input_to_original(ix + 0.5, iy + 0.5)
        mask = scene.instance_mask > 0
        # A 3-pixel margin: the CAM comes from an 8x8 map, upsampled.
        y0, y1 = max(int(y) - 3, 0), min(int(y) + 4, mask.shape[0])
        x0, x1 = max(int(x) - 3, 0), min(int(x) + 4, mask.shape[1])
        hits += bool(mask[y0:y1, x0:x1].any())
    assert hits >= 0.75 * len(scenes), f"Grad-CAM peaked on the object in {hits} of {len(scenes)} scenes"
