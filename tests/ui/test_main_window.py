"""The main window: workspaces, opening images (open path, File > Open, drop, paste), recent
files, restart restores layout and settings, bad files end in the banner, objectNames are documented."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QObject, Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QAbstractSlider, QAbstractSpinBox,
                               QComboBox, QGraphicsView, QHeaderView, QLineEdit, QMessageBox,
                               QPlainTextEdit, QPushButton, QScrollBar, QTabBar, QTextEdit,
                               QToolButton, QWidget)

from studio.state.app_state import WORKSPACES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def visible_docks(studio):
    return [ws for ws in WORKSPACES if studio.widget(f"dock.{ws}").isVisible()]


# -- workspaces ---------------------------------------------------------------------------------
def test_the_five_workspaces_by_mode_bar_and_ctrl_number(studio):
    assert visible_docks(studio) == ["inspect"]
    for ws in ("paint", "label", "tape", "chat", "inspect"):
        studio.switch_to(ws)
        assert visible_docks(studio) == [ws]
        assert studio.action(f"action.workspace.{ws}").isChecked()
        assert ws.capitalize() in studio.window.windowTitle()
    for ws in reversed(WORKSPACES):
        studio.switch_to(ws, via="shortcut")
        assert visible_docks(studio) == [ws]
    studio.trigger("action.workspace.paint")  # View > Workspace > Paint
    assert visible_docks(studio) == ["paint"]
    with pytest.raises(ValueError):
        studio.switch_to("garden")


# -- opening images -----------------------------------------------------------------------------
def test_open_path_shows_the_image_and_says_so(studio, write_image):
    path = write_image((80, 60), "photo.png")
    image = studio.open_image(path)
    assert studio.last_error() is None
    assert image.size == (80, 60) and studio.canvas.image() is image
    assert "photo.png: 80×60" in studio.widget("statusbar").currentMessage()


def test_file_open_runs_the_dialog_then_the_open_path(studio, write_image, monkeypatch, qtbot):
    from studio.ui import main_window

    path = write_image((30, 20), "chosen.png")
    asked = []

    def fake_dialog(parent, caption, folder, filters):
        asked.append(filters)
        return str(path), filters

    monkeypatch.setattr(main_window.QFileDialog, "getOpenFileName", fake_dialog)
    studio.trigger("action.open")
    qtbot.waitUntil(lambda: studio.canvas.image() is not None)
    assert studio.canvas.image().size == (30, 20)
    assert "*.png" in asked[0] and "*.jpg" in asked[0]


def test_dropping_files_opens_the_first(studio, write_image):
    first = write_image((21, 13), "first.png")
    second = write_image((5, 5), "second.png")
    image = studio.drop_files([first, second])
    assert image is not None and image.size == (21, 13)


def test_paste_from_the_clipboard(studio, write_image):
    cb = QGuiApplication.clipboard()
    qimg = QImage(12, 7, QImage.Format.Format_RGB32)
    qimg.fill(QColor(200, 10, 20))
    cb.setImage(qimg)
    image = studio.paste()
    assert studio.last_error() is None
    assert image.size == (12, 7) and image.pixels[3, 3, :3].tolist() == [200, 10, 20]
    assert "Pasted image 12×7" in studio.widget("statusbar").currentMessage()

    path = write_image((9, 4), "copied_in_files.png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    cb.setMimeData(mime)
    assert studio.paste().size == (9, 4)

    cb.setText("")
    assert studio.paste() is None
    assert studio.last_error() == "The clipboard holds no image."


def test_recent_files_are_recorded_listed_and_kept(studio, write_image, qtbot):
    a, b = write_image((8, 8), "a.png"), write_image((9, 9), "b.png")
    for p in (a, b, a):
        studio.open_image(p)
    recent = studio.session.settings.get("ui.recent_files")
    assert recent == [str(a.resolve()), str(b.resolve())]
    menu = studio.widget("menu.recent")
    menu.aboutToShow.emit()  # what opening the submenu does
    entries = [act for act in menu.actions() if act.toolTip() in recent]
    assert [act.toolTip() for act in entries] == recent
    entries[1].trigger()  # File > Open Recent > b.png
    qtbot.waitUntil(lambda: studio.canvas.image() is not None and studio.canvas.image().size == (9, 9))
    settings_file = studio.session.paths.settings_file
    studio.close()
    assert json.loads(settings_file.read_text())["ui.recent_files"][0] == str(b.resolve())


# -- restart ------------------------------------------------------------------------------------
def test_layout_and_settings_come_back_at_the_next_start(studio_factory, tmp_path, qtbot):
    home = tmp_path / "home"
    first = studio_factory(home)
    first.window.resize(700, 520)  # inside the offscreen screen (800x600)
    qtbot.waitUntil(lambda: first.window.width() == 700)  # the default is 1280 wide
    size = (first.window.width(), first.window.height())  # the height is held by the docks' minimum
    first.click("inspect.patch_grid")
    first.widget("inspect.patch_size").setCurrentIndex(3)  # 32 px
    first.widget("inspect.colormap").setCurrentText("magma")
    first.switch_to("paint")
    first.close()
    assert sorted(p.name for p in home.iterdir() if p.is_file()) == ["settings.json"]  # no temp files

    second = studio_factory(home)
    assert (second.window.width(), second.window.height()) == size
    assert second.session.app.workspace == "paint" and visible_docks(second) == ["paint"]
    assert second.widget("inspect.patch_grid").isChecked()
    assert second.widget("inspect.patch_size").currentData() == 32
    assert second.widget("inspect.colormap").currentText() == "magma"
    second.switch_to("inspect")
    assert second.canvas._patch_size == 32


def test_a_corrupt_settings_file_does_not_stop_the_studio(studio_factory, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text('{"ui.workspace": "chat", oops')
    studio = studio_factory(home)
    assert studio.session.app.workspace == "inspect"
    assert (home / "settings.corrupt.json").exists()


# -- bad input ----------------------------------------------------------------------------------
def _bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not a picture at all\n" * 10)
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 90, 3), dtype=np.uint8)).save(
        tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    return {"empty.png": "empty", "notes.png": "not an image", "cut.png": "damaged",
            "missing.png": "does not exist"}


def test_bad_files_end_in_the_banner_and_the_studio_keeps_working(studio, tmp_path, write_image):
    banner, message = studio.widget("error.banner"), studio.widget("error.message")
    for name, words in _bad_files(tmp_path).items():
        assert studio.open_image(tmp_path / name) is None
        err = studio.last_error()
        assert err is not None and name in err and words in err, err
        assert banner.isVisible() and message.text() == err
        assert "Traceback" not in message.text()
        assert studio.widget("error.details").isVisible()  # the detail is one click away
    good = studio.open_image(write_image((10, 10)))
    assert good is not None and studio.last_error() is None
    assert not banner.isVisible()
    assert studio.take_internal_errors() == []  # handled, not crashed


def test_error_details_and_dismiss(studio, tmp_path, qtbot):
    (tmp_path / "empty.png").write_bytes(b"")
    studio.open_image(tmp_path / "empty.png")
    studio.click("error.details")
    box = studio.window.findChild(QMessageBox, "error.details_dialog")
    qtbot.waitUntil(lambda: box is not None and box.isVisible())
    assert "Traceback" in box.detailedText() and "empty" in box.text()
    box.close()
    studio.click("error.dismiss")
    assert not studio.widget("error.banner").isVisible()


def test_feature_maps_without_an_image_ask_for_one(studio):
    assert studio.feature_maps() is None
    assert studio.last_error().startswith("Open an image first")


# -- status bar, zoom, dialogs ------------------------------------------------------------------
def test_status_bar_shows_pixel_coordinates_and_rgb(studio, write_image):
    arr = np.zeros((48, 64, 3), np.uint8)
    arr[5, 20] = (1, 2, 3)
    arr[40, 60] = (250, 128, 7)
    studio.open_image(write_image(arr))
    assert studio.hover(20, 5) == "x 20, y 5   RGB (1, 2, 3)"
    assert studio.hover(60, 40) == "x 60, y 40   RGB (250, 128, 7)"
    rgba = np.dstack([arr, np.full((48, 64), 99, np.uint8)])
    studio.open_image(write_image(rgba, "alpha.png"))
    assert studio.hover(20, 5) == "x 20, y 5   RGBA (1, 2, 3, 99)"


def test_view_menu_zoom_and_the_zoom_label(studio, write_image):
    studio.open_image(write_image((40, 30)))
    studio.trigger("action.actual_size")
    assert studio.canvas.zoom() == pytest.approx(1.0)
    assert studio.widget("status.zoom").text() == "100%"
    studio.trigger("action.zoom_in")
    assert studio.widget("status.zoom").text() == "125%"
    studio.trigger("action.zoom_out")
    studio.trigger("action.zoom_out")
    assert studio.canvas.zoom() == pytest.approx(0.8)
    studio.trigger("action.fit")
    assert studio.canvas.zoom() > 5  # a 40 px image fitted into the window


@pytest.mark.parametrize("action, name, text", [("action.shortcuts", "dialog.shortcuts", "Ctrl+1"),
                                                ("action.about", "dialog.about", "Data folder")])
def test_help_dialogs_open_without_blocking(studio, qtbot, action, name, text):
    studio.trigger(action)
    box = studio.window.findChild(QMessageBox, name)
    qtbot.waitUntil(lambda: box is not None and box.isVisible())
    assert text in box.text()
    box.close()


# -- objectNames are stable and documented -------------------------------------------------------
INTERACTIVE = (QAbstractButton, QComboBox, QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSlider,
               QAbstractSpinBox, QAbstractItemView, QGraphicsView)


def _qt_internal(w: QWidget) -> bool:
    """Parts Qt builds for itself: names starting qt_ (dock title buttons, toolbar and menu-bar
    overflow buttons), scroll bars of scroll areas, tab-bar scroll arrows, unnamed headers of
    tables, and the pop-up list inside a combo box."""
    if w.objectName().startswith("qt_"):
        return True
    parent = w.parentWidget()
    if isinstance(w, QScrollBar) and parent is not None and parent.objectName().startswith("qt_scrollarea"):
        return True
    if isinstance(w, QToolButton) and isinstance(parent, QTabBar):
        return True  # the tab bar's scroll arrows
    if isinstance(w, QHeaderView) and not w.objectName() and isinstance(parent, QAbstractItemView):
        return True  # a table's own headers, unless the panel named them
    if isinstance(w, QAbstractItemView) and not w.objectName():
        p = parent
        while p is not None:  # the pop-up's container is a child window of its combo box
            if isinstance(p, QComboBox):
                return True
            p = p.parentWidget()
    return False


def undocumented(window, doc: str) -> list[str]:
    names = set(re.findall(r"`([^`\s]+)`", doc))
    problems = []
    checked = 0
    for w in window.findChildren(QWidget):
        if not isinstance(w, INTERACTIVE) or _qt_internal(w):
            continue
        checked += 1
        if not w.objectName():
            problems.append(f"{type(w).__name__} without objectName (parent {w.parentWidget().objectName()!r})")
        elif w.objectName() not in names:
            problems.append(f"{w.objectName()} ({type(w).__name__}) is not in docs/testing.md")

    def walk(menu):
        nonlocal checked
        if not menu.objectName() or menu.objectName() not in names:
            problems.append(f"menu {menu.title()!r} ({menu.objectName()!r}) is not documented")
        for act in menu.actions():
            if act.isSeparator():
                continue
            if act.menu() is not None:
                walk(act.menu())
                continue
            checked += 1
            if not act.objectName() or act.objectName() not in names:
                problems.append(f"menu entry {act.text()!r} ({act.objectName()!r}) is not documented")

    for act in window.menuBar().actions():
        if act.menu() is not None:
            walk(act.menu())
    assert checked >= 20, f"only {checked} widgets checked: the walk is broken"
    return problems


def test_every_interactive_widget_has_a_documented_object_name(studio):
    assert undocumented(studio.window, DOCS.read_text(encoding="utf-8")) == []


def test_the_documented_window_names_exist(studio):
    doc = DOCS.read_text(encoding="utf-8")
    section = doc.split("### Main window", 1)[1].split("\n### Dialogs", 1)[0]
    names = re.findall(r"^\| `([^`]+)` \|", section, re.M)
    assert len(names) > 40
    missing = [n for n in names
               if n != studio.window.objectName() and studio.window.findChild(QObject, n) is None]
    assert missing == [], f"docs/testing.md lists names the window no longer has: {missing}"


def test_the_name_check_catches_an_unnamed_or_undocumented_widget(studio):
    doc = DOCS.read_text(encoding="utf-8")
    stray = QPushButton("Stray", studio.window.centralWidget())
    assert any("QPushButton without objectName" in p for p in undocumented(studio.window, doc))
    stray.setObjectName("paint.secret_button")
    assert any("paint.secret_button" in p for p in undocumented(studio.window, doc))
    stray.deleteLater()
