"""Plugins in the window: their panels as docks (built the first time they are shown) and the
Plugins menu (Manage Plugins…, a toggle per panel, the plugin commands with their shortcuts).

A panel's module is imported only when its dock is first shown, a command's when it is first
chosen; anything they raise switches that plugin off (its commands grey out, its docks say why)
and the error banner names it. The window itself never sees a plugin exception.
"""
from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import QDockWidget, QLabel, QMenu, QWidget

from studio.core.errors import StudioError

log = logging.getLogger(__name__)

AREAS = {"right": Qt.DockWidgetArea.RightDockWidgetArea, "left": Qt.DockWidgetArea.LeftDockWidgetArea,
         "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}


class PluginUI:
    def __init__(self, window) -> None:
        self.window = window
        self.session = window.session
        self.plugins = window.session.plugins
        self.docks: dict[str, QDockWidget] = {}  # "<plugin>.<panel>" -> dock
        self.panels: dict[str, QWidget] = {}  # the built panel widgets, same keys
        self.commands: dict[str, QAction] = {}  # "<plugin>.<command>" -> action
        self._owner: dict[str, str] = {}  # dock/command key -> plugin id
        self.menu: QMenu | None = None
        if self.plugins is not None:
            self.plugins.subscribe(self._on_failure)

    # -- docks --------------------------------------------------------------------------------
    def build_docks(self) -> None:
        if self.plugins is None:
            return
        for rec, spec in self.plugins.panels():
            key = f"{rec.id}.{spec.id}"
            dock = QDockWidget(spec.title, self.window)
            dock.setObjectName(f"dock.plugin.{key}")
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                             | QDockWidget.DockWidgetFeature.DockWidgetClosable)
            dock.setMinimumWidth(220)
            dock.setWidget(_note(f"{spec.title} (plugin “{rec.name}”) loads when shown.", dock))
            dock.toggleViewAction().setObjectName(f"action.plugin.{key}")
            self.window.addDockWidget(AREAS[spec.area], dock)
            dock.hide()  # opened from the Plugins menu; the saved layout may show it again
            dock.visibilityChanged.connect(
                lambda visible, r=rec, s=spec, d=dock: self._build(r, s, d) if visible else None)
            self.docks[key] = dock
            self._owner[key] = rec.id

    def _build(self, rec, spec, dock: QDockWidget) -> None:
        key = f"{rec.id}.{spec.id}"
        if key in self.panels:
            return
        self.panels[key] = dock.widget()  # mark as tried: a failing constructor runs once
        try:
            widget = self.plugins.call(rec.id, f"in its panel “{spec.title}”", spec.widget,
                                       self.plugins.host(rec.id, self.session, copy_text=_copy_text))
            if not isinstance(widget, QWidget):
                raise self.plugins.fail(rec.id, f"in its panel “{spec.title}”",
                                        TypeError(f"{spec.widget} returned {type(widget).__name__}, "
                                                  "not a QWidget"))
        except StudioError as exc:
            if rec.active:  # the plugin's own message (a BadInputError): show it, stay on
                self.session.app.report_error(exc.user_message, exc.detail)
            self._replace(dock, _note(exc.user_message, dock, error=True))
            return
        self.panels[key] = widget
        self._replace(dock, widget)
        _SlotErrors.install(self.plugins, self.session)

    @staticmethod
    def _replace(dock: QDockWidget, widget: QWidget) -> None:
        old = dock.widget()
        dock.setWidget(widget)
        if old is not None and old is not widget:
            old.deleteLater()  # may be the widget whose slot is running: never delete it now

    # -- menu ---------------------------------------------------------------------------------
    def build_menu(self, menubar) -> QMenu:
        """The Plugins menu, placed before Help. Call after the other menus exist (for shortcut clashes)."""
        menu = QMenu("&Plugins", self.window)
        menu.setObjectName("menu.plugins")
        help_action = next((a for a in menubar.actions()
                            if a.menu() is not None and a.menu().objectName() == "menu.help"), None)
        if help_action is not None:
            menubar.insertMenu(help_action, menu)
        else:
            menubar.addMenu(menu)
        manage = QAction("&Manage Plugins…", self.window)
        manage.setObjectName("action.plugins.manage")
        manage.triggered.connect(self.open_dialog)
        menu.addAction(manage)
        if self.docks:
            menu.addSeparator()
            for dock in self.docks.values():
                menu.addAction(dock.toggleViewAction())
        commands = self.plugins.commands() if self.plugins is not None else []
        if commands:
            menu.addSeparator()
            taken = self._taken_shortcuts()
            for rec, spec in commands:
                key = f"{rec.id}.{spec.id}"
                act = QAction(spec.title, self.window)
                act.setObjectName(f"action.plugin.{key}")
                act.setToolTip(f"{spec.title} (plugin “{rec.name}”)")
                self._set_shortcut(act, rec, spec, taken)
                act.triggered.connect(lambda _=False, r=rec, s=spec: self.run_command(r, s))
                menu.addAction(act)
                self.commands[key] = act
                self._owner[key] = rec.id
        self.menu = menu
        return menu

    def _taken_shortcuts(self) -> dict[str, str]:
        taken = {}
        for act in self.window.findChildren(QAction):
            for seq in act.shortcuts():
                taken[seq.toString()] = act.text().replace("&", "")
        for sc in self.window.findChildren(QShortcut):
            taken[sc.key().toString()] = sc.objectName() or "a panel shortcut"
        return taken

    def _set_shortcut(self, act: QAction, rec, spec, taken: dict[str, str]) -> None:
        if not spec.shortcut:
            return
        seq = QKeySequence(spec.shortcut)
        text = seq.toString()
        if seq.isEmpty() or seq.count() != 1 or not text:
            rec.warnings.append(f"the shortcut “{spec.shortcut}” of “{spec.title}” is not a key "
                                "combination; the command has none")
        elif text in taken:
            rec.warnings.append(f"the shortcut {text} of “{spec.title}” is taken by “{taken[text]}”; "
                                "the command has none")
        else:
            act.setShortcut(seq)
            act.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            taken[text] = spec.title
            return
        log.warning("plugin %s: %s", rec.id, rec.warnings[-1])

    def run_command(self, rec, spec) -> None:
        try:
            self.plugins.call(rec.id, f"in its command “{spec.title}”", spec.run,
                              self.plugins.host(rec.id, self.session, copy_text=_copy_text))
        except StudioError as exc:
            if rec.active:  # the plugin's own message; a failure is reported by _on_failure
                self.session.app.report_error(exc.user_message, exc.detail)

    def open_dialog(self) -> None:
        from studio.ui.dialogs.plugins_dialog import PluginsDialog

        PluginsDialog(self.session, self.window).open()

    # -- failures ---------------------------------------------------------------------------------
    def _on_failure(self, rec) -> None:
        """The plugin is switched off: grey its commands, say so in its docks."""
        for key, owner in self._owner.items():
            if owner != rec.id:
                continue
            if key in self.commands:
                self.commands[key].setEnabled(False)
                self.commands[key].setToolTip(rec.error)
            if key in self.docks:
                self.panels[key] = self.docks[key].widget()
                self._replace(self.docks[key], _note(rec.error, self.docks[key], error=True))


