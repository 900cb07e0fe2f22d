"""The central canvas: wheel and key zoom, fit, 100 %, the pixel grid at high zoom (checked on a
rendered grab), the patch grid, hover reports and dropped files."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRectF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from studio.core.image import StudioImage
from studio.testing import grab_array
from studio.ui.canvas import MAX_ZOOM, MIN_ZOOM, PIXEL_GRID_ZOOM, ZOOM_STEP, ImageCanvas


@pytest.fixture
def canvas(qtbot):
    view = ImageCanvas()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    return view


def solid(w, h, rgb=(255, 255, 255)) -> StudioImage:
    return StudioImage(np.full((h, w, 3), rgb, np.uint8))


def wheel(view, clicks: float):
    vp = view.viewport()
    pos = QPointF(vp.rect().center())
    ev = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                     QPoint(0, int(120 * clicks)), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)


def grab(view) -> np.ndarray:
    return grab_array(view.viewport())


def image_area(view, grabbed: np.ndarray, inset: int = 2) -> np.ndarray:
    """The part of a grab covered by the image (inset to avoid its border pixels)."""
    r = view.mapFromScene(QRectF(0, 0, view.image().width, view.image().height)).boundingRect()
    dpr = grabbed.shape[1] / view.viewport().width()
    x0, y0 = max(int(r.left() * dpr), 0) + inset, max(int(r.top() * dpr), 0) + inset
    x1 = min(int(r.right() * dpr), grabbed.shape[1]) - inset
    y1 = min(int(r.bottom() * dpr), grabbed.shape[0]) - inset
    return grabbed[y0:y1, x0:x1]


def test_a_new_image_is_fitted_whole_into_the_view(canvas):
    canvas.set_image(solid(200, 100))
    vp = canvas.viewport().rect()
    shown = canvas.mapFromScene(QRectF(0, 0, 200, 100)).boundingRect()
    assert vp.contains(shown)
    assert shown.width() >= vp.width() * 0.9  # it fills the view's width, not a corner
    assert canvas.zoom() == pytest.approx(vp.width() / 200, rel=0.06)


def test_wheel_zooms_in_and_out_by_steps(canvas, qtbot):
    canvas.set_image(solid(50, 40))
    canvas.actual_size()
    with qtbot.waitSignal(canvas.zoom_changed):
        wheel(canvas, 1)
    assert canvas.zoom() == pytest.approx(ZOOM_STEP)
    wheel(canvas, -2)
    assert canvas.zoom() == pytest.approx(1 / ZOOM_STEP)
    wheel(canvas, 0.5)  # a smooth-scrolling touchpad sends fractions of a click
    assert canvas.zoom() == pytest.approx(ZOOM_STEP ** -0.5)


def test_plus_minus_keys_zero_fits_and_one_is_actual_size(canvas, qtbot):
    canvas.set_image(solid(50, 40))
    fitted = canvas.zoom()
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert canvas.zoom() == pytest.approx(fitted * ZOOM_STEP)
    qtbot.keyClick(canvas, Qt.Key.Key_Equal)  # + without Shift on most keyboards
    qtbot.keyClick(canvas, Qt.Key.Key_Minus)
    assert canvas.zoom() == pytest.approx(fitted * ZOOM_STEP)
    qtbot.keyClick(canvas, Qt.Key.Key_1)
    assert canvas.zoom() == pytest.approx(1.0)
    qtbot.keyClick(canvas, Qt.Key.Key_0)
    assert canvas.zoom() == pytest.approx(fitted)


def test_zoom_is_clamped(canvas):
    canvas.set_image(solid(10, 10))
    for _ in range(60):
        canvas.zoom_in()
    assert canvas.zoom() == pytest.approx(MAX_ZOOM)
    for _ in range(120):
        canvas.zoom_out()
    assert canvas.zoom() == pytest.approx(MIN_ZOOM)


def test_fit_follows_resizes_until_the_user_zooms(canvas, qtbot):
    canvas.set_image(solid(100, 100))
    small = canvas.zoom()
    canvas.resize(800, 600)
    qtbot.waitUntil(lambda: canvas.zoom() > small * 1.5)
    canvas.actual_size()
    canvas.resize(400, 300)
    qtbot.wait(20)
    assert canvas.zoom() == pytest.approx(1.0)


def test_pixel_grid_appears_only_at_high_zoom(canvas, qtbot):
    canvas.set_image(solid(8, 8))
    canvas.set_zoom(PIXEL_GRID_ZOOM / 2)
    qtbot.wait(10)
    low = image_area(canvas, grab(canvas))
    assert low.size and (low == 255).all()  # plain white: no grid
    canvas.set_zoom(PIXEL_GRID_ZOOM * 2)
    qtbot.wait(10)
    high = image_area(canvas, grab(canvas))
    dark = (high.max(axis=2) < 230)
    rows_with_lines = dark.all(axis=1).sum()  # whole rows of grid line
    cols_with_lines = dark.all(axis=0).sum()
    assert rows_with_lines >= 6 and cols_with_lines >= 6, (rows_with_lines, cols_with_lines)
    assert (~dark).sum() > dark.sum()  # lines, not a grey wash


@pytest.mark.parametrize("size", [8, 14, 16, 32])
def test_patch_grid_draws_lines_on_patch_boundaries(canvas, qtbot, size):
    canvas.set_image(solid(64, 64, (0, 0, 0)))
    canvas.set_patch_grid(size)
    qtbot.wait(10)
    shot = grab(canvas)
    dpr = shot.shape[1] / canvas.viewport().width()

    def column_brightness(x_image: float) -> float:
        p = canvas.mapFromScene(QPointF(x_image, 32))
        xs = int(p.x() * dpr)
        band = shot[int(10 * dpr): int(250 * dpr), xs - 1: xs + 2]  # the line may fall either side
        return float(band.max(axis=1).mean())

    assert column_brightness(size) > 100      # a line on the boundary
    assert column_brightness(size / 2) < 30   # dark inside a patch
    canvas.set_patch_grid(0)
    qtbot.wait(10)
    assert image_area(canvas, grab(canvas)).max() == 0


def test_hover_reports_pixel_and_rgb_and_leaving_the_image(canvas, qtbot):
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[7, 11] = (10, 20, 30)
    canvas.set_image(StudioImage(arr))
    got = []
    canvas.hovered.connect(lambda x, y, rgb: got.append((x, y, rgb)))
    pos = canvas.mapFromScene(QPointF(11.5, 7.5))
    qtbot.mouseMove(canvas.viewport(), pos)
    assert got[-1] == (11, 7, (10, 20, 30))
    outside = canvas.mapFromScene(QPointF(-3, -3))
    if canvas.viewport().rect().contains(outside):
        qtbot.mouseMove(canvas.viewport(), outside)
        assert got[-1] == (-1, -1, None)


def _drag(vp, mime, kind):
    # Qt 6 takes a QPoint for drag-enter events and a QPointF for drops.
    pos = QPointF(vp.rect().center()) if kind is QDropEvent else vp.rect().center()
    return kind(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                Qt.KeyboardModifier.NoModifier)


def test_dropping_files_emits_their_paths(canvas, qtbot, tmp_path):
    vp = canvas.viewport()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "a.png")), QUrl.fromLocalFile(str(tmp_path / "b.jpg"))])
    enter = _drag(vp, mime, QDragEnterEvent)
    QApplication.sendEvent(vp, enter)
    accepted = enter.isAccepted()
    assert accepted
    with qtbot.waitSignal(canvas.files_dropped) as blocker:
        QApplication.sendEvent(vp, _drag(vp, mime, QDropEvent))
    assert blocker.args[0] == [str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]


def test_dropping_text_opens_nothing(canvas, qtbot):
    vp = canvas.viewport()
    mime = QMimeData()
    mime.setText("just words")
    with qtbot.assertNotEmitted(canvas.files_dropped):
        QApplication.sendEvent(vp, _drag(vp, mime, QDragEnterEvent))
        QApplication.sendEvent(vp, _drag(vp, mime, QDropEvent))


def test_clearing_the_image(canvas):
    canvas.set_image(solid(10, 10))
    canvas.set_image(None)
    assert canvas.image() is None
    canvas.zoom_in()  # no image: still safe
    canvas.fit()
