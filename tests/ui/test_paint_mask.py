"""Masks, poses and depth maps made by hand: brush maths, painting the mask on the canvas with the mouse
(paint, erase, undo, invert, feather, clear), mask from a word and from the label workspace, inpainting
with the painted mask, the pose editor (drag, add, remove, mirror, OpenPose colours) and the depth painter."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QGraphicsView

from studio.core.label_requests import RegionRequest, RegionResult
from studio.core.paint_requests import COLORS, LIMBS, mirror_person, render_pose, standing_person
from studio.state.paint_state import gradient, stamp, stroke
from tests.helpers import tiny_models, tiny_sd


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return tiny_models.zoo(tmp_path_factory)


@pytest.fixture
def studio_home(tmp_path, zoo):
    return tiny_sd.prepare_home(tmp_path / "home", zoo)


def mouse(widget, kind, pos, button=Qt.MouseButton.LeftButton):
    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}
    buttons = Qt.MouseButton.NoButton if kind == "release" else button
    ev = QMouseEvent(types[kind], QPointF(pos), QPointF(widget.mapToGlobal(pos)),
                     Qt.MouseButton.NoButton if kind == "move" else button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(widget, points, button=Qt.MouseButton.LeftButton):
    mouse(widget, "press", points[0], button)
    for p in points[1:]:
        mouse(widget, "move", p, button)
    mouse(widget, "release", points[-1], button)


# -- brush maths (Qt-free) ------------------------------------------------------------------------
def test_stamp_stroke_and_gradient():
    m = np.zeros((40, 40), np.uint8)
    stamp(m, 20, 20, 5, 1.0, 255)
    assert m[20, 20] == 255 and m[20, 26] == 0 and (m == 255).sum() == pytest.approx(np.pi * 25, rel=0.2)
    soft = np.zeros((40, 40), np.uint8)
    stamp(soft, 20, 20, 8, 0.0, 255)
    assert soft[20, 20] > 200 and 0 < soft[20, 25] < 200  # soft edge
    stroke(m, (2, 2), (38, 2), 2, 1.0, 255)
    assert (m[2, 2:38] == 255).all()  # a fast drag leaves no gaps
    stroke(m, (2, 2), (38, 2), 3, 1.0, 0, "min")
    assert (m[2] == 0).all()
    g = gradient((4, 10), (0, 0), (10, 0), 200, 0)
    assert g[0, 0] > g[0, 5] > g[0, 9] and g[0, 0] >= 180


# -- the mask on the canvas -----------------------------------------------------------------------
def test_painting_the_mask_with_the_mouse(studio, write_image):
    studio.open_image(write_image((64, 64)))
    studio.switch_to("paint")
    studio.widget("paint.tabs").setCurrentWidget(studio.widget("paint.scroll_mask"))
    st = studio.session.paint
    canvas = studio.canvas
    studio.widget("paint.brush_size").setValue(8)
    studio.widget("paint.brush_hardness").setValue(100)
    studio.click("paint.mask_tool")
    assert st.mask_tool and canvas.dragMode() == QGraphicsView.DragMode.NoDrag
    vp = canvas.viewport()
    pts = [canvas.mapFromScene(QPointF(x, 32.0)) for x in (10.0, 30.0, 50.0)]
    drag(vp, pts)
    m = st.mask
    assert m is not None and m.shape == (64, 64)
    assert (m[32, 10:51] == 255).all()  # along the stroke
    assert m[10, 32] == 0 and m[55, 32] == 0  # away from it
    assert abs(int((m > 0).sum()) - 8 * 41) < 8 * 16
    assert canvas.has_overlay()
    # Right-drag erases part of it.
    drag(vp, [canvas.mapFromScene(QPointF(x, 32.0)) for x in (40.0, 50.0)], Qt.MouseButton.RightButton)
    assert (st.mask[32, 12:34] == 255).all() and st.mask[32, 45] == 0
    studio.click("paint.undo")
    assert st.mask[32, 45] == 255
    studio.click("paint.mask_invert")
    assert st.mask[32, 20] == 0 and st.mask[5, 5] == 255
    studio.click("paint.undo")
    studio.click("paint.feather_apply")
    assert 0 < st.mask[32 - 5, 20] < 255
    studio.click("paint.mask_clear")
    assert st.mask is None and not canvas.has_overlay()
    studio.click("paint.mask_tool")
    assert canvas.dragMode() == QGraphicsView.DragMode.ScrollHandDrag


def test_inpainting_with_a_painted_mask_keeps_the_rest(studio, write_image):
    rng = np.random.default_rng(3)
    original = studio.open_image(write_image(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)))
    studio.switch_to("paint")
    st = studio.session.paint
    st.mask_tool = True
    st.update(brush_size=10, brush_hardness=1.0)
    canvas = studio.canvas
    drag(canvas.viewport(), [canvas.mapFromScene(QPointF(8.0, y)) for y in (6.0, 16.0, 26.0)])
    painted = st.mask.copy()
    image = studio.generate("a patch", mode="inpaint", mask_blur=0, strength=1.0, steps=2)
    assert studio.last_error() is None and image.size == (32, 32)
    out = np.asarray(image)
    keep = painted == 0
    assert np.array_equal(out[keep], original.pixels[keep])
    assert not np.array_equal(out[~keep], original.pixels[~keep])
    assert np.array_equal(st.mask, painted)  # the mask stays for the next try


def test_mask_from_a_word_and_from_the_label_workspace(studio, write_image):
    studio.open_image(write_image((32, 32)))
    studio.switch_to("paint")

    def fake_region(req, ctx, models):
        heat = np.zeros((4, 4), np.float32)
        heat[:, 2:] = 1.0  # the right half
        return RegionResult(req.model_id, req.label, heat, 0.3, req.image.size, 0.01)

    studio.session.runtime.engines.register(RegionRequest, fake_region, "gpu")
    studio.widget("paint.tabs").setCurrentWidget(studio.widget("paint.scroll_mask"))
    studio.widget("paint.mask_word").setText("sky")
    studio.click("paint.mask_from_word")
    studio.wait_idle()
    st = studio.session.paint
    assert st.mask[:, 24:].all() and not st.mask[:, :8].any() and st.mode == "inpaint"
    sent = np.zeros((16, 16), np.uint8)  # another size: fitted to the image
    sent[:8] = 255
    studio.session.app.mask = sent
    assert st.mask.shape == (32, 32) and st.mask[:16].all() and not st.mask[16:].any()


# -- pose editor ----------------------------------------------------------------------------------
def test_rendered_poses_use_the_openpose_colours():
    person = standing_person()
    img = render_pose([person], 256, 256)
    for i in (0, 1, 4, 10, 13):
        x, y = int(person[i][0] * 256), int(person[i][1] * 256)
        assert tuple(img[y, x]) == COLORS[i]
    (a, b), color = LIMBS[2], COLORS[2]  # right upper arm, drawn at 60 %
    mx, my = int((person[a][0] + person[b][0]) / 2 * 256), int((person[a][1] + person[b][1]) / 2 * 256)
    assert tuple(img[my, mx]) == tuple(int(c * 0.6) for c in color)
    mirrored = mirror_person(person)
    assert mirrored[2][0] == pytest.approx(1.0 - person[5][0])
    flat = [v for p in mirror_person(mirrored) for v in p]
    assert flat == pytest.approx([v for p in person for v in p])


def test_pose_editor_drag_add_remove_mirror_and_undo(studio):
    studio.switch_to("paint")
    studio.widget("paint.tabs").setCurrentWidget(studio.widget("paint.scroll_control"))
    editor = studio.widget("paint.pose_editor")
    studio.qtbot.waitUntil(editor.isVisible)
    st = studio.session.paint
    start = st.people
    neck = editor.to_widget(start[0][1])
    target = QPoint(int(neck.x()) + 20, int(neck.y()) + 10)
    drag(editor, [neck.toPoint(), target])
    moved = st.people[0][1]
    where = editor.to_widget(moved)
    assert abs(where.x() - target.x()) <= 2 and abs(where.y() - target.y()) <= 2
    studio.click("paint.undo")
    assert st.people == start
    studio.click("paint.pose_add")
    assert len(st.people) == 2 and editor.selected == 1
    raised = list(st.people[1])
    raised[4] = (0.1, 0.1)  # the right wrist up and out to the image's left
    st.people = (st.people[0], tuple(raised))
    studio.click("paint.pose_mirror")
    assert st.people[1][7][0] > 0.5 and st.people[1][7][1] == pytest.approx(0.1)  # now the left wrist, on the right
    assert st.people[1][4][1] > 0.5  # the other wrist hangs down
    studio.click("paint.pose_remove")
    assert len(st.people) == 1
    studio.click("paint.pose_detect")  # no image open: says what to do
    assert "Open an image first" in studio.last_error()


def test_depth_painter_brush_gradient_blur(studio):
    studio.switch_to("paint")
    studio.widget("paint.tabs").setCurrentWidget(studio.widget("paint.scroll_control"))
    studio.widget("paint.editors").setCurrentIndex(1)
    painter = studio.widget("paint.depth_painter")
    studio.qtbot.waitUntil(painter.isVisible)
    st = studio.session.paint
    f = painter.frame()
    centre = f.center().toPoint()
    drag(painter, [centre, centre + QPoint(5, 0)])
    assert st.depth is not None and st.depth.shape == (32, 32) and st.depth.max() == 255
    studio.widget("paint.depth_tool").setCurrentText("gradient")
    drag(painter, [QPoint(int(f.left()) + 2, centre.y()), QPoint(int(f.right()) - 2, centre.y())])
    row = st.depth[16]
    assert row[0] > row[16] > row[31]
    studio.click("paint.depth_blur")
    studio.click("paint.undo")
    assert np.array_equal(st.depth[16], row)
    studio.click("paint.depth_clear")
    assert st.depth is None
