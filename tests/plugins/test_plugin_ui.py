"""Plugins in the real window (the `studio` fixture): the palette panel as a dock showing the two
colours of an image, its menu command and shortcut, broken plugins reported in the banner while the
studio keeps working, and the Plugins dialog switching a plugin off for the next start."""
from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QComboBox, QDockWidget, QLabel

from studio.testing import grab_array
from tests.ui.test_main_window import DOCS, undocumented

RED, BLUE = (200, 30, 40), (20, 90, 230)
MINE = ("palette.", "plugin.", "plugins.", "menu.plugins")


def undocumented_plugin_names(window) -> list[str]:
    """The name check of tests/ui, limited to the widgets of plugins and the Plugins dialog (other
    areas keep their own names documented)."""
    return [p for p in undocumented(window, DOCS.read_text(encoding="utf-8")) if any(m in p for m in MINE)]


def two_colours(w: int = 80, h: int = 50) -> np.ndarray:
    px = np.zeros((h, w, 3), np.uint8)
    px[:, :] = RED
    px[:, int(w * 0.7):] = BLUE  # 70 % red, 30 % blue
    return px


def test_the_palette_panel_is_a_dock_showing_the_dominant_colours(studio, write_image, qtbot, tmp_path):
    dock = studio.widget("dock.plugin.palette_panel.palette")
    assert isinstance(dock, QDockWidget) and not dock.isVisible()  # opened from the Plugins menu
    assert studio.window.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea
    studio.open_image(write_image(two_colours(), "two.png"))
    studio.trigger("action.plugin.palette_panel.palette")
    qtbot.waitUntil(lambda: dock.isVisible() and dock.widget().objectName() == "palette.panel")
    panel = dock.widget()
    qtbot.waitUntil(lambda: panel.hex_codes() == ["#c81e28", "#145ae6"])
    swatches = studio.widget("palette.swatches")
    assert [swatches.item(i).text() for i in range(swatches.count())] == ["#c81e28\n70.0 %", "#145ae6\n30.0 %"]
    assert studio.widget("palette.info").text().startswith("2 colours of the 80×50 image")
    strip = grab_array(studio.widget("palette.strip"))
    w = strip.shape[1]
    assert tuple(strip[strip.shape[0] // 2, int(w * 0.3)]) == RED
    assert tuple(strip[strip.shape[0] // 2, int(w * 0.9)]) == BLUE
    studio.click("palette.copy")
    assert QGuiApplication.clipboard().text() == "#c81e28\n#145ae6"
    studio.open_image(write_image(np.full((10, 10, 3), 7, np.uint8), "dark.png"))  # follows the canvas
    qtbot.waitUntil(lambda: panel.hex_codes() == ["#070707"])
    assert undocumented_plugin_names(studio.window) == []
    studio.screenshot(tmp_path / "palette.png")
    assert studio.errors() == []


def test_the_palette_command_and_its_shortcut(studio, write_image, qtbot):
    act = studio.action("action.plugin.palette_panel.copy_palette")
    assert act.shortcut().toString() == "Ctrl+Alt+P"
    studio.trigger("action.plugin.palette_panel.copy_palette")
    assert studio.last_error() == "Open an image first: the palette is taken from the current image."
    assert studio.session.plugins.get("palette_panel").state == "loaded"  # its own message, still on
    studio.open_image(write_image(two_colours(), "two.png"))
    QGuiApplication.clipboard().setText("")
    studio.window.activateWindow()
    qtbot.keyClick(studio.window, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: QGuiApplication.clipboard().text() == "#c81e28\n#145ae6")
    assert "Copied 2 colours" in studio.widget("statusbar").currentMessage()


BROKEN = {
    "badpanel": ('[[panel]]\nid = "p"\ntitle = "Bad panel"\nwidget = "ui:make"\n',
                 {"ui.py": "def make(host):\n    raise RuntimeError('panel constructor broke')\n"}),
    "slotty": ('[[panel]]\nid = "p"\ntitle = "Slotty"\nwidget = "ui:Panel"\n',
               {"ui.py": "from PySide6.QtWidgets import QPushButton, QWidget\n"
                         "class Panel(QWidget):\n"
                         "    def __init__(self, host):\n"
                         "        super().__init__()\n"
                         "        self.button = QPushButton('Go', self)\n"
                         "        self.button.setObjectName('slotty.go')\n"
                         "        self.button.clicked.connect(self.go)\n"
                         "    def go(self):\n"
                         "        raise ValueError('slot broke')\n"}),
    "badcmd": ('[[command]]\nid = "c"\ntitle = "Bad command"\nrun = "cmd:go"\nshortcut = "Ctrl+O"\n',
               {"cmd.py": "def go(host):\n    return {}['missing']\n"}),
}


def test_broken_plugins_are_reported_and_switched_off_while_the_studio_runs(studio_factory, studio_home,
                                                                           write_plugin, write_image, qtbot):
    for pid, (body, files) in BROKEN.items():
        write_plugin(pid, body, files, root=studio_home / "plugins")
    write_plugin("broken", toml='id = "broken"\nname = "Oops', root=studio_home / "plugins")
    write_plugin("badhook", 'register = "hook:register"\n', {"hook.py": "def register(r):\n    1 / 0\n"},
                 root=studio_home / "plugins")
    studio = studio_factory(studio_home)
    banner = studio.widget("error.message")
    qtbot.wait(20)  # anything posted while loading has run: the start-up summary stays
    assert banner.isVisible() and banner.text().startswith("2 plugins could not be loaded and are switched "
                                                           "off: “Badhook”, “broken”.")
    assert "Plugins > Manage Plugins…" in banner.text()
    assert "not valid TOML" in studio.session.app.error_detail
    assert "ZeroDivisionError" in studio.session.app.error_detail
    # A clashing shortcut is dropped with a note, never made ambiguous.
    cmd = studio.action("action.plugin.badcmd.c")
    assert cmd.shortcut().isEmpty()
    assert "taken by “Open…”" in studio.session.plugins.get("badcmd").warnings[0]

    studio.trigger("action.plugin.badpanel.p")
    dock = studio.widget("dock.plugin.badpanel.p")
    qtbot.waitUntil(lambda: dock.widget().objectName() == "plugin.error" and studio.last_error() is not None)
    err = studio.last_error()
    assert err.startswith("The plugin “Badpanel” failed in its panel “Bad panel” and is switched off")
    assert "RuntimeError: panel constructor broke" in err and "panel constructor broke" in dock.widget().text()

    studio.trigger("action.plugin.badcmd.c")
    qtbot.waitUntil(lambda: not cmd.isEnabled() and studio.last_error() is not None)
    assert "failed in its command “Bad command”" in studio.last_error() and "KeyError" in studio.last_error()

    # An exception in a panel's own slot (a button handler) is caught too, and names the plugin.
    studio.trigger("action.plugin.slotty.p")
    slot_dock = studio.widget("dock.plugin.slotty.p")
    qtbot.waitUntil(lambda: hasattr(slot_dock.widget(), "button"))
    studio.click("slotty.go")
    qtbot.waitUntil(lambda: studio.last_error() is not None)
    assert studio.last_error().startswith("The plugin “Slotty” failed in its panel and is switched off")
    assert "ValueError: slot broke" in studio.last_error()
    qtbot.waitUntil(lambda: slot_dock.widget().objectName() == "plugin.error")

    assert studio.open_image(write_image((20, 10))) is not None  # the studio keeps working
    states = {r.id: r.state for r in studio.session.plugins.records()}
    assert states["badpanel"] == states["badcmd"] == states["broken"] == states["slotty"] == "failed"
    assert states["palette_panel"] == "loaded"


def test_the_plugins_dialog_lists_plugins_and_switches_one_off_at_the_next_start(studio_factory, tmp_path, qtbot):
    home = tmp_path / "home"
    studio = studio_factory(home)
    assert "deit-small" in studio.session.catalog
    # Plugin preprocessors are offered wherever the studio lists preprocessors (paint's control tabs).
    for combo in [c for c in studio.window.findChildren(QComboBox) if c.objectName().endswith(".preprocessor")]:
        assert combo.findData("sketch_edges.sketch") >= 0, combo.objectName()
    studio.trigger("action.plugins.manage")
    dialog = studio.widget("plugins.dialog")
    qtbot.waitUntil(dialog.isVisible)
    table = studio.widget("plugins.table")
    rows = {table.item(r, 2).text(): r for r in range(table.rowCount())}
    assert {"extra_models", "palette_panel", "sketch_edges"} <= set(rows)
    assert "next start" in studio.widget("plugins.note").text()
    table.setCurrentCell(rows["palette_panel"], 1)
    assert "Adds: 1 engine, 1 panel, 1 command" in studio.widget("plugins.details").toPlainText()
    dialog.set_enabled("extra_models", False)  # what unticking its box does
    assert json.loads((home / "settings.json").read_text())["plugins.disabled"] == ["extra_models"]
    assert table.item(rows["extra_models"], 5).text() == "Enabled — disabled at the next start"
    restart = studio.widget("plugins.restart")
    assert restart.isVisible() and "Extra models" in restart.text()
    assert undocumented_plugin_names(studio.window) == []
    dialog.close()
    studio.close()

    again = studio_factory(home)
    assert again.session.plugins.get("extra_models").state == "disabled"
    assert "deit-small" not in again.session.catalog
    assert again.session.plugins.get("palette_panel").state == "loaded"
    assert isinstance(again.widget("dock.plugin.palette_panel.palette"), QDockWidget)
    assert again.window.findChild(QLabel, "plugin.error") is None