class _SlotErrors:
    """Exceptions raised in a plugin panel's own slots (a button's handler, a paint event) reach
    sys.excepthook, not the studio. This hook finds the plugin whose package raised and switches it
    off like any other failure; anything else goes to the previous hook. Installed when a first
    plugin panel is built, removed when the plugins close."""

    def __init__(self, plugins, session, previous) -> None:
        self.plugins = plugins
        self.session = session
        self.previous = previous

    @classmethod
    def install(cls, plugins, session) -> None:
        import sys

        current = sys.excepthook
        if isinstance(current, cls) and current.plugins is plugins:
            return
        hook = cls(plugins, session, current)
        sys.excepthook = hook

        def remove() -> None:
            if sys.excepthook is hook:
                sys.excepthook = hook.previous
        plugins.on_close(remove)

    def __call__(self, etype, value, tb) -> None:
        owner = self._owner(tb)
        if owner is None or not issubclass(etype, Exception):
            self.previous(etype, value, tb)
            return
        if isinstance(value, StudioError):  # the plugin's own message
            self.session.app.report_error(value.user_message, value.detail)
            return
        self.plugins.fail(owner, "in its panel", value)

    def _owner(self, tb) -> str | None:
        packages = [(r.package + ".", r.id) for r in self.plugins.active() if r.package]
        while tb is not None:
            name = tb.tb_frame.f_globals.get("__name__", "") + "."
            for prefix, pid in packages:
                if name.startswith(prefix):
                    return pid
            tb = tb.tb_next
        return None


def _note(text: str, parent: QWidget, error: bool = False) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("plugin.error" if error else "plugin.placeholder")
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    label.setMargin(8)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if error:
        label.setStyleSheet("color: #e66;")
    return label


def _copy_text(text: str) -> None:
    QGuiApplication.clipboard().setText(text)
